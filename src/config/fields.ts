import { hasPassword } from '../util/redact.js';
import type { ConfigChecker } from './checks.js';

/**
 * Readers of single fields of the config file (config.ts): each checks one value and says
 * where it is wrong (ConfigChecker), so config.ts only merges what they return.
 */

export type SnapshotPolicy = { mode: 'create'; prefix: string } | { mode: 'pick'; pattern: string };

/**
 * Where `run` pings (jobs/notify.ts): `healthcheck_url: URL` is healthchecks.io's form (`URL/start`,
 * `URL`, `URL/fail`); a mapping `{ start, success, failure }` names each URL (Uptime Kuma's push
 * URLs, anything taking a GET). Capability URLs: never shown whole (jobs/notify.ts pingLabel).
 */
export interface HealthcheckUrls {
  start?: string;
  success: string;
  failure?: string;
}

export const KEEP_KEYS = ['daily', 'weekly', 'monthly', 'yearly', 'last', 'min_fulls'] as const;
export type KeepCounts = Partial<Record<(typeof KEEP_KEYS)[number], number>>;

const SNAPSHOT_PART = { re: /^[A-Za-z0-9_.:-]+$/, what: 'a snapshot name part (letters, digits, _ . : -)' };
const SNAPSHOT_GLOB = { re: /^[A-Za-z0-9_.:*?-]+$/, what: 'a snapshot name pattern (letters, digits, _ . : - and the wildcards * ?)' };

export function readSnapshot(c: ConfigChecker, value: unknown, path: string): SnapshotPolicy {
  const raw = c.mapping(value, path, ['mode', 'prefix', 'pattern']);
  const mode = raw.mode ?? 'create';
  if (mode === 'create') {
    if (raw.pattern !== undefined) throw c.fail(`${path}.pattern`, 'only mode pick takes a pattern (mode create takes prefix)');
    return { mode, prefix: raw.prefix === undefined ? 'zfs-offsite' : c.string(raw.prefix, `${path}.prefix`, SNAPSHOT_PART) };
  }
  if (mode === 'pick') {
    if (raw.prefix !== undefined) throw c.fail(`${path}.prefix`, 'only mode create takes a prefix (mode pick takes pattern)');
    if (raw.pattern === undefined) throw c.fail(`${path}.pattern`, 'missing: mode pick needs the pattern of the snapshots to pick, e.g. "autosnap_*_daily"');
    return { mode, pattern: c.string(raw.pattern, `${path}.pattern`, SNAPSHOT_GLOB) };
  }
  throw c.fail(`${path}.mode`, `expected create or pick, got ${JSON.stringify(mode)}`);
}

export function readOnFailure(c: ConfigChecker, value: unknown, path: string): string[] {
  if (typeof value === 'string') return ['/bin/sh', '-c', c.string(value, path)];
  if (!Array.isArray(value) || value.length === 0)
    throw c.fail(path, `expected a command line or a list of arguments, got ${value === null ? 'nothing' : Array.isArray(value) ? 'an empty list' : JSON.stringify(value)}`);
  return value.map((arg, i) => c.string(arg, `${path}[${i}]`));
}

/** A ping URL: http(s), no password in it (a healthchecks.io or Uptime Kuma token is its path or query). */
export function readPingUrl(c: ConfigChecker, value: unknown, path: string): string {
  const text = c.string(value, path, { re: /^https?:\/\/[^/\s]+\S*$/i, what: 'an http:// or https:// URL' });
  if (hasPassword(text)) throw c.fail(path, 'credentials do not belong in the URL (healthchecks.io and Uptime Kuma URLs carry their token in the path or query)');
  return text;
}

/** `healthcheck_url`: one URL (healthchecks.io: URL/start, URL, URL/fail) or `{ start, success, failure }`. */
export function readHealthcheck(c: ConfigChecker, value: unknown, path: string): HealthcheckUrls {
  if (typeof value === 'string') {
    const url = readPingUrl(c, value, path);
    const at = (suffix: string) => url.replace(/\/?(?=[?#]|$)/, suffix);
    return { start: at('/start'), success: url, failure: at('/fail') };
  }
  const raw = c.mapping(value, path, ['start', 'success', 'failure']);
  if (raw.success === undefined) throw c.fail(`${path}.success`, 'missing: the URL to call when the run succeeds');
  const out: HealthcheckUrls = { success: readPingUrl(c, raw.success, `${path}.success`) };
  if (raw.start !== undefined) out.start = readPingUrl(c, raw.start, `${path}.start`);
  if (raw.failure !== undefined) out.failure = readPingUrl(c, raw.failure, `${path}.failure`);
  return out;
}

export function readKeep(c: ConfigChecker, value: unknown, path: string): KeepCounts | false {
  if (value === false) return false;
  const raw = c.mapping(value, path, KEEP_KEYS);
  const out: KeepCounts = {};
  for (const key of KEEP_KEYS) if (raw[key] !== undefined) out[key] = c.wholeNumber(raw[key], `${path}.${key}`, 0);
  return out;
}

/** `attach: [{name: vmadm.json, command: "vmadm get <uuid>"}]`: a list of names (safe file names, unique) and commands. */
export function readAttach(c: ConfigChecker, value: unknown, path: string): { name: string; command: string }[] {
  if (!Array.isArray(value)) throw c.fail(path, 'expected a list of {name, command}');
  const seen = new Set<string>();
  return value.map((item, i) => {
    const at = `${path}[${i}]`;
    const m = c.mapping(item, at, ['name', 'command']);
    if (m.name === undefined || m.command === undefined) throw c.fail(at, 'expected name and command, e.g. {name: vmadm.json, command: "vmadm get <uuid>"}');
    const name = c.string(m.name, `${at}.name`, { re: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, what: "a file name of letters, digits, '.', '_' and '-'" });
    if (seen.has(name)) throw c.fail(`${at}.name`, `${name} is given twice`);
    seen.add(name);
    return { name, command: c.string(m.command, `${at}.command`) };
  });
}
