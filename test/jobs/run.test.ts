/**
 * `run --config` against the zfs stand-in (real OpenZFS streams): per-dataset isolation,
 * incrementals after the first full, base protection with bookmarks, on_failure, dry run, and
 * bad configs. The real-ZFS VM suite runs the same job on OpenZFS.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { SSHD_HINT, sshdSettings, uniqueSftpDir } from '../support/sshd.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const DS = 'labpool/zfs-send-tiny';
const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
const incremental = firstBeginGuids(fixtureBytes('zse-tiny-incremental.zfs')).toguid.toString();

let dir: string;
const statePath = () => join(dir, 'state.json');
const state = () => JSON.parse(readFileSync(statePath(), 'utf8')) as { datasets: Record<string, { bookmarks?: { name: string; guid: string }[] }> };

/** The short id the archive's marker gives the target: it names the target's bookmarks (archive/plan/bookmarks.ts). */
const targetId = (archive = join(dir, 'archive')) => (JSON.parse(readFileSync(join(archive, 'zfs-offsite.json'), 'utf8')) as { id: string }).id;

function config(pattern: string, extra = ''): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `defaults:
  target: ${join(dir, 'archive')}
  on_failure: [${process.execPath}, -e, "require('fs').writeFileSync(process.argv[1], JSON.stringify({d: process.env.ZFS_OFFSITE_DATASET, s: process.env.ZFS_OFFSITE_STEP, e: process.env.ZFS_OFFSITE_ERROR}))", ${join(dir, 'failed.json')}]
datasets:
  - name: ${DS}
    snapshot: { mode: pick, pattern: "${pattern}" }
  - name: nopool/gone
    snapshot: { mode: pick, pattern: "*" }
${extra}`,
  );
  return file;
}

/** Adds a retention policy to one dataset of a config file written by config(). */
function withKeep(file: string, dataset: string): string {
  writeFileSync(file, readFileSync(file, 'utf8').replace(`name: ${dataset}\n`, `name: ${dataset}\n    keep: { daily: 3 }\n`));
  return file;
}

const run = (...args: string[]) =>
  runCli(['run', ...args], { env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: statePath(), ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') } });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-run-'));
  writeFileSync(
    statePath(),
    JSON.stringify({
      log: join(dir, 'zfs.log'),
      datasets: {
        [DS]: {
          encryption: 'off',
          snapshots: [
            { name: 'base', guid: base, createtxg: 100, creation: 1786111636 },
            { name: 'incremental', guid: incremental, createtxg: 200, creation: 1786111637 },
          ],
        },
      },
      streams: { [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs'), [`${base}:${incremental}`]: join(FIXTURE_DIR, 'zse-tiny-incremental.zfs') },
    }),
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('run --config', () => {
  it('archives a full, then an incremental, keeps one protective bookmark, and isolates a failing dataset', async () => {
    const first = await run('--config', config('base'), '--json');
    const report = JSON.parse(first.stdout) as { ok: boolean; results: { dataset: string; status: string; kind?: string; step?: string }[] };
    expect(first.code).toBe(1);
    expect(report.results.map((r) => [r.dataset, r.status, r.kind ?? r.step])).toEqual([
      [DS, 'ok', 'full'],
      ['nopool/gone', 'failed', 'snapshot'],
    ]);
    expect(JSON.parse(readFileSync(join(dir, 'failed.json'), 'utf8'))).toEqual({ d: 'nopool/gone', s: 'snapshot', e: 'dataset not found: nopool/gone' });
    expect(state().datasets[DS]!.bookmarks).toEqual([expect.objectContaining({ name: `zfs-offsite-${targetId()}_base`, guid: base })]);

    const second = await run('--config', config('*'), '--dataset', DS);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/labpool\/zfs-send-tiny\s+ok\s+incremental\s+incr/);
    expect(second.stdout).toMatch(/all 1 dataset\(s\) ok/);
    expect(state().datasets[DS]!.bookmarks).toEqual([expect.objectContaining({ name: `zfs-offsite-${targetId()}_incremental`, guid: incremental })]);
    const manifests = listFiles(join(dir, 'archive'))
      .filter((f) => f.endsWith('manifest.json'))
      .map((f) => readJson<Manifest>(join(dir, 'archive', f)));
    expect(manifests.map((m) => [m.kind, m.to.name, m.from?.name ?? null]).sort()).toEqual([
      ['full', 'base', null],
      ['incr', 'incremental', 'base'],
    ]);
    // Nothing left locked.
    expect(listFiles(join(dir, 'archive')).filter((f) => f.endsWith('lease.json'))).toEqual([]);
  });

  it('sends from the bookmark after the base snapshot was destroyed on the source', async () => {
    expect((await run('--config', config('base'), '--dataset', DS)).code).toBe(0);
    const s = JSON.parse(readFileSync(statePath(), 'utf8'));
    s.datasets[DS].snapshots.shift(); // a local pruning tool destroyed @base
    writeFileSync(statePath(), JSON.stringify(s));
    const r = await run('--config', config('*'), '--dataset', DS);
    expect(r.code).toBe(0);
    const sends = readFileSync(join(dir, 'zfs.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('["send"'));
    expect(JSON.parse(sends.at(-1)!)).toEqual(['send', '-L', '-c', '-i', `${DS}#zfs-offsite-${targetId()}_base`, `${DS}@incremental`]);
  });

  it('starts a new full when the source diverged from the archive, and says so', async () => {
    expect((await run('--config', config('base'), '--dataset', DS)).code).toBe(0);
    const s = JSON.parse(readFileSync(statePath(), 'utf8'));
    s.datasets[DS].snapshots = [s.datasets[DS].snapshots[1]]; // only @incremental left …
    s.datasets[DS].bookmarks = []; // … and no bookmark: the archived base is gone from the source
    s.streams[`0:${incremental}`] = join(FIXTURE_DIR, 'zse-tiny-incremental.zfs'); // (stand-in payload)
    writeFileSync(statePath(), JSON.stringify(s));
    const r = await run('--config', config('*'), '--dataset', DS, '--json');
    const report = JSON.parse(r.stdout) as { results: { kind: string; why: string }[] };
    expect(report.results[0]!.why).toMatch(/diverged/);
    const sends = readFileSync(join(dir, 'zfs.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('["send"'));
    expect(JSON.parse(sends.at(-1)!)).toEqual(['send', '-L', '-c', `${DS}@incremental`]);
  });

  it('--dry-run plans without snapshotting, sending or pruning', async () => {
    const r = await run('--config', config('base'), '--dataset', DS, '--dry-run', '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { results: { status: string; kind: string; snapshot: string }[] };
    expect(report.results).toEqual([expect.objectContaining({ status: 'planned', kind: 'full', snapshot: `${DS}@base` })]);
    expect(readFileSync(join(dir, 'zfs.log'), 'utf8')).not.toMatch(/"send"|"snapshot"|"bookmark"/);
  });

  it('--dry-run on an empty target (no archive yet) succeeds, prunes nothing, runs no hook and creates nothing', async () => {
    const r = await run('--config', withKeep(config('base'), DS), '--dataset', DS, '--dry-run', '--json');
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; results: { status: string; kind: string; prunedStreams?: number }[] };
    expect(report.ok).toBe(true);
    expect(report.results).toEqual([expect.objectContaining({ status: 'planned', kind: 'full', prunedStreams: 0 })]);
    expect(existsSync(join(dir, 'archive'))).toBe(false);
    expect(existsSync(join(dir, 'failed.json'))).toBe(false);
  });

  it('--dry-run never runs on_failure, even for a dataset whose plan fails', async () => {
    const r = await run('--config', config('base'), '--dry-run', '--json');
    const report = JSON.parse(r.stdout) as { results: { dataset: string; status: string }[] };
    expect(report.results.map((x) => [x.dataset, x.status])).toEqual([
      [DS, 'planned'],
      ['nopool/gone', 'failed'],
    ]);
    expect(r.code).toBe(1);
    expect(existsSync(join(dir, 'failed.json'))).toBe(false);
    expect(existsSync(join(dir, 'archive'))).toBe(false);
  });

  it('--dry-run against an archive that does not have the dataset yet prunes nothing and succeeds', async () => {
    expect((await run('--config', config('base'), '--dataset', DS)).code).toBe(0); // the archive now exists, with DS only
    const s = JSON.parse(readFileSync(statePath(), 'utf8'));
    s.datasets['labpool/fresh'] = s.datasets[DS];
    writeFileSync(statePath(), JSON.stringify(s));
    const file = config('base', '  - name: labpool/fresh\n    snapshot: { mode: pick, pattern: "base" }\n    keep: { daily: 3 }\n');
    const r = await run('--config', file, '--dataset', 'labpool/fresh', '--dry-run', '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { results: { status: string; prunedStreams?: number }[] };
    expect(report.results).toEqual([expect.objectContaining({ status: 'planned', prunedStreams: 0 })]);
    expect(existsSync(join(dir, 'failed.json'))).toBe(false);
  });

  it('--dataset runs that dataset only: a recursive entry that cannot hold it is not listed, nor reported failed', async () => {
    const file = config('base', '  - name: nopool/tree\n    recursive: true\n');
    const r = await run('--config', file, '--dataset', DS, '--dry-run', '--json');
    const report = JSON.parse(r.stdout) as { results: { dataset: string; status: string }[] };
    expect(report.results.map((x) => [x.dataset, x.status])).toEqual([[DS, 'planned']]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'zfs.log'), 'utf8')).not.toMatch(/nopool\/tree/);
  });

  it('an SFTP dataset does not take the S3 credential variables of the defaults (as in the example config)', async () => {
    const sftp = sshdSettings();
    if (!sftp) throw new Error(SSHD_HINT);
    const { rel, cleanup } = uniqueSftpDir(sftp, 'run-sftp');
    try {
      // As docs/config.example.yaml: S3 defaults naming variables that are not set, one SFTP dataset.
      const file = join(dir, 'config.yaml');
      writeFileSync(
        file,
        `defaults:
  target: s3://my-bucket/offsite
  s3: { endpoint: https://s3.example.invalid, access_key_id_env: NO_SUCH_KEY_ID_16, secret_access_key_env: NO_SUCH_APP_KEY_16 }
  keep: { daily: 3 }
datasets:
  - name: ${DS}
    snapshot: { mode: pick, pattern: "base" }
    target: sftp://${sftp.user}@${sftp.host}:${sftp.port}/${rel}
    sftp: { key: ${sftp.key}, known_hosts: ${sftp.knownHosts} }
`,
      );
      const r = await run('--config', file, '--json');
      expect(r.stderr).not.toMatch(/NO_SUCH|error/i);
      const report = JSON.parse(r.stdout) as { results: { status: string; kind: string }[] };
      expect(report.results).toEqual([expect.objectContaining({ status: 'ok', kind: 'full' })]);
      expect(r.code).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('refuses a bad config with one line naming the key, exit 2', async () => {
    const r = await run('--config', config('base', '    keep: { daily: lots }\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zfs-offsite: error: .*config\.yaml:\d+: datasets\[1\]\.keep\.daily: .*\n$/);
  });
});
