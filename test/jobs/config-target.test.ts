/**
 * Issue 16.3: list, verify, restore and prune take `--config FILE [--dataset NAME]` and use the
 * targets and credentials `run --config` uses: each dataset on its entry's target, opened with
 * its entry's settings (an SFTP password by the name of its environment variable here, never
 * printed). Two local directory targets and one SFTP target, as a user's config would have.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { SSHD_HINT, type SshdSettings, sshdSettings, uniqueSftpDir } from '../support/sshd.js';

const PW_ENV = 'ZFS_OFFSITE_TEST_BOX_PW_16';

let dir: string;
let a: string;
let b: string;
let sftp: SshdSettings;
let sftpUrl: string;
let cleanupSftp: () => Promise<void>;
let config: string;
const outputs: CliResult[] = [];

/** The CLI with the password variable set (as in a credentials.env) and no ZFS_OFFSITE_TARGET unless given. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await runCli(args, { env: { ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks'), [PW_ENV]: sftp.password, ...env } });
  outputs.push(r);
  return r;
}

async function put(to: string, fixture: string, dataset: string, ...flags: string[]): Promise<void> {
  const r = await runCli(['put', '--to', to, '--dataset', dataset, ...flags], { input: fixtureBytes(fixture) });
  expect([r.code, r.stderr]).toEqual([0, '']);
}

/** A config: tank/home (recursive) on A, data/db on B (never pruned), remote/fs on the SFTP box by password. */
function writeConfig(name: string, extra = '', knownHosts = sftp.knownHosts): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `defaults:
  target: ${a}
  keep: { last: 1 }
datasets:
  - name: tank/home
    recursive: true
  - name: data/db
    target: ${b}
    keep: false
  - name: remote/fs
    target: ${sftpUrl}
    sftp: { known_hosts: ${knownHosts}, password_env: ${PW_ENV} }
${extra}`,
  );
  return file;
}

beforeAll(async () => {
  const s = sshdSettings();
  if (!s) throw new Error(SSHD_HINT);
  sftp = s;
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-config-target-'));
  a = join(dir, 'usb-a');
  b = join(dir, 'usb-b');
  const remote = uniqueSftpDir(sftp, 'config-target');
  cleanupSftp = remote.cleanup;
  sftpUrl = `sftp://${sftp.user}@${sftp.host}:${sftp.port}/${remote.rel}`;
  // Two fulls of tank/home (keep: { last: 1 } lets one go), one of its child, one on each other target.
  await put(a, 'zse-tiny-full.zfs', 'tank/home');
  await put(a, 'zse-advanced-raw-full.zfs', 'tank/home');
  await put(a, 'zse-tiny-full.zfs', 'tank/home/alice');
  await put(b, 'zse-advanced-raw-full.zfs', 'data/db');
  await put(sftpUrl, 'zse-tiny-full.zfs', 'remote/fs', '--sftp-key', sftp.key, '--sftp-known-hosts', sftp.knownHosts);
  config = writeConfig('config.yaml');
});

afterAll(async () => {
  // Whatever was run: the password of the config's variable never reached a user.
  for (const r of outputs) expect(`${r.stdout}${r.stderr}`).not.toContain(sftp.password);
  await cleanupSftp?.();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Section {
  target: string;
  datasets: { dataset: string; streams: unknown[] }[];
  notArchived: string[];
}

describe('list --config', () => {
  it('lists every dataset of the config from its own target, one section per target', async () => {
    const r = await cli(['list', '--config', config, '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const sections = JSON.parse(r.stdout) as Section[];
    expect(sections.map((s) => [s.target, s.datasets.map((d) => d.dataset)])).toEqual([
      [a, ['tank/home', 'tank/home/alice']],
      [b, ['data/db']],
      [expect.stringContaining(sftpUrl.replace(/^sftp:\/\//, '')), ['remote/fs']],
    ]);
    const text = await cli(['list', '--config', config]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`target ${a}:\n`);
    expect(text.stdout).toContain(`target ${b}:\n`);
    expect(text.stdout).toMatch(/target sftp:\/\/\S+:\n/);
  });

  it('--dataset: an entry, or a child of a recursive entry, only that one', async () => {
    const child = await cli(['list', '--config', config, '--dataset', 'tank/home/alice', '--json']);
    expect([child.code, child.stderr]).toEqual([0, '']);
    expect((JSON.parse(child.stdout) as Section[]).map((s) => [s.target, s.datasets.map((d) => d.dataset)])).toEqual([[a, ['tank/home/alice']]]);
    const remote = await cli(['list', '--config', config, '--dataset', 'remote/fs', '--json']);
    expect([remote.code, remote.stderr]).toEqual([0, '']);
    expect((JSON.parse(remote.stdout) as Section[]).flatMap((s) => s.datasets.map((d) => d.dataset))).toEqual(['remote/fs']);
  });

  it('a dataset of the config not archived yet is said, not an error; named by --dataset it is exit 2', async () => {
    const file = writeConfig('with-new.yaml', '  - name: tank/new\n');
    const r = await cli(['list', '--config', file, '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect((JSON.parse(r.stdout) as Section[])[0]!.notArchived).toEqual(['tank/new']);
    const named = await cli(['list', '--config', file, '--dataset', 'tank/new']);
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/^zfs-offsite: error: no dataset tank\/new in the archive at .*\n$/);
  });

  it('a setting flag given on the command line overrides the config (here: known_hosts)', async () => {
    const wrong = join(dir, 'empty_known_hosts');
    writeFileSync(wrong, '');
    const file = writeConfig('bad-hosts.yaml', '', wrong);
    const refused = await cli(['list', '--config', file, '--dataset', 'remote/fs']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^zfs-offsite: error: .*\n$/);
    const fixed = await cli(['list', '--config', file, '--dataset', 'remote/fs', '--sftp-known-hosts', sftp.knownHosts]);
    expect([fixed.code, fixed.stderr]).toEqual([0, '']);
    expect(fixed.stdout).toContain('remote/fs');
  });

  it('--config beats ZFS_OFFSITE_TARGET', async () => {
    const r = await cli(['list', '--config', config, '--dataset', 'data/db'], { ZFS_OFFSITE_TARGET: join(dir, 'usb-typo') });
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain('data/db');
    expect(readdirSync(dir)).not.toContain('usb-typo');
  });
});

interface VerifyJson {
  config: string;
  targets: { target: string; datasets: { dataset: string }[] }[];
  problems: { target: string; kind: string; dataset: string }[];
}

describe('verify --config', () => {
  it('verifies each dataset on its target: clean, exit 0; --deep too', async () => {
    const r = await cli(['verify', '--config', config, '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const report = JSON.parse(r.stdout) as VerifyJson;
    expect(report.problems).toEqual([]);
    expect(report.targets.map((t) => t.datasets.map((d) => d.dataset))).toEqual([['tank/home', 'tank/home/alice'], ['data/db'], ['remote/fs']]);
    const deep = await cli(['verify', '--config', config, '--deep']);
    expect([deep.code, deep.stderr]).toEqual([0, '']);
    expect(deep.stdout).toMatch(/^3 targets: clean /m);
  });

  it('a problem on one target is exit 3, and the combined report names its target', async () => {
    const copy = join(dir, 'usb-b-damaged');
    rmSync(copy, { recursive: true, force: true });
    await put(copy, 'zse-advanced-raw-full.zfs', 'data/db');
    const file = writeConfig('damaged.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(`target: ${b}`, `target: ${copy}`));
    const chunkDir = join(copy, 'data', 'db');
    const [stream] = readdirSync(chunkDir);
    const chunk = readdirSync(join(chunkDir, stream!)).find((n) => n.endsWith('.zst'))!;
    unlinkSync(join(chunkDir, stream!, chunk));
    const r = await cli(['verify', '--config', file, '--json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as VerifyJson;
    expect(report.problems).toEqual([expect.objectContaining({ target: copy, kind: 'chunk-missing', dataset: 'data/db' })]);
  });

  it('a dataset of the config its target does not hold is a problem (no run archived it): exit 3', async () => {
    const r = await cli(['verify', '--config', writeConfig('with-new2.yaml', '  - name: tank/new\n'), '--json']);
    expect(r.code).toBe(3);
    expect((JSON.parse(r.stdout) as VerifyJson).problems).toEqual([expect.objectContaining({ target: a, kind: 'not-archived', dataset: 'tank/new' })]);
  });
});

describe('restore --config', () => {
  it('takes the target and credentials of the entry that holds the dataset: SFTP by password, and a recursive child', async () => {
    const remote = join(dir, 'remote.zfs');
    const r = await cli(['restore', 'remote/fs', '--config', config, '--output', remote]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(readFileSync(remote).equals(fixtureBytes('zse-tiny-full.zfs'))).toBe(true);
    const alice = join(dir, 'alice.zfs');
    const c = await cli(['restore', 'tank/home/alice', '--config', config, '--output', alice], { ZFS_OFFSITE_TARGET: b });
    expect([c.code, c.stderr]).toEqual([0, '']);
    expect(readFileSync(alice).equals(fixtureBytes('zse-tiny-full.zfs'))).toBe(true);
  });
});

interface PruneJson {
  reports: { target: string; datasets: { dataset: string; deleted: unknown[] }[] }[];
  skipped: { dataset: string; reason: string }[];
  dryRun: boolean;
}

describe('prune --config', () => {
  it("prunes each dataset by its entry's keep: on its target; keep: false is left alone", async () => {
    const dry = await cli(['prune', '--config', config, '--dry-run', '--json']);
    expect([dry.code, dry.stderr]).toEqual([0, '']);
    const plan = JSON.parse(dry.stdout) as PruneJson;
    expect(plan.reports.map((r) => [r.target, r.datasets.map((d) => [d.dataset, d.deleted.length])])).toEqual([
      [
        a,
        [
          ['tank/home', 1],
          ['tank/home/alice', 0],
        ],
      ],
      [expect.stringContaining(sftp.host), [['remote/fs', 0]]],
    ]);
    expect(plan.skipped).toEqual([{ target: b, dataset: 'data/db', reason: 'keep: false (never pruned)' }]);
    const only = await cli(['prune', '--config', config, '--dataset', 'tank/home', '--json']);
    expect([only.code, only.stderr]).toEqual([0, '']);
    expect((JSON.parse(only.stdout) as PruneJson).reports.map((r) => r.datasets.map((d) => [d.dataset, d.deleted.length]))).toEqual([
      [
        ['tank/home', 1],
        ['tank/home/alice', 0],
      ],
    ]);
    const listed = await cli(['list', '--config', config, '--dataset', 'tank/home', '--json']);
    expect((JSON.parse(listed.stdout) as Section[])[0]!.datasets.map((d) => [d.dataset, d.streams.length])).toEqual([
      ['tank/home', 1],
      ['tank/home/alice', 1],
    ]);
    const never = await cli(['prune', '--config', config, '--dataset', 'data/db']);
    expect(never.code).toBe(2);
    expect(never.stderr).toMatch(/^zfs-offsite: error: data\/db is never pruned: .*keep: false.*\n$/);
  });
});

describe('--config usage errors: exit 2, one line', () => {
  it.each([
    [
      'an unknown dataset, with a did-you-mean',
      ['list', '--config', 'CONFIG', '--dataset', 'tank/hme'],
      /^zfs-offsite: error: dataset tank\/hme is not in \S+config\.yaml — did you mean tank\/home\? \(it configures: tank\/home, data\/db, remote\/fs\)\n$/,
    ],
    ['verify of an unknown dataset', ['verify', '--config', 'CONFIG', '--dataset', 'nope/x'], /^zfs-offsite: error: dataset nope\/x is not in /],
    [
      'restore of a dataset no entry holds',
      ['restore', 'data/db/child', '--config', 'CONFIG', '--output', 'OUT'],
      /^zfs-offsite: error: dataset data\/db\/child is not in \S+config\.yaml \(it configures: tank\/home, data\/db, remote\/fs\)\n$/,
    ],
    ['--config with a TARGET', ['list', 'TARGET', '--config', 'CONFIG'], /^zfs-offsite: error: --config and TARGET exclude each other/],
    ['--config with a TARGET (verify)', ['verify', 'TARGET', '--config', 'CONFIG'], /^zfs-offsite: error: --config and TARGET exclude each other/],
    ['--config with --from', ['restore', 'remote/fs', '--config', 'CONFIG', '--from', 'TARGET', '--output', 'OUT'], /^zfs-offsite: error: --config and --from exclude each other/],
    ['--dataset without --config', ['list', 'TARGET', '--dataset', 'tank/home'], /^zfs-offsite: error: --dataset goes with --config/],
    ['--keep-* with --config', ['prune', '--config', 'CONFIG', '--keep-last', '3'], /^zfs-offsite: error: --keep-last and --config exclude each other/],
    ['a missing config file', ['verify', '--config', 'MISSING'], /^zfs-offsite: error: \S+no-such\.yaml: cannot read the config file \(no such file\)\n$/],
    ['a bad config file', ['list', '--config', 'BAD'], /^zfs-offsite: error: \S+bad\.yaml:\d+: .*\n$/],
  ])('%s', async (_what, args, says) => {
    writeFileSync(join(dir, 'bad.yaml'), 'datasets:\n  - name: tank/home\n    keep: { daily: lots }\n');
    const out = join(dir, 'never.zfs');
    const swap: Record<string, string> = { CONFIG: config, TARGET: a, OUT: out, MISSING: join(dir, 'no-such.yaml'), BAD: join(dir, 'bad.yaml') };
    const r = await cli(args.map((x) => swap[x] ?? x));
    expect(r.stderr).toMatch(says);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(readdirSync(dir)).not.toContain('never.zfs');
  });
});
