import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { RetentionPolicy } from '../archive/plan/retention.js';
import { camelKey, type SectionSettings, type SettingName, type SettingValues, SETTING_NAMES, settingSpec, type TopSettings, yamlSettings } from '../settings/table.js';
import { settingDefault } from '../settings/values.js';
import { parseTarget } from '../storage/open.js';
import { UsageError } from '../util/errors.js';
import { ConfigChecker } from './checks.js';
import { type HealthcheckUrls, type KeepCounts, readAttach, readHealthcheck, readKeep, readOnFailure, readSnapshot, type SnapshotPolicy } from './fields.js';
import { type DrillConfig, readDrillSection } from './drill-section.js';
import { ConfigSource } from './yaml-source.js';

/**
 * The config file of `zfs-offsite run` (YAML):
 *
 *   defaults:                 # any dataset setting; each dataset may override it
 *     target: s3://bucket/zfs
 *     keep: { daily: 7, weekly: 4, monthly: 12, min_fulls: 1 }
 *   datasets:
 *     - name: tank/home
 *       recursive: true
 *       snapshot: { mode: pick, pattern: "autosnap_*_daily" }
 *
 * Merging: a dataset's value replaces the default; `keep`, `s3`, `sftp` and `object_lock` merge key by key
 * (a dataset may change one count), `snapshot` is replaced whole (its keys depend on its mode).
 * `keep: false` on a dataset turns pruning off for it. Secrets are never in the file: only the
 * names of environment variables or files that hold them.
 */

export type { HealthcheckUrls, SnapshotPolicy } from './fields.js';

/** The `s3:` and `sftp:` keys of src/settings/table.ts, camel-cased (files made absolute). */
export type S3Settings = SectionSettings<'s3'>;
export type SftpSettings = SectionSettings<'sftp'>;
/** `object_lock: { days, mode }` (docs/object-lock.md): `days` is held in milliseconds, as the flag's duration. */
export type ObjectLockSettings = SectionSettings<'object_lock'>;

/**
 * One dataset with the defaults merged in. The settings of src/settings/table.ts that sit at the
 * top level are here under their table names (absent when not given); datasetSettings() reads
 * them all.
 */
export interface ResolvedDatasetConfig extends TopSettings {
  name: string;
  /** Also every descendant filesystem and volume (expanded by the run, each archived on its own). */
  recursive: boolean;
  target: string;
  snapshot: SnapshotPolicy;
  /** 'auto' = raw when the dataset is encrypted. */
  raw: boolean | 'auto';
  /** Send a new full when the newest full is older than this. */
  fullEveryMs?: number;
  /** Send a new full when the chain since the last full has this many incrementals. */
  maxChain?: number;
  /** Retention; undefined = never prune this dataset. */
  keep?: RetentionPolicy;
  compressionLevel: number;
  chunkSize: number;
  /** Command run when this dataset fails: argv (a string is run by /bin/sh -c). */
  onFailure?: string[];
  /** Command run when this dataset is archived: argv, as onFailure. */
  onSuccess?: string[];
  /** `status`: the newest archived snapshot may be this old (ms) before the dataset is CRITICAL. */
  maxAgeMs?: number;
  /** Pings of this entry (all its datasets, one start and one result per run): healthcheck_url of the entry. */
  healthcheck?: HealthcheckUrls;
  s3: S3Settings;
  sftp: SftpSettings;
  /**
   * `hold: true`: besides its bookmark, a `zfs hold` tag of this target on the newest snapshot it
   * archived (no snapshot-pruning tool can destroy it while held; jobs/protect.ts).
   */
  hold: boolean;
  /** Absent when neither the entry nor the defaults set `object_lock`. */
  objectLock?: ObjectLockSettings;
  /** Commands whose output is kept with each stream of this dataset (jobs/attachments.ts). */
  attach?: { name: string; command: string }[];
  /** "datasets[1]" or, for one of several targets, "datasets[1].targets[0]": where it is defined, for messages. */
  where: string;
  /** The index of its entry in `datasets:`: the targets of one entry share it (run sends to them together). */
  entry: number;
  /** How many targets its entry has (1 for `target:`). */
  targetCount: number;
}

export interface ZfsOffsiteConfig {
  file: string;
  /** One per entry and target: an entry with `targets: [a, b]` is two, with the same `entry`. */
  datasets: ResolvedDatasetConfig[];
  /** The `drill:` section (config/drill-section.ts), when given. */
  drill?: DrillConfig;
  /** Pings of the whole run: the top-level healthcheck_url. */
  healthcheck?: HealthcheckUrls;
}

const TOP_KEYS = ['defaults', 'datasets', 'drill', 'healthcheck_url'] as const;
/** The job's own keys, then the settings of the table, then the sections. */
const SETTING_KEYS = [
  'target',
  'recursive',
  'snapshot',
  'raw',
  'full_every',
  'max_chain',
  'keep',
  ...yamlSettings('').map((s) => s.key),
  'on_failure',
  'on_success',
  'max_age',
  'healthcheck_url',
  's3',
  'sftp',
  'targets',
  'hold',
  'object_lock',
];
const DATASET_KEYS = ['name', 'attach', ...SETTING_KEYS] as const;
/** What one of several targets may set for itself (`targets: [{url: …, keep: …}]`): its chain, cadence, retention and transfer. */
const TARGET_KEYS = ['url', 'hold', 'raw', 'full_every', 'max_chain', 'keep', ...yamlSettings('').map((s) => s.key), 's3', 'sftp', 'object_lock'];

const DAY_MS = 86_400_000;
/** The field of a resolved dataset that holds a config section's settings. */
const SECTION_FIELD = { s3: 's3', sftp: 'sftp', object_lock: 'objectLock' } as const;

// As zfs/command.ts checkDatasetName: no '.' or '..' component (as archive paths they would climb out).
const DATASET_NAME = { re: /^(?!.*\/\.\.?(\/|$))(?=.{1,255}$)[A-Za-z0-9][A-Za-z0-9_.:\- ]*(\/[A-Za-z0-9_.:\- ]+)*$/, what: 'a ZFS dataset name such as tank/home' };

/** One level of settings as written (defaults or a dataset), validated, not yet merged. */
interface Settings extends TopSettings {
  target?: string;
  /** `targets:`, each with its own settings (merged over the entry's). */
  targets?: { url: string; own: Settings; where: string }[];
  hold?: boolean;
  recursive?: boolean;
  snapshot?: SnapshotPolicy;
  raw?: boolean | 'auto';
  fullEveryMs?: number;
  maxChain?: number;
  keep?: KeepCounts | false;
  onFailure?: string[];
  onSuccess?: string[];
  maxAgeMs?: number;
  healthcheck?: HealthcheckUrls;
  s3?: S3Settings;
  sftp?: SftpSettings;
  objectLock?: ObjectLockSettings;
}

function readTarget(c: ConfigChecker, value: unknown, path: string): string {
  const text = c.string(value, path, { re: /./, what: 'a target URL (s3://bucket/prefix, sftp://user@host/path or a directory)' });
  let target;
  try {
    target = parseTarget(text);
  } catch (err) {
    throw c.fail(path, err instanceof UsageError ? err.message : String(err));
  }
  // A relative directory is taken from the config file's place, not from cron's working directory.
  if (target.kind === 'local' && !/^file:/i.test(text) && !isAbsolute(text)) return resolve(c.baseDir, text);
  return text;
}

/** `targets:` a non-empty list of URLs or `{url: …, settings…}`, none twice. */
function readTargets(c: ConfigChecker, value: unknown, path: string): { url: string; own: Settings; where: string }[] {
  if (!Array.isArray(value) || value.length === 0) throw c.fail(path, 'expected a non-empty list of targets (URLs, or mappings with url: and their own settings)');
  const seen = new Map<string, string>();
  return value.map((item, i) => {
    const where = `${path}[${i}]`;
    let url: string;
    let own: Settings = {};
    if (typeof item === 'string') url = readTarget(c, item, where);
    else {
      const raw = c.mapping(item, where, TARGET_KEYS);
      if (raw.url === undefined) throw c.fail(`${where}.url`, 'missing: the target URL (s3://bucket/prefix, sftp://user@host/path or a directory)');
      url = readTarget(c, raw.url, `${where}.url`);
      own = readSettings(c, { ...raw, url: undefined }, where);
    }
    const earlier = seen.get(url);
    if (earlier) throw c.fail(where, `${url} is already a target of this entry (${earlier})`);
    seen.set(url, where);
    return { url, own, where };
  });
}

/** A target's own settings over its entry's: `keep`, `s3` and `sftp` key by key, the rest replaced. */
function overTarget(own: Settings, target: Settings): Settings {
  const keep = target.keep === false || own.keep === false ? (target.keep ?? own.keep) : target.keep || own.keep ? { ...(own.keep || {}), ...(target.keep || {}) } : undefined;
  return { ...own, ...target, keep, s3: { ...own.s3, ...target.s3 }, sftp: { ...own.sftp, ...target.sftp } };
}

/** The keys of one section (`s3:`, `sftp:`), each read by the type the settings table gives it. */
function readSection(c: ConfigChecker, value: unknown, path: string, section: 's3' | 'sftp' | 'object_lock'): Record<string, unknown> {
  const keys = yamlSettings(section);
  const raw = c.mapping(
    value,
    path,
    keys.map((k) => k.key),
  );
  const out: Record<string, unknown> = {};
  for (const { name, key } of keys) {
    if (raw[key] === undefined) continue;
    // Object Lock is set in whole days in the file (as S3's default retention rules are).
    out[camelKey(key)] = name === 'objectLock' ? c.wholeNumber(raw[key], `${path}.${key}`, 1) * DAY_MS : c.setting(settingSpec(name), raw[key], `${path}.${key}`);
  }
  return out;
}

/** The settings of `defaults` or of one dataset entry (the keys checked by the caller). */
function readSettings(c: ConfigChecker, raw: Record<string, unknown>, path: string): Settings {
  const at = (key: string) => `${path}.${key}`;
  const s: Settings = {};
  if (raw.target !== undefined) s.target = readTarget(c, raw.target, at('target'));
  if (raw.targets !== undefined) {
    if (raw.target !== undefined) throw c.fail(at('targets'), 'give target or targets, not both');
    s.targets = readTargets(c, raw.targets, at('targets'));
  }
  if (raw.hold !== undefined) s.hold = c.boolean(raw.hold, at('hold'));
  if (raw.recursive !== undefined) s.recursive = c.boolean(raw.recursive, at('recursive'));
  if (raw.snapshot !== undefined) s.snapshot = readSnapshot(c, raw.snapshot, at('snapshot'));
  if (raw.raw !== undefined) {
    if (raw.raw !== 'auto' && typeof raw.raw !== 'boolean') throw c.fail(at('raw'), `expected true, false or auto, got ${JSON.stringify(raw.raw)}`);
    s.raw = raw.raw;
  }
  if (raw.full_every !== undefined) s.fullEveryMs = c.duration(raw.full_every, at('full_every'));
  if (raw.max_chain !== undefined) s.maxChain = c.wholeNumber(raw.max_chain, at('max_chain'), 1);
  if (raw.keep !== undefined) s.keep = readKeep(c, raw.keep, at('keep'));
  const top = s as Record<string, unknown>;
  for (const { name, key } of yamlSettings('')) if (raw[key] !== undefined) top[name] = c.setting(settingSpec(name), raw[key], at(key));
  if (raw.on_failure !== undefined) s.onFailure = readOnFailure(c, raw.on_failure, at('on_failure'));
  if (raw.on_success !== undefined) s.onSuccess = readOnFailure(c, raw.on_success, at('on_success'));
  if (raw.max_age !== undefined) s.maxAgeMs = c.duration(raw.max_age, at('max_age'));
  if (raw.healthcheck_url !== undefined) {
    // One check per run or per entry: under defaults it would be every entry's, pinged by each.
    if (path === 'defaults') throw c.fail(at('healthcheck_url'), 'not a default: put it at the top level (one check for the whole run) or in a dataset entry (one per entry)');
    s.healthcheck = readHealthcheck(c, raw.healthcheck_url, at('healthcheck_url'));
  }
  if (raw.s3 !== undefined) s.s3 = readSection(c, raw.s3, at('s3'), 's3');
  if (raw.sftp !== undefined) s.sftp = readSection(c, raw.sftp, at('sftp'), 'sftp');
  if (raw.object_lock !== undefined) s.objectLock = readSection(c, raw.object_lock, at('object_lock'), 'object_lock');
  return s;
}

function resolveKeep(c: ConfigChecker, defaults: Settings, own: Settings, where: string): RetentionPolicy | undefined {
  if (own.keep === false || (own.keep === undefined && (defaults.keep === undefined || defaults.keep === false))) return undefined;
  const merged = { ...(defaults.keep || {}), ...(own.keep || {}) };
  const policy: RetentionPolicy = {
    keepDaily: merged.daily ?? 0,
    keepWeekly: merged.weekly ?? 0,
    keepMonthly: merged.monthly ?? 0,
    keepYearly: merged.yearly ?? 0,
    keepLast: merged.last ?? 0,
    minFulls: merged.min_fulls ?? 1,
  };
  if ([policy.keepDaily, policy.keepWeekly, policy.keepMonthly, policy.keepYearly, policy.keepLast].every((n) => n === 0)) {
    throw c.fail(own.keep ? `${where}.keep` : 'defaults.keep', 'keeps nothing: give at least one of last, daily, weekly, monthly, yearly a count above 0 (or keep: false to never prune)');
  }
  return policy;
}

/** Parses and validates a config; every problem is a one-line UsageError naming file, line and key. */
export function parseConfig(text: string, file: string): ZfsOffsiteConfig {
  const src = ConfigSource.parse(text, file);
  const c = new ConfigChecker(src, dirname(resolve(file)));
  if (src.value === null || src.value === undefined) throw c.fail('', 'the config file is empty: it needs a datasets list');
  const top = c.mapping(src.value, '', TOP_KEYS);
  const defaults = top.defaults === undefined ? {} : readSettings(c, c.mapping(top.defaults, 'defaults', SETTING_KEYS), 'defaults');
  if (top.datasets === undefined) throw c.fail('datasets', 'missing: list the datasets to archive');
  if (!Array.isArray(top.datasets) || top.datasets.length === 0) throw c.fail('datasets', 'expected a non-empty list of datasets');
  const seen = new Map<string, string>();
  const datasets = top.datasets.flatMap((entry, i): ResolvedDatasetConfig[] => {
    const where = `datasets[${i}]`;
    const raw = c.mapping(entry, where, DATASET_KEYS);
    if (raw.name === undefined) throw c.fail(`${where}.name`, 'missing: the dataset to archive, e.g. tank/home');
    const name = c.string(raw.name, `${where}.name`, DATASET_NAME);
    const earlier = seen.get(name);
    if (earlier) throw c.fail(`${where}.name`, `${name} is already configured in ${earlier}`);
    seen.set(name, where);
    const own = readSettings(c, raw, where);
    // The entry's target(s): its own target or targets, else those of the defaults.
    const listed = own.target !== undefined ? undefined : (own.targets ?? (defaults.target !== undefined ? undefined : defaults.targets));
    const single = own.target ?? (own.targets ? undefined : defaults.target);
    if (single === undefined && listed === undefined)
      throw c.fail(`${where}.target`, 'missing: set target here or in defaults (s3://bucket/prefix, sftp://user@host/path or a directory; or targets: a list of them)');
    const targets = listed ?? [{ url: single!, own: {}, where }];
    const attach = raw.attach === undefined ? undefined : readAttach(c, raw.attach, `${where}.attach`);
    return targets.map((t) => ({
      ...resolveEntry(c, defaults, overTarget(own, t.own), { name, url: t.url, where: listed ? t.where.replace(/^defaults\./, `${where}.`) : where, entry: i, targetCount: targets.length }),
      ...(attach ? { attach } : {}),
    }));
  });
  const healthcheck = top.healthcheck_url === undefined ? undefined : readHealthcheck(c, top.healthcheck_url, 'healthcheck_url');
  return { file, datasets, ...(top.drill === undefined ? {} : { drill: readDrillSection(c, top.drill) }), ...(healthcheck ? { healthcheck } : {}) };
}

/** One entry on one target, the defaults merged in. */
function resolveEntry(c: ConfigChecker, defaults: Settings, own: Settings, at: { name: string; url: string; where: string; entry: number; targetCount: number }): ResolvedDatasetConfig {
  const lock = defaults.objectLock || own.objectLock ? { ...defaults.objectLock, ...own.objectLock } : undefined;
  if (lock && lock.days === undefined) throw c.fail(`${at.where}.object_lock.days`, 'missing: how many days each stream is retained (mode alone locks nothing)');
  return {
    name: at.name,
    recursive: own.recursive ?? defaults.recursive ?? false,
    target: at.url,
    snapshot: own.snapshot ?? defaults.snapshot ?? { mode: 'create', prefix: 'zfs-offsite' },
    raw: own.raw ?? defaults.raw ?? 'auto',
    fullEveryMs: own.fullEveryMs ?? defaults.fullEveryMs,
    maxChain: own.maxChain ?? defaults.maxChain,
    keep: resolveKeep(c, defaults, own, at.where),
    ...topSettings(defaults, own),
    compressionLevel: own.compressionLevel ?? defaults.compressionLevel ?? (settingDefault('compressionLevel') as number),
    chunkSize: own.chunkSize ?? defaults.chunkSize ?? (settingDefault('chunkSize') as number),
    onFailure: own.onFailure ?? defaults.onFailure,
    onSuccess: own.onSuccess ?? defaults.onSuccess,
    maxAgeMs: own.maxAgeMs ?? defaults.maxAgeMs,
    healthcheck: own.healthcheck,
    s3: { ...defaults.s3, ...own.s3 },
    sftp: { ...defaults.sftp, ...own.sftp },
    hold: own.hold ?? defaults.hold ?? false,
    ...(lock ? { objectLock: lock } : {}),
    where: at.where,
    entry: at.entry,
    targetCount: at.targetCount,
  };
}

/** The top-level table settings of a dataset: its own value, else the default's. */
function topSettings(defaults: Settings, own: Settings): TopSettings {
  const out: Record<string, unknown> = {};
  for (const { name } of yamlSettings('')) {
    const value = (own as Record<string, unknown>)[name] ?? (defaults as Record<string, unknown>)[name];
    if (value !== undefined) out[name] = value;
  }
  return out as TopSettings;
}

/** Every setting of src/settings/table.ts a dataset's entry (with defaults merged) gives. */
export function datasetSettings(cfg: ResolvedDatasetConfig): SettingValues {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const yaml: string | undefined = settingSpec(name).yaml;
    if (yaml === undefined) continue;
    const [section, key] = yaml.includes('.') ? yaml.split('.') : [undefined, yaml];
    const value =
      section === undefined
        ? (cfg as unknown as Record<string, unknown>)[name as SettingName]
        : ((cfg[SECTION_FIELD[section as keyof typeof SECTION_FIELD]] ?? {}) as Record<string, unknown>)[camelKey(key!)];
    if (value !== undefined) out[name] = value;
  }
  return out as SettingValues;
}

/** Whether an entry archives `dataset`: its own name, or a descendant when it is recursive. */
export function entryHolds(cfg: ResolvedDatasetConfig, dataset: string): boolean {
  return dataset === cfg.name || (cfg.recursive && dataset.startsWith(`${cfg.name}/`));
}

/**
 * The entry whose settings apply to `dataset`: the entry of that name, else the recursive entry
 * nearest above it (`tank/home/alice` of its own beats a recursive `tank/home`); undefined when none holds it.
 */
export function entryFor(config: ZfsOffsiteConfig, dataset: string): ResolvedDatasetConfig | undefined {
  const holding = config.datasets.filter((cfg) => entryHolds(cfg, dataset));
  return holding.sort((a, b) => b.name.length - a.name.length)[0];
}

/** Reads and validates a config file; a missing or unreadable file is a UsageError too. */
export async function loadConfig(file: string): Promise<ZfsOffsiteConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: cannot read the config file (${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message})`);
  }
  return parseConfig(text, file);
}

/** The snapshot names a `pick` pattern matches: `*` any run of characters, `?` one character. */
export function snapshotPattern(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
