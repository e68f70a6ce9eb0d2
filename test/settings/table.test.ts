import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { MIN_CHUNK_SIZE } from '../../src/archive/pipeline/writer.js';
import { addSettingFlags, settingsFromFlags } from '../../src/cli/setting-flags.js';
import { datasetSettings, parseConfig } from '../../src/config/config.js';
import { archiveSettings } from '../../src/jobs/archive-stream.js';
import { SETTING_NAMES, SETTINGS, settingSpec } from '../../src/settings/table.js';
import { backendOptions } from '../../src/settings/values.js';
import { UsageError } from '../../src/util/errors.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** The settings a command with target and upload flags gets from `args`. */
function fromFlags(args: string[]) {
  const cmd = addSettingFlags(addSettingFlags(new Command('x').exitOverride(), 'target'), 'upload');
  cmd.parse(args, { from: 'user' });
  return settingsFromFlags(cmd.opts(), ['target', 'upload']);
}

const FLAGS = [
  '--s3-endpoint',
  'https://s3.example.test',
  '--s3-path-style',
  '--s3-part-size',
  '32M',
  '--s3-queue',
  '8',
  '--storage-class',
  'STANDARD_IA',
  '--s3-region',
  'eu-central-1',
  '--s3-profile',
  'backup',
  '--s3-timeout',
  '90s',
  '--s3-provider',
  'swift',
  '--retries',
  '3',
  '--retry-time',
  '5m',
  '--sftp-key',
  '/etc/zfs-offsite/id_ed25519',
  '--sftp-known-hosts',
  '/etc/zfs-offsite/known_hosts',
  '--sftp-accept-new',
  '--chunk-size',
  '32M',
  '--compression-level',
  '9',
  '--parallel',
  '4',
  '--bwlimit',
  '20M',
  '--stall-timeout',
  '1h',
];

const YAML = `
defaults:
  target: s3://backups/zfs
  retries: 3
  retry_time: 5m
  chunk_size: 32M
  compression_level: 9
  parallel: 4
  bwlimit: 20M
  stall_timeout: 1h
  s3: { endpoint: "https://s3.example.test", path_style: true, part_size: 32M, queue: 8, storage_class: STANDARD_IA, region: eu-central-1, profile: backup, timeout: 90s, provider: swift }
  sftp: { key: /etc/zfs-offsite/id_ed25519, known_hosts: /etc/zfs-offsite/known_hosts, accept_new: true }
datasets:
  - name: tank/home
`;

describe('one settings table', () => {
  it('gives the same values whether a setting comes from its flag or its config key', () => {
    const viaFlags = fromFlags(FLAGS);
    const viaConfig = datasetSettings(parseConfig(YAML, '/etc/zfs-offsite/config.yaml').datasets[0]!);
    expect(viaConfig).toEqual(viaFlags);
    expect(viaFlags).toMatchObject({ s3PartSize: 32 * 1024 * 1024, s3Timeout: 90_000, retryTime: 300_000, stallTimeout: 3_600_000, sftpAcceptNew: true, s3Region: 'eu-central-1' });
    // Backends get the backend settings, the writer the archive ones, from either source.
    expect(backendOptions(viaConfig)).toEqual(backendOptions(viaFlags));
    expect(backendOptions(viaFlags)).not.toHaveProperty('chunkSize');
    expect(archiveSettings(viaConfig, false)).toEqual({ chunkSize: 32 * 1024 * 1024, level: 9, parallel: 4, stallMs: 3_600_000, progress: false });
  });

  it('run uses the same defaults as the flags (stall timeout and parallel included)', () => {
    const cfg = parseConfig('datasets:\n  - { name: tank/a, target: /srv/a }\n', '/etc/c.yaml').datasets[0]!;
    expect(archiveSettings(datasetSettings(cfg), true)).toEqual(archiveSettings(fromFlags([]), true));
    expect(archiveSettings(datasetSettings(cfg), true)).toEqual({ chunkSize: 16 * 1024 * 1024, level: 3, parallel: 2, stallMs: 15 * 60_000, progress: true });
  });

  it('checks a value by the same range on the command line and in the file', () => {
    expect(() => fromFlags(['--s3-part-size', '1M'])).toThrow(new UsageError('--s3-part-size must be between 5M and 5G, got 1M'));
    expect(() => fromFlags(['--parallel', '0'])).toThrow(new UsageError('invalid --parallel: "0" (expected a whole number ≥ 1)'));
    expect(() => fromFlags(['--storage-class', 'cold'])).toThrow(/expected an S3 storage class/);
    expect(() => fromFlags(['--s3-provider', 'minio'])).toThrow('invalid --s3-provider: "minio" (expected one of other, aws, ceph, swift, b2)');
    const problem = (extra: string) => () => parseConfig(`datasets:\n  - name: tank/a\n    target: /srv/a\n${extra}`, '/c.yaml');
    expect(problem('    s3: { part_size: 1M }\n')).toThrow('/c.yaml:4: datasets[0].s3.part_size: "1M" is out of range (5M to 5G)');
    expect(problem('    parallel: 0\n')).toThrow('/c.yaml:4: datasets[0].parallel: expected a whole number ≥ 1, got 0');
    expect(problem('    retry_time: 0s\n')).toThrow('/c.yaml:4: datasets[0].retry_time: expected a duration such as 30d, 12h or 2w (more than 0), got "0s"');
    // 0 = never, for the stall timeout only, in both places.
    expect(fromFlags(['--stall-timeout', '0']).stallTimeout).toBe(0);
    expect(datasetSettings(problem('    stall_timeout: 0s\n')().datasets[0]!).stallTimeout).toBe(0);
  });

  it('object lock: --object-lock 30d --object-lock-mode compliance is object_lock: { days: 30, mode: compliance }, and reaches the writer', () => {
    const viaFlags = fromFlags(['--object-lock', '30d', '--object-lock-mode', 'compliance']);
    const cfg = parseConfig('datasets:\n  - { name: tank/a, target: s3://bkt/p, object_lock: { days: 30, mode: compliance } }\n', '/c.yaml').datasets[0]!;
    const lockOf = (v: { objectLock?: number; objectLockMode?: string }) => ({ objectLock: v.objectLock, objectLockMode: v.objectLockMode });
    expect(lockOf(datasetSettings(cfg))).toEqual(lockOf(viaFlags));
    expect(viaFlags).toMatchObject({ objectLock: 30 * 86_400_000, objectLockMode: 'compliance' });
    expect(archiveSettings(viaFlags, false).lock).toEqual({ mode: 'compliance', durationMs: 30 * 86_400_000 });
    // Governance unless asked; no lock at all without the duration; a dataset merges with defaults key by key.
    expect(archiveSettings(fromFlags(['--object-lock', '12h']), false).lock).toEqual({ mode: 'governance', durationMs: 12 * 3_600_000 });
    expect(archiveSettings(fromFlags([]), false).lock).toBeUndefined();
    const merged = parseConfig('defaults: { object_lock: { days: 7 } }\ndatasets:\n  - { name: tank/a, target: s3://bkt/p, object_lock: { mode: compliance } }\n', '/c.yaml').datasets[0]!;
    expect(archiveSettings(datasetSettings(merged), false).lock).toEqual({ mode: 'compliance', durationMs: 7 * 86_400_000 });
    // Refused, one line each.
    expect(() => archiveSettings(fromFlags(['--object-lock-mode', 'compliance']), false)).toThrow('--object-lock-mode needs --object-lock DURATION (or object_lock.days in the config)');
    expect(() => fromFlags(['--object-lock-mode', 'strict'])).toThrow('invalid --object-lock-mode: "strict" (expected governance or compliance)');
    const problem = (lock: string) => () => parseConfig(`datasets:\n  - name: tank/a\n    target: s3://bkt/p\n    object_lock: ${lock}\n`, '/c.yaml');
    expect(problem('{ mode: compliance }')).toThrow('/c.yaml:4: datasets[0].object_lock.days: missing');
    expect(problem('{ days: 0 }')).toThrow(/datasets\[0\]\.object_lock\.days: expected a whole number ≥ 1/);
    expect(problem('{ days: 30d }')).toThrow(/datasets\[0\]\.object_lock\.days: expected a whole number ≥ 1/);
    expect(problem('{ days: 3, mode: strict }')).toThrow(/object_lock\.mode/);
    expect(problem('{ day: 3 }')).toThrow(/object_lock/);
  });

  it('declares every setting with a config key, and a flag unless it names an environment variable or file of secrets', () => {
    for (const name of SETTING_NAMES) {
      const spec = settingSpec(name);
      expect(spec.yaml, name).toBeDefined();
      if (spec.type !== 'env-name' && name !== 's3CredentialsFile') expect(spec.flag, name).toBeDefined();
    }
    expect(SETTINGS.chunkSize.min).toBe(MIN_CHUNK_SIZE);
  });

  it('is listed in README (flags) and docs/config.md (keys)', () => {
    const readme = read('README.md');
    const config = read('docs/config.md');
    for (const name of SETTING_NAMES) {
      const spec = settingSpec(name);
      if (spec.flag) expect(readme, `README lists ${spec.flag}`).toContain(`\`${spec.flag.split(' ')[0]}`);
      const key = spec.yaml!.slice(spec.yaml!.indexOf('.') + 1);
      expect(config, `docs/config.md lists ${spec.yaml}`).toContain(`\`${key}\``);
    }
  });

  it('is a leaf, and config/ imports nothing from jobs/ or cli/', () => {
    expect(read('src/settings/table.ts')).not.toMatch(/^import /m);
    for (const file of readdirSync(join(ROOT, 'src/config'))) {
      expect(read(`src/config/${file}`), file).not.toMatch(/from '\.\.\/(jobs|cli)\//);
    }
    for (const file of readdirSync(join(ROOT, 'src/settings'))) {
      expect(read(`src/settings/${file}`), file).not.toMatch(/from '\.\.\/(jobs|cli|config|storage|archive)\//);
    }
  });
});
