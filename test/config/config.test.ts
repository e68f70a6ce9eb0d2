import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../src/cli/exit.js';
import { loadConfig, parseConfig, snapshotPattern } from '../../src/config/config.js';
import { UsageError } from '../../src/util/errors.js';

const FILE = '/etc/zfs-offsite/config.yaml';
const parse = (text: string) => parseConfig(text, FILE);

/** The one-line UsageError a bad config gives. */
function problem(text: string): string {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect(exitCodeFor(err)).toBe(2);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('the config was accepted');
}

const GOOD = `
defaults:
  target: s3://backups/zfs
  keep: { daily: 7, weekly: 4, monthly: 12, min_fulls: 2 }
  full_every: 30d
  chunk_size: 32M
  bwlimit: 20M
  s3:
    endpoint: https://s3.example.test
    path_style: true
    region: eu-central-1
    secret_access_key_env: BACKUP_SECRET
    access_key_id_env: BACKUP_KEY_ID
  on_failure: mail -s "zfs-offsite failed" root

datasets:
  - name: tank/home
    recursive: true
    snapshot: { mode: pick, pattern: "autosnap_*_daily" }
    keep: { daily: 14 }
    raw: true
    max_chain: 60
  - name: tank/vm disks
    target: sftp://u123@box.example.test:23/zfs
    sftp: { key: keys/id_ed25519, known_hosts: /etc/zfs-offsite/known_hosts, passphrase_env: KEY_PASS }
    snapshot: { prefix: offsite }
    compression_level: 9
    on_failure: [/usr/local/bin/alert, --dataset, vm]
    keep: false
  - name: tank/media
    target: ../archive
    bwlimit: 1048576
`;

describe('config: valid files', () => {
  it('merges defaults into every dataset and resolves units', () => {
    const config = parse(GOOD);
    const [home, vm, media] = config.datasets;
    expect(home).toEqual({
      name: 'tank/home',
      recursive: true,
      target: 's3://backups/zfs',
      snapshot: { mode: 'pick', pattern: 'autosnap_*_daily' },
      raw: true,
      fullEveryMs: 30 * 86_400_000,
      maxChain: 60,
      keep: { keepDaily: 14, keepWeekly: 4, keepMonthly: 12, keepYearly: 0, keepLast: 0, minFulls: 2 },
      compressionLevel: 3,
      chunkSize: 32 * 1024 * 1024,
      bwlimit: 20 * 1024 * 1024,
      onFailure: ['/bin/sh', '-c', 'mail -s "zfs-offsite failed" root'],
      s3: { endpoint: 'https://s3.example.test', pathStyle: true, region: 'eu-central-1', secretAccessKeyEnv: 'BACKUP_SECRET', accessKeyIdEnv: 'BACKUP_KEY_ID' },
      sftp: {},
      hold: false,
      where: 'datasets[0]',
      entry: 0,
      targetCount: 1,
    });
    expect(vm).toMatchObject({
      name: 'tank/vm disks',
      recursive: false,
      target: 'sftp://u123@box.example.test:23/zfs',
      snapshot: { mode: 'create', prefix: 'offsite' },
      raw: 'auto',
      keep: undefined,
      compressionLevel: 9,
      onFailure: ['/usr/local/bin/alert', '--dataset', 'vm'],
      sftp: { key: '/etc/zfs-offsite/keys/id_ed25519', knownHosts: '/etc/zfs-offsite/known_hosts', passphraseEnv: 'KEY_PASS' },
    });
    // Relative directories are taken from the config file's directory, not the working directory.
    expect(media).toMatchObject({ target: '/etc/archive', bwlimit: 1048576, chunkSize: 32 * 1024 * 1024 });
  });

  it('has safe defaults for a minimal file', () => {
    const [ds] = parse('datasets:\n  - name: tank\n    target: /srv/archive\n').datasets;
    expect(ds).toEqual({
      name: 'tank',
      recursive: false,
      target: '/srv/archive',
      snapshot: { mode: 'create', prefix: 'zfs-offsite' },
      raw: 'auto',
      fullEveryMs: undefined,
      maxChain: undefined,
      keep: undefined,
      compressionLevel: 3,
      chunkSize: 16 * 1024 * 1024,
      bwlimit: undefined,
      onFailure: undefined,
      s3: {},
      sftp: {},
      hold: false,
      where: 'datasets[0]',
      entry: 0,
      targetCount: 1,
    });
  });

  it('reads files from disk and names a missing one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-config-'));
    try {
      writeFileSync(join(dir, 'c.yaml'), 'datasets:\n  - { name: tank/a, target: s3://bucket-a/x }\n');
      expect((await loadConfig(join(dir, 'c.yaml'))).datasets[0]!.target).toBe('s3://bucket-a/x');
      await expect(loadConfig(join(dir, 'missing.yaml'))).rejects.toThrow(`${join(dir, 'missing.yaml')}: cannot read the config file (no such file)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('matches pick patterns as globs', () => {
    const re = snapshotPattern('autosnap_*_daily');
    expect(re.test('autosnap_2026-11-22_00:00:01_daily')).toBe(true);
    expect(re.test('autosnap_2026-11-22_00:00:01_hourly')).toBe(false);
    expect(snapshotPattern('a.b?').test('a.bc')).toBe(true);
    expect(snapshotPattern('a.b?').test('axbc')).toBe(false);
  });
});

describe('config: several targets per dataset (targets:)', () => {
  it('one resolved entry per target, each with its own settings over the entry and defaults', () => {
    const c = parse(`defaults:
  keep: { daily: 7 }
  full_every: 30d
datasets:
  - name: tank/a
    max_chain: 10
    targets:
      - /srv/usb
      - url: s3://bucket/zfs
        keep: { monthly: 12 }
        full_every: 90d
        hold: true
        s3: { region: eu-central-1 }
  - name: tank/b
    target: /srv/b
`);
    expect(c.datasets.map((d) => [d.name, d.target, d.entry, d.targetCount, d.where, d.hold, d.fullEveryMs, d.maxChain, d.keep?.keepDaily, d.keep?.keepMonthly, d.s3])).toEqual([
      ['tank/a', '/srv/usb', 0, 2, 'datasets[0].targets[0]', false, 30 * 86_400_000, 10, 7, 0, {}],
      ['tank/a', 's3://bucket/zfs', 0, 2, 'datasets[0].targets[1]', true, 90 * 86_400_000, 10, 7, 12, { region: 'eu-central-1' }],
      ['tank/b', '/srv/b', 1, 1, 'datasets[1]', false, 30 * 86_400_000, undefined, 7, 0, {}],
    ]);
  });

  it('targets in defaults apply to every entry without its own target(s)', () => {
    const c = parse('defaults:\n  targets: [/srv/a, /srv/b]\ndatasets:\n  - name: tank/x\n  - name: tank/y\n    target: /srv/c\n');
    expect(c.datasets.map((d) => [d.name, d.target, d.where])).toEqual([
      ['tank/x', '/srv/a', 'datasets[0].targets[0]'],
      ['tank/x', '/srv/b', 'datasets[0].targets[1]'],
      ['tank/y', '/srv/c', 'datasets[1]'],
    ]);
  });

  it('refuses target and targets together, an empty list, a target twice, a missing url and keys a target cannot set', () => {
    const entry = (extra: string) => `datasets:\n  - name: tank/a\n${extra}`;
    expect(problem(entry('    target: /srv/a\n    targets: [/srv/b]\n'))).toBe(`${FILE}:4: datasets[0].targets: give target or targets, not both`);
    expect(problem(entry('    targets: []\n'))).toMatch(/datasets\[0\]\.targets: expected a non-empty list of targets/);
    expect(problem(entry('    targets: [/srv/a, /srv/a]\n'))).toMatch(/datasets\[0\]\.targets\[1\]: \/srv\/a is already a target of this entry \(datasets\[0\]\.targets\[0\]\)/);
    expect(problem(entry('    targets: [{ keep: { daily: 1 } }]\n'))).toMatch(/datasets\[0\]\.targets\[0\]\.url: missing/);
    expect(problem(entry('    targets: [{ url: /srv/a, snapshot: { prefix: x } }]\n'))).toMatch(/datasets\[0\]\.targets\[0\]\.snapshot: unknown key/);
  });
});

describe('config: bad files give one line naming file, line, key and why', () => {
  const ds = (extra: string) => `datasets:\n  - name: tank/a\n    target: /srv/a\n${extra}`;

  it('wrong types', () => {
    expect(problem(`datasets:\n  - name: tank/a\n    target: /srv/a\n  - name: tank/b\n    target: /srv/b\n    keep:\n      daily: x\n`)).toBe(
      `${FILE}:7: datasets[1].keep.daily: expected a whole number ≥ 0, got "x"`,
    );
    expect(problem(ds('    recursive: yes\n'))).toBe(`${FILE}:4: datasets[0].recursive: expected true or false, got "yes"`);
    expect(problem(ds('    max_chain: 0\n'))).toBe(`${FILE}:4: datasets[0].max_chain: expected a whole number ≥ 1, got 0`);
    expect(problem(ds('    compression_level: 25\n'))).toBe(`${FILE}:4: datasets[0].compression_level: expected a whole number from -7 to 19, got 25`);
    expect(problem(ds('    raw: maybe\n'))).toBe(`${FILE}:4: datasets[0].raw: expected true, false or auto, got "maybe"`);
    expect(problem(ds('    keep: [7]\n'))).toBe(`${FILE}:4: datasets[0].keep: expected a mapping of keys, got a list`);
    expect(problem(ds('    on_failure: []\n'))).toBe(`${FILE}:4: datasets[0].on_failure: expected a command line or a list of arguments, got an empty list`);
    expect(problem('datasets: tank/a\n')).toBe(`${FILE}:1: datasets: expected a non-empty list of datasets`);
    expect(problem('datasets:\n  - tank/a\n')).toBe(`${FILE}:2: datasets[0]: expected a mapping of keys, got "tank/a"`);
  });

  it('unknown keys, with a suggestion when one is close', () => {
    expect(problem(ds('    keeep: { daily: 1 }\n'))).toBe(`${FILE}:4: datasets[0].keeep: unknown key (did you mean "keep"?)`);
    expect(problem(ds('    full-every: 30d\n'))).toBe(`${FILE}:4: datasets[0].full-every: unknown key (did you mean "full_every"?)`);
    expect(problem(ds('    keep: { dayly: 1 }\n'))).toBe(`${FILE}:4: datasets[0].keep.dayly: unknown key (did you mean "daily"?)`);
    expect(problem(`defaults:\n  target: /srv/a\n  colour: blue\ndatasets: [{ name: tank }]\n`)).toMatch(
      new RegExp(`^${FILE}:3: defaults.colour: unknown key; allowed here: target, recursive, snapshot,`),
    );
    expect(problem(`default:\n  target: /srv/a\ndatasets: [{ name: tank }]\n`)).toBe(`${FILE}:1: default: unknown key (did you mean "defaults"?)`);
    expect(problem(ds('    s3: { endpiont: http://x }\n'))).toBe(`${FILE}:4: datasets[0].s3.endpiont: unknown key (did you mean "endpoint"?)`);
    expect(problem(ds('    snapshot: { mode: create, pattern: "x*" }\n'))).toBe(`${FILE}:4: datasets[0].snapshot.pattern: only mode pick takes a pattern (mode create takes prefix)`);
  });

  it('missing target, name or datasets', () => {
    expect(problem('datasets:\n  - name: tank/a\n')).toBe(
      `${FILE}:2: datasets[0].target: missing: set target here or in defaults (s3://bucket/prefix, sftp://user@host/path or a directory; or targets: a list of them)`,
    );
    expect(problem('datasets:\n  - target: /srv/a\n')).toBe(`${FILE}:2: datasets[0].name: missing: the dataset to archive, e.g. tank/home`);
    expect(problem('defaults:\n  target: /srv/a\n')).toBe(`${FILE}: datasets: missing: list the datasets to archive`);
    expect(problem('')).toBe(`${FILE}: the config file is empty: it needs a datasets list`);
    expect(problem(ds('  - name: tank/a\n'))).toBe(`${FILE}:4: datasets[1].name: tank/a is already configured in datasets[0]`);
    expect(problem('datasets:\n  - { name: "tank/a@snap", target: /x }\n')).toBe(`${FILE}:2: datasets[0].name: expected a ZFS dataset name such as tank/home, got "tank/a@snap"`);
    // Names that would climb out of the dataset's directory in the archive (issue 15.7), as put --dataset refuses them.
    for (const bad of ['tank/..', 'tank/../../up', 'tank/./a', 'tank/a/.', `tank/${'x'.repeat(260)}`]) {
      expect(problem(`datasets:\n  - { name: "${bad}", target: /x }\n`)).toBe(`${FILE}:2: datasets[0].name: expected a ZFS dataset name such as tank/home, got "${bad}"`);
    }
    expect(parse('datasets:\n  - { name: "tank/a..b/.c", target: /x }\n').datasets[0]?.name).toBe('tank/a..b/.c');
    expect(problem(ds('    snapshot: { mode: pick }\n'))).toBe(`${FILE}:4: datasets[0].snapshot.pattern: missing: mode pick needs the pattern of the snapshots to pick, e.g. "autosnap_*_daily"`);
  });

  it('invalid durations, sizes and targets', () => {
    expect(problem(ds('    full_every: 30\n'))).toBe(`${FILE}:4: datasets[0].full_every: expected a duration such as 30d, 12h or 2w, got 30`);
    expect(problem(ds('    full_every: 30 days\n'))).toBe(`${FILE}:4: datasets[0].full_every: expected a duration such as 30d, 12h or 2w, got "30 days"`);
    expect(problem(ds('    full_every: 0d\n'))).toBe(`${FILE}:4: datasets[0].full_every: expected a duration such as 30d, 12h or 2w (more than 0), got "0d"`);
    expect(problem(ds('    chunk_size: 64Q\n'))).toBe(`${FILE}:4: datasets[0].chunk_size: expected a size such as 64M or 1G, got "64Q"`);
    expect(problem(ds('    chunk_size: 2G\n'))).toBe(`${FILE}:4: datasets[0].chunk_size: "2G" is out of range (1M to 1G)`);
    expect(problem(ds('    bwlimit: fast\n'))).toBe(`${FILE}:4: datasets[0].bwlimit: expected a rate in bytes per second such as 20M or 512K, got "fast"`);
    expect(problem('datasets:\n  - name: tank/a\n    target: ftp://host/x\n')).toMatch(new RegExp(`^${FILE}:3: datasets\\[0\\].target: ftp://host/x: unknown target scheme "ftp://"`));
    expect(problem('datasets:\n  - name: tank/a\n    target: s3://Bad_Bucket/x\n')).toMatch(/:3: datasets\[0\]\.target: s3:\/\/Bad_Bucket\/x: "Bad_Bucket" is not a valid bucket name/);
  });

  it('refuses inline secrets, pointing to the reference to use instead', () => {
    expect(problem(ds('    s3: { secret_access_key: hunter2 }\n'))).toBe(
      `${FILE}:4: datasets[0].s3.secret_access_key: secrets are not accepted in the config file; use secret_access_key_env (an environment variable name) or credentials_file`,
    );
    expect(problem(ds('    sftp: { password: hunter2 }\n'))).toBe(`${FILE}:4: datasets[0].sftp.password: secrets are not accepted in the config file; use password_env (an environment variable name)`);
    const leaked = problem('datasets:\n  - name: tank/a\n    target: sftp://u:hunter2@host/x\n');
    expect(leaked).toMatch(/a password does not belong in the URL/);
    expect(leaked).not.toContain('hunter2');
    expect(problem(ds('    s3: { secret_access_key_env: "my secret" }\n'))).toBe(
      `${FILE}:4: datasets[0].s3.secret_access_key_env: expected the NAME of an environment variable (letters, digits, _), got "my secret"`,
    );
  });

  it('a retention policy that keeps nothing', () => {
    expect(problem(ds('    keep: { daily: 0, min_fulls: 3 }\n'))).toBe(
      `${FILE}:4: datasets[0].keep: keeps nothing: give at least one of last, daily, weekly, monthly, yearly a count above 0 (or keep: false to never prune)`,
    );
    expect(problem(`defaults:\n  keep: { min_fulls: 1 }\n${ds('')}`)).toMatch(new RegExp(`^${FILE}:2: defaults.keep: keeps nothing`));
  });

  it('YAML syntax errors and duplicate keys, with line and column', () => {
    expect(problem('datasets:\n  - name: tank/a\n    target: [unclosed\n')).toMatch(new RegExp(`^${FILE}:\\d+:\\d+: invalid YAML: `));
    expect(problem(ds('    target: /srv/b\n'))).toMatch(new RegExp(`^${FILE}:4:5: invalid YAML: Map keys must be unique`));
  });
});

describe('config: the drill: section (zfs-offsite drill --config)', () => {
  it('reads pool, datasets and sample; absent, there is none; docs/config.example.yaml has one', async () => {
    const base = 'defaults: { target: /srv/archive }\ndatasets:\n  - name: tank/home\n';
    expect(parse(base).drill).toBeUndefined();
    expect(parse(`${base}drill:\n  pool: scratch/drills\n  datasets: [tank/home]\n  sample: true\n`).drill).toEqual({ pool: 'scratch/drills', datasets: ['tank/home'], sample: true });
    expect(parse(`${base}drill: { pool: tank }\n`).drill).toEqual({ pool: 'tank', sample: false });
    const example = await loadConfig(new URL('../../docs/config.example.yaml', import.meta.url).pathname);
    expect(example.drill).toEqual({ pool: 'tank', sample: false });
  });

  it('bad values name the key', () => {
    const base = 'defaults: { target: /srv/archive }\ndatasets:\n  - name: tank/home\n';
    expect(problem(`${base}drill: { pool: tank, sample: sometimes }\n`)).toMatch(/drill\.sample/);
    expect(problem(`${base}drill: { pool: tank, datasets: [] }\n`)).toMatch(/drill\.datasets: expected a non-empty list/);
    expect(problem(`${base}drill: { pool: "../x" }\n`)).toMatch(/drill\.pool/);
    expect(problem(`${base}drill: { pool: tank, mount: true }\n`)).toMatch(/drill/);
  });
});
