import { parseSize } from '../util/bytes.js';
import { parseDuration } from '../util/duration.js';
import { UsageError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';
import { type ArchiveSettingValues, type BackendSettings, SETTING_NAMES, type SettingName, type SettingSpec, type SettingValues, settingSpec } from './table.js';

/** "1M", "5G", "1K", or bytes: how a limit reads in a message. */
export function formatLimit(bytes: number): string {
  for (const [unit, size] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const)
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return `${bytes} bytes`;
}

function outOfRange(spec: SettingSpec, n: number): boolean {
  return (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max);
}

/**
 * A setting's value from its text on the command line (or its default): a UsageError naming
 * `label` (the flag) when it is not of the setting's type or out of its range.
 */
export function parseSettingText(name: SettingName, text: string, label: string): number | string {
  const spec = settingSpec(name);
  switch (spec.type) {
    case 'size': {
      const bytes = parseSize(text, label);
      if (outOfRange(spec, bytes)) {
        const range = spec.max === undefined ? `at least ${formatLimit(spec.min!)}` : `between ${formatLimit(spec.min ?? 0)} and ${formatLimit(spec.max)}`;
        throw new UsageError(`${label} must be ${range}, got ${text}`);
      }
      return bytes;
    }
    case 'duration': {
      const ms = parseDuration(text, label);
      if (outOfRange(spec, ms)) throw new UsageError(`${label} must be more than 0, got ${text}`);
      return ms;
    }
    case 'count': {
      const n = Number(text);
      if (spec.max !== undefined) {
        if (!Number.isInteger(n) || outOfRange(spec, n)) throw new UsageError(`${label} must be a whole number from ${spec.min} to ${spec.max}, got ${text}`);
      } else if (!Number.isInteger(n) || outOfRange(spec, n)) {
        throw new UsageError(`invalid ${label}: ${JSON.stringify(text)} (expected a whole number ≥ ${spec.min ?? 0})`);
      }
      return n;
    }
    default:
      if (text.trim() === '' || (spec.pattern && !spec.pattern.re.test(text))) {
        throw new UsageError(`invalid ${label}: ${JSON.stringify(redactUrl(text))} (expected ${spec.pattern?.what ?? 'a non-empty value'})`);
      }
      return text;
  }
}

/** The values with every unset setting that has a default set to it. */
export function withDefaults(values: SettingValues): SettingValues {
  const out: Record<string, unknown> = { ...values };
  for (const name of SETTING_NAMES) {
    const fallback: string | undefined = settingSpec(name).default;
    if (out[name] === undefined && fallback !== undefined) out[name] = parseSettingText(name, fallback, name);
  }
  return out as SettingValues;
}

/** The default of one setting, parsed (sizes in bytes, durations in ms). */
export function settingDefault(name: SettingName): number | string | undefined {
  const fallback: string | undefined = settingSpec(name).default;
  return fallback === undefined ? undefined : parseSettingText(name, fallback, name);
}

/** The settings openBackend takes; the others (archive ones) are left out. */
export function backendOptions(values: SettingValues): BackendSettings {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) if (settingSpec(name).use === 'backend' && values[name] !== undefined) out[name] = values[name];
  return out as BackendSettings;
}

/** The archive writer's settings, defaults filled in. */
export function archiveSettingValues(values: SettingValues): ArchiveSettingValues {
  const v = withDefaults(values);
  return {
    chunkSize: v.chunkSize!,
    compressionLevel: v.compressionLevel!,
    parallel: v.parallel!,
    stallTimeout: v.stallTimeout!,
    ...(v.objectLock !== undefined ? { objectLock: v.objectLock } : {}),
    ...(v.objectLockMode !== undefined ? { objectLockMode: v.objectLockMode } : {}),
  };
}
