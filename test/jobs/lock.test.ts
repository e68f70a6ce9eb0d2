/**
 * Dataset locks: two real processes racing for one dataset (same host: the local lock decides;
 * two "hosts" with separate state dirs: the lease in the target decides), on every target;
 * plus takeover of expired and abandoned leases, stale local locks, refresh and release.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeComponent } from '../../src/archive/format/keys.js';
import { acquireDatasetLock, type LeaseRecord, leaseKey, LockHeldError } from '../../src/archive/lease.js';
import type { Backend } from '../../src/storage/backend.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const CHILD = fileURLToPath(new URL('../support/lock-child.mjs', import.meta.url));

interface ChildReport {
  status: 'acquired' | 'refused';
  pid: number;
  host: string;
  error?: string;
  message?: string;
}

function contender(env: NodeJS.ProcessEnv, args: string[]): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || !out.trim()) reject(new Error(`lock contender exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n')[0]!) as ChildReport);
    });
  });
}

/** A pid that certainly belongs to no running process (a child that has exited). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

describe.each(testTargets())('dataset locks on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;
  let backend: Backend;
  let dirs: string;
  let n = 0;
  const stateDir = () => mkdtempSync(join(dirs, 'state-'));
  const dataset = () => `tank/locked-${++n}`;

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    dirs = mkdtempSync(join(tmpdir(), 'zfs-offsite-lock-'));
  });
  afterAll(async () => {
    await cleanup?.();
    rmSync(dirs, { recursive: true, force: true });
  });

  async function race(sameHost: boolean): Promise<[ChildReport, ChildReport]> {
    const ds = dataset();
    const shared = stateDir();
    const startAt = String(Date.now() + 2500); // both processes are up and connected by then
    const args = (host: string, dir: string) => [url, ds, dir, host, startAt, '2000', '1000'];
    const reports = await Promise.all([contender(env, args(sameHost ? 'host-a' : 'host-a', shared)), contender(env, args(sameHost ? 'host-a' : 'host-b', sameHost ? shared : stateDir()))]);
    return reports.sort((a, b) => (a.status === 'acquired' ? -1 : 1) - (b.status === 'acquired' ? -1 : 1)) as [ChildReport, ChildReport];
  }

  it('two processes on one host: exactly one runs, the other is told which pid holds the lock', async () => {
    const [winner, loser] = await race(true);
    expect([winner.status, loser.status]).toEqual(['acquired', 'refused']);
    expect(loser.error).toBe('LockHeldError');
    expect(loser.message).toMatch(new RegExp(`^tank/locked-\\d+ is locked by another zfs-offsite run: pid ${winner.pid} on host-a \\(run [0-9a-f]{16}, since .*\\); lock file `));
  });

  it('two hosts: exactly one runs, the other is told the holder and when its lease expires', async () => {
    const [winner, loser] = await race(false);
    expect([winner.status, loser.status]).toEqual(['acquired', 'refused']);
    expect(loser.error).toBe('LockHeldError');
    expect(loser.message).toMatch(new RegExp(`host ${winner.host}, pid ${winner.pid} \\(run [0-9a-f]{16}\\); its lease expires at \\d{4}-\\d\\d-\\d\\dT`));
  });

  it('writes a lease naming the holder, renews it, and removes it and the lock file on release', async () => {
    const ds = dataset();
    const dir = stateDir();
    const lock = await acquireDatasetLock({ dataset: ds, backend, stateDir: dir, settleMs: 10, leaseMs: 60_000, refreshMs: 150 });
    const first = JSON.parse((await backend.getBuffer(leaseKey(ds))).toString()) as LeaseRecord;
    expect(first).toMatchObject({ format: 'zfs-offsite-lease', dataset: ds, pid: process.pid, runId: lock.runId });
    expect(Date.parse(first.expires) - Date.parse(first.acquired)).toBeGreaterThanOrEqual(59_000);
    expect(existsSync(join(dir, `${encodeComponent(ds)}.lock`))).toBe(true);
    await new Promise((r) => setTimeout(r, 1200));
    const renewed = JSON.parse((await backend.getBuffer(leaseKey(ds))).toString()) as LeaseRecord;
    expect(Date.parse(renewed.expires)).toBeGreaterThan(Date.parse(first.expires));
    await lock.assertHeld();
    await lock.release();
    await expect(backend.getBuffer(leaseKey(ds))).rejects.toThrow(/not found/);
    expect(readdirSync(dir)).toEqual([]);
    const again = await acquireDatasetLock({ dataset: ds, backend, stateDir: dir, settleMs: 10 });
    await again.release();
  });

  it('refuses a live lease of another host, takes over an expired one, and the old holder learns it lost', async () => {
    const ds = dataset();
    const old = await acquireDatasetLock({ dataset: ds, backend, stateDir: stateDir(), host: 'host-old', settleMs: 10, leaseMs: 1500, refreshMs: 3_600_000 });
    const refused = acquireDatasetLock({ dataset: ds, backend, stateDir: stateDir(), host: 'host-new', settleMs: 10 });
    await expect(refused).rejects.toThrow(LockHeldError);
    await expect(refused).rejects.toThrow(new RegExp(`is locked by another zfs-offsite run: host host-old, pid ${process.pid}`));
    await new Promise((r) => setTimeout(r, 1600));
    const taker = await acquireDatasetLock({ dataset: ds, backend, stateDir: stateDir(), host: 'host-new', settleMs: 10 });
    await expect(old.assertHeld()).rejects.toThrow(`lost the lease on ${ds}: taken over by host host-new`);
    await old.release(); // must not remove the taker's lease
    const lease = JSON.parse((await backend.getBuffer(leaseKey(ds))).toString()) as LeaseRecord;
    expect(lease.runId).toBe(taker.runId);
    await taker.release();
  });

  it('takes over at once a lease left by a dead process on this host', async () => {
    const ds = dataset();
    const abandoned: LeaseRecord = {
      format: 'zfs-offsite-lease',
      dataset: ds,
      host: 'this-host',
      pid: deadPid(),
      runId: 'crashed',
      acquired: '',
      refreshed: '',
      expires: new Date(Date.now() + 3_600_000).toISOString(),
    };
    await backend.put(leaseKey(ds), Buffer.from(JSON.stringify(abandoned)));
    await expect(acquireDatasetLock({ dataset: ds, backend, stateDir: stateDir(), host: 'other-host', settleMs: 10 })).rejects.toThrow(/host this-host/);
    const lock = await acquireDatasetLock({ dataset: ds, backend, stateDir: stateDir(), host: 'this-host', settleMs: 10 });
    await lock.release();
  });

  it('breaks a stale local lock whose process is gone, but not a live one', async () => {
    const ds = dataset();
    const dir = stateDir();
    const lockFile = join(dir, `${encodeComponent(ds)}.lock`);
    writeFileSync(lockFile, JSON.stringify({ dataset: ds, host: 'h', pid: deadPid(), runId: 'gone', since: '' }));
    const lock = await acquireDatasetLock({ dataset: ds, backend, stateDir: dir, host: 'h', settleMs: 10 });
    await lock.release();
    writeFileSync(lockFile, JSON.stringify({ dataset: ds, host: 'h', pid: process.ppid, runId: 'alive', since: 'earlier' }));
    await expect(acquireDatasetLock({ dataset: ds, backend, stateDir: dir, host: 'h', settleMs: 10 })).rejects.toThrow(
      `${ds} is locked by another zfs-offsite run: pid ${process.ppid} on h (run alive, since earlier); lock file ${lockFile}`,
    );
    expect(existsSync(lockFile)).toBe(true);
  });
});
