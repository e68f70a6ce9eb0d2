/**
 * `zfs-offsite drill` with the zfs stand-in (test/support/zfs-stand-in.mjs) as the receiving
 * side: exit codes, the report, the scratch dataset destroyed after a pass, a failure and an
 * interruption, leftovers of killed drills destroyed (and nothing else), a missing --pool refused.
 * The real-OpenZFS run of the same is test/e2e/drill.test.ts.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles } from '../support/archive-files.js';
import { CLI, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const TINY = 'labpool/zfs-send-tiny';

interface Report {
  pool: string;
  seed?: number;
  leftoversDestroyed: string[];
  passed: boolean;
  datasets: {
    dataset: string;
    snapshot?: string;
    sampled: boolean;
    raw: boolean;
    streams: string[];
    bytes: number;
    checkedSnapshots: number;
    result: string;
    failure?: { reason: string; stream?: string; message: string };
  }[];
}

let dir: string;
let archive: string;
let rawDataset: string;
let n = 0;

type State = { datasets: Record<string, { encryption?: string; props?: Record<string, string>; snapshots: { name: string; guid: string }[] }> };

/** A stand-in with the pool `tank` (and any `extra` datasets), and its state and calls. */
function standIn(receive: object = {}, extra: State['datasets'] = {}) {
  const state = join(dir, `state-${++n}.json`);
  const log = join(dir, `zfs-${n}.log`);
  writeFileSync(log, '');
  writeFileSync(state, JSON.stringify({ log, datasets: { tank: { encryption: 'off', snapshots: [] }, ...extra }, streams: {}, receive }));
  return {
    env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: state },
    datasets: () => Object.keys((JSON.parse(readFileSync(state, 'utf8')) as State).datasets).sort(),
    calls: () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]),
  };
}

const json = (stdout: string) => JSON.parse(stdout) as Report;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-drill-'));
  archive = join(dir, 'archive');
  mkdirSync(archive);
  for (const input of [fixtureBytes('zse-tiny-full.zfs'), fixtureBytes('zse-tiny-incremental.zfs'), fixtureBytes('zse-advanced-raw-full.zfs'), fixtureBytes('zse-advanced-raw-incremental.zfs')]) {
    const r = await runCli(['put', '--to', archive, '--json'], { input });
    expect(r.code).toBe(0);
  }
  const listed = JSON.parse((await runCli(['list', archive, '--json'])).stdout) as { dataset: string }[];
  rawDataset = listed.map((l) => l.dataset).find((d) => d !== TINY)!;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('drill', () => {
  it('a healthy archive: every dataset received under a marked scratch dataset, GUIDs equal, exit 0, nothing left', async () => {
    const zfs = standIn();
    const r = await runCli(['drill', '--from', archive, '--pool', 'tank', '--json'], { env: zfs.env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = json(r.stdout);
    expect(report.passed).toBe(true);
    expect(report.datasets.map((d) => [d.dataset, d.snapshot, d.raw, d.streams.length, d.checkedSnapshots, d.result]).sort()).toEqual(
      [
        [TINY, '@incremental', false, 2, 2, 'passed'],
        [rawDataset, expect.any(String), true, 2, 2, 'passed'],
      ].sort(),
    );
    const calls = zfs.calls();
    const create = calls.find((c) => c[0] === 'create')!;
    const scratch = create.at(-1)!;
    expect(scratch).toMatch(/^tank\/zfs-offsite-drill-\d{8}T\d{6}-[a-z0-9]+$/);
    expect(create).toEqual(['create', '-u', '-o', 'canmount=off', '-o', 'mountpoint=none', '-o', expect.stringMatching(new RegExp(`^zfs-offsite:drill=${hostname()}:\\d+:`)), scratch]);
    // Never mounted: every receive is -u, into the scratch dataset only.
    for (const c of calls.filter((c) => c[0] === 'receive')) expect(c).toEqual(['receive', '-u', expect.stringMatching(new RegExp(`^${scratch}/[12]$`))]);
    expect(calls.at(-1)).toEqual(['destroy', '-r', scratch]);
    expect(zfs.datasets()).toEqual(['tank']);
  });

  it('the table names each dataset and the verdict', async () => {
    const zfs = standIn();
    const r = await runCli(['drill', '--from', archive, TINY, '--pool', 'tank'], { env: zfs.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/DATASET +SNAPSHOT/);
    expect(r.stdout).toMatch(new RegExp(`${TINY} +@incremental +plain +2 .* passed`));
    expect(r.stdout).toMatch(/drill passed: 1 dataset restored under tank and destroyed again/);
  });

  it('a receive that records other GUIDs: exit 3, guid-mismatch naming the stream, scratch destroyed', async () => {
    const zfs = standIn({ guidDelta: 1 });
    const r = await runCli(['drill', '--from', archive, TINY, '--pool', 'tank', '--json'], { env: zfs.env });
    expect(r.code).toBe(3);
    const d = json(r.stdout).datasets[0]!;
    expect(d.result).toBe('failed');
    expect(d.failure).toMatchObject({ reason: 'guid-mismatch', stream: d.streams[0] });
    expect(d.failure!.message).toMatch(/@base has GUID \d+; stream \S+ says GUID \d+/);
    expect(zfs.datasets()).toEqual(['tank']);
  });

  it('zfs receive refuses the stream: exit 3, receive-refused with zfs own words, scratch destroyed', async () => {
    const zfs = standIn({ exitCode: 1, stderr: 'cannot receive new filesystem stream: invalid backup stream' });
    const r = await runCli(['drill', '--from', archive, TINY, '--pool', 'tank'], { env: zfs.env });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/FAILED \(receive-refused\)/);
    expect(r.stdout).toMatch(new RegExp(`${TINY}: receive-refused in stream \\S+: zfs receive -u tank/zfs-offsite-drill-\\S+/1 failed \\(exit 1\\).*invalid backup stream`));
    expect(r.stdout).toMatch(/drill FAILED: 1 of 1 dataset/);
    expect(zfs.datasets()).toEqual(['tank']);
  });

  it('a damaged chunk: exit 3, damaged naming the stream, scratch destroyed', async () => {
    const copy = join(dir, `damaged-${++n}`);
    cpSync(archive, copy, { recursive: true });
    const chunk = listFiles(copy).find((f) => f.startsWith(`${TINY}/`) && f.includes('-incr') && f.endsWith('.zst'));
    expect(chunk).toBeDefined();
    const bytes = readFileSync(join(copy, chunk!));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(join(copy, chunk!), bytes);
    const zfs = standIn();
    const r = await runCli(['drill', '--from', copy, TINY, '--pool', 'tank', '--json'], { env: zfs.env });
    expect(r.code).toBe(3);
    const d = json(r.stdout).datasets[0]!;
    expect(d.failure).toMatchObject({ reason: 'damaged' });
    expect(d.failure!.stream).toBeDefined();
    expect(chunk).toContain(d.failure!.stream);
    // The full before it was received whole: its bytes are counted, the damaged stream is the last.
    expect(d.streams).toHaveLength(2);
    expect(d.streams[1]).toBe(d.failure!.stream);
    expect(d.bytes).toBe(fixtureBytes('zse-tiny-full.zfs').length);
    expect(zfs.datasets()).toEqual(['tank']);
  });

  it("leftovers of killed drills are destroyed first; a running drill's, an unmarked one and other datasets are left alone", async () => {
    const mark = (owner: string) => ({ encryption: 'off', snapshots: [], props: { 'zfs-offsite:drill': owner } });
    const zfs = standIn(
      {},
      {
        'tank/zfs-offsite-drill-old': mark(`${hostname()}:999999999:2026-01-01T00:00:00Z`),
        'tank/zfs-offsite-drill-old/1': { encryption: 'off', snapshots: [{ name: 'x', guid: '5' }] },
        'tank/zfs-offsite-drill-elsewhere': mark('otherhost:1:2026-01-01T00:00:00Z'),
        'tank/zfs-offsite-drill-running': mark(`${hostname()}:${process.pid}:2026-01-01T00:00:00Z`),
        'tank/zfs-offsite-drill-unmarked': { encryption: 'off', snapshots: [] },
        'tank/home': mark('otherhost:1:2026-01-01T00:00:00Z'),
      },
    );
    const r = await runCli(['drill', '--from', archive, TINY, '--pool', 'tank', '--json'], { env: zfs.env });
    expect(r.code).toBe(0);
    expect(json(r.stdout).leftoversDestroyed.sort()).toEqual(['tank/zfs-offsite-drill-elsewhere', 'tank/zfs-offsite-drill-old']);
    expect(r.stderr).toMatch(/still running owns this scratch dataset/);
    expect(zfs.datasets()).toEqual(['tank', 'tank/home', 'tank/zfs-offsite-drill-running', 'tank/zfs-offsite-drill-unmarked']);
    expect(
      zfs
        .calls()
        .filter((c) => c[0] === 'destroy')
        .map((c) => c[2]),
    ).not.toContain('tank/home');
  });

  it('a scratch dataset that cannot be destroyed after a pass: exit 1 with zfs own words (the next drill destroys it)', async () => {
    const zfs = standIn();
    const state = JSON.parse(readFileSync(zfs.env.ZFS_STAND_IN_STATE, 'utf8')) as Record<string, unknown>;
    writeFileSync(zfs.env.ZFS_STAND_IN_STATE, JSON.stringify({ ...state, destroyFails: 'dataset is busy' }));
    const r = await runCli(['drill', '--from', archive, TINY, '--pool', 'tank'], { env: zfs.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^zfs-offsite: error: zfs destroy -r tank\/zfs-offsite-drill-\S+ failed \(exit 1\): cannot destroy '\S+': dataset is busy\n$/);
    expect(zfs.calls().filter((c) => c[0] === 'destroy').length).toBe(15);
  }, 180_000);

  it('a --pool that does not exist: exit 2, one line, nothing created', async () => {
    const zfs = standIn();
    const r = await runCli(['drill', '--from', archive, '--pool', 'nopool'], { env: zfs.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('zfs-offsite: error: pool not found: nopool (the drill receives into a scratch dataset under --pool POOL)\n');
    expect(zfs.calls().some((c) => c[0] === 'create' || c[0] === 'receive')).toBe(false);
  });

  it('no --pool: exit 2; zfs that cannot run: exit 1 (could not run)', async () => {
    expect((await runCli(['drill', '--from', archive])).code).toBe(2);
    const r = await runCli(['drill', '--from', archive, '--pool', 'tank'], { env: { ZFS_OFFSITE_ZFS_CMD: join(dir, 'no-such-zfs') } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^zfs-offsite: error: cannot run .*no-such-zfs/);
  });

  it('--sample --seed: an older snapshot, the same one again with the same seed', async () => {
    const a = json((await runCli(['drill', '--from', archive, TINY, '--pool', 'tank', '--sample', '--json'], { env: standIn().env })).stdout);
    expect(a.datasets[0]).toMatchObject({ snapshot: '@base', sampled: true, result: 'passed', checkedSnapshots: 1 });
    const b = json((await runCli(['drill', '--from', archive, TINY, '--pool', 'tank', '--sample', '--seed', String(a.seed), '--json'], { env: standIn().env })).stdout);
    expect(b.seed).toBe(a.seed);
    expect(b.datasets[0]!.snapshot).toBe('@base');
    expect((await runCli(['drill', '--from', archive, '--pool', 'tank', '--seed', '1'], { env: standIn().env })).code).toBe(2);
  });

  it('--config: pool, datasets and sample from the drill: section', async () => {
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `defaults:\n  target: ${archive}\ndatasets:\n  - name: ${TINY}\n  - name: ${rawDataset}\ndrill:\n  pool: tank\n  datasets: [${TINY}]\n`);
    const zfs = standIn();
    const r = await runCli(['drill', '--config', config, '--json'], { env: zfs.env });
    expect(r.code).toBe(0);
    expect(json(r.stdout).datasets.map((d) => d.dataset)).toEqual([TINY]);
    expect(json(r.stdout).pool).toBe('tank');
    writeFileSync(config, `defaults:\n  target: ${archive}\ndatasets:\n  - name: ${TINY}\ndrill:\n  pool: tank\n  sample: maybe\n`);
    const bad = await runCli(['drill', '--config', config], { env: zfs.env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/drill\.sample/);
  });

  it('SIGTERM during a receive: the receive is stopped, the scratch dataset destroyed, exit 143', async () => {
    const pidFile = join(dir, `receive-${++n}.pid`);
    const zfs = standIn({ stall: true, pidFile });
    const child = spawn(process.execPath, [CLI, 'drill', '--from', archive, TINY, '--pool', 'tank'], { env: { ...process.env, ...zfs.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      // A minute at most: two cores shared by many test runs start a CLI slowly.
      for (let i = 0; i < 1200 && !existsSync(pidFile); i++) await sleep(50);
      expect(existsSync(pidFile)).toBe(true);
      expect(zfs.datasets().some((d) => d.startsWith('tank/zfs-offsite-drill-'))).toBe(true);
      child.kill('SIGTERM');
      expect(await closed).toBe(143);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(stderr).toMatch(/interrupted/);
    expect(zfs.datasets()).toEqual(['tank']);
  });
});
