import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { datasetPath, encodeComponent, LEASE_NAME } from './format/keys.js';
import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { OperationalError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { deletionRefused } from './leftovers.js';

/**
 * One run per dataset at a time (docs/archive-format.md, "Lease"): a local lock file per dataset, then a lease object
 * in the target for runs on other hosts writing the same prefix. Every writer holds the lease
 * for as long as it writes — `run`, and `put` and `send` on their own — and `prune` deletes
 * nothing of a dataset without holding it: so an upload whose input pauses (a `zfs send`
 * computing a big incremental) is never mistaken for an abandoned one, however short
 * `--stale-after` is, and the base stream it extends is not pruned under it.
 *
 * Local lock: `<state dir>/<dataset>.lock` holding {pid, host, runId}, created atomically (written
 * to a temporary file, then hard-linked into place, which fails if the lock exists). A lock whose
 * pid is dead on this host is stale and is broken by renaming it away and checking that what was
 * renamed is still the stale lock (two processes breaking it at once cannot both win).
 *
 * Lease: `<dataset path>/lease.json` in the target: owner host, pid, run id and an expiry,
 * refreshed every `refreshMs` while held. Storage offers no compare-and-swap on every backend, so
 * a taker writes its lease, waits `settleMs`, and reads it back: of several hosts racing, only
 * the one whose write landed last still finds its own lease and proceeds. An expired lease, or
 * one held by a dead process on this very host, is taken over. `assertHeld()` re-reads the lease
 * before a step that must not run twice (e.g. pruning).
 */

export { LEASE_NAME };
export const LEASE_FORMAT = 'zfs-offsite-lease';

export interface LeaseRecord {
  format: typeof LEASE_FORMAT;
  dataset: string;
  host: string;
  pid: number;
  runId: string;
  acquired: string;
  refreshed: string;
  expires: string;
  /** Set (a time) when the holder released the lease but could not delete it (append-only credentials). */
  released?: string;
}

export interface LockOptions {
  dataset: string;
  backend: Backend;
  log?: Logger;
  runId?: string;
  /** Directory of the local lock files; default defaultLockDir(). */
  stateDir?: string;
  /** How long a lease is valid without a refresh. Default 15 min. */
  leaseMs?: number;
  /** How often a held lease is renewed. Default a third of leaseMs. */
  refreshMs?: number;
  /** Pause between writing the lease and reading it back. Default 2 s. */
  settleMs?: number;
  /** This host's name (tests simulate two hosts). Default os.hostname(). */
  host?: string;
  /**
   * Also take the local lock file (default true). `put` and `send` hold only the lease: what
   * they guard is the dataset *in this target*, and the same dataset may go to two targets at
   * once; a second writer or a prune of the same target on this host still meets the lease.
   */
  localLock?: boolean;
}

/**
 * A dataset lease held for a writer (`put`, `send`, or `run` around its `send`): the writer
 * checks it just before it commits, since a writer whose lease was taken over may have had its
 * in-progress stream removed by the new holder.
 */
export interface HeldLease {
  /** Throws unless this run still holds the lease. */
  assertHeld(): Promise<void>;
}

/** Another run holds the dataset: exit 1 for this dataset, with the holder named. */
export class LockHeldError extends OperationalError {
  override name = 'LockHeldError';
  constructor(
    message: string,
    readonly holder: { host: string; pid: number; runId?: string; expires?: string },
  ) {
    super(message);
  }
}

/**
 * The state directory for local locks: $ZFS_OFFSITE_LOCK_DIR, else /run/zfs-offsite when
 * writable, else $XDG_RUNTIME_DIR, else the temp dir.
 */
export function defaultLockDir(): string {
  const candidates = [
    ...(process.env.ZFS_OFFSITE_LOCK_DIR ? [process.env.ZFS_OFFSITE_LOCK_DIR] : []),
    '/run/zfs-offsite',
    ...(process.env.XDG_RUNTIME_DIR ? [join(process.env.XDG_RUNTIME_DIR, 'zfs-offsite')] : []),
  ];
  for (const dir of candidates) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      accessSync(dir, constants.W_OK);
      return dir;
    } catch {
      // not ours to write: try the next
    }
  }
  const dir = join(tmpdir(), `zfs-offsite-${userInfo().uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function leaseKey(dataset: string): string {
  return `${datasetPath(dataset)}/${LEASE_NAME}`;
}

/** True unless the process certainly does not exist (EPERM: it exists, as another user). */
function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LocalRecord {
  dataset: string;
  host: string;
  pid: number;
  runId: string;
  since: string;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parseLocal(text: string): LocalRecord | undefined {
  try {
    const r = JSON.parse(text) as LocalRecord;
    return typeof r.pid === 'number' && typeof r.host === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the local lock file or throws LockHeldError; returns its path. */
async function takeLocalLock(dir: string, record: LocalRecord): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${encodeComponent(record.dataset)}.lock`);
  const text = `${JSON.stringify(record)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const temp = `${path}.${record.pid}-${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temp, text, { mode: 0o644 });
    try {
      await link(temp, path); // atomic: fails if the lock exists, and a lock is never seen half-written
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    const current = await readText(path);
    if (current === undefined) continue; // released meanwhile
    const holder = parseLocal(current);
    if (holder && (holder.host !== record.host || pidAlive(holder.pid))) {
      throw new LockHeldError(`${record.dataset} is locked by another zfs-offsite run: pid ${holder.pid} on ${holder.host} (run ${holder.runId}, since ${holder.since}); lock file ${path}`, {
        host: holder.host,
        pid: holder.pid,
        runId: holder.runId,
      });
    }
    await breakStaleLock(path, current);
  }
  throw new OperationalError(`cannot take the lock ${path}: it keeps changing (another run is starting at the same time?)`);
}

/** Removes a stale lock, unless another process replaced it meanwhile (then puts that one back). */
async function breakStaleLock(path: string, staleText: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke it
    throw err;
  }
  const moved = await readText(aside);
  if (moved !== staleText) await link(aside, path).catch(() => undefined); // a live lock: restore it
  await unlink(aside).catch(() => undefined);
}

async function releaseLocalLock(path: string, runId: string): Promise<void> {
  const current = await readText(path);
  if (current !== undefined && parseLocal(current)?.runId === runId) await unlink(path).catch(() => undefined);
}

/** A held dataset lock (local lock file + lease in the target). */
export class DatasetLock implements HeldLease {
  private timer?: NodeJS.Timeout;
  private lostError?: Error;
  private released = false;
  /** A renewal in progress: release waits for it, or its write could land after the delete. */
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly o: Required<Pick<LockOptions, 'leaseMs' | 'refreshMs'>> & LockOptions,
    readonly runId: string,
    /** The local lock file; undefined when only the lease was taken. */
    private readonly localPath: string | undefined,
    public lease: LeaseRecord,
  ) {
    this.timer = setInterval(() => {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
    }, o.refreshMs);
    this.timer.unref();
  }

  /** Set when the lease was taken over by another run, or could not be renewed before it expired. */
  get lost(): Error | undefined {
    return this.lostError;
  }

  private async refresh(): Promise<void> {
    if (this.released || this.lostError) return;
    try {
      const current = await readLease(this.o.backend, this.o.dataset);
      if (current?.runId !== this.runId) {
        this.lostError = current
          ? new LockHeldError(`lost the lease on ${this.o.dataset}: taken over by ${holderText(current)}`, current)
          : new OperationalError(`lost the lease on ${this.o.dataset}: ${leaseKey(this.o.dataset)} was removed by someone else`);
        clearInterval(this.timer);
        this.o.log?.error({ dataset: this.o.dataset }, this.lostError.message);
        return;
      }
      if (this.released) return;
      const now = Date.now();
      this.lease = { ...this.lease, refreshed: new Date(now).toISOString(), expires: new Date(now + this.o.leaseMs).toISOString() };
      await writeLease(this.o.backend, this.lease);
    } catch (err) {
      if (Date.now() >= Date.parse(this.lease.expires)) {
        this.lostError = new OperationalError(`lost the lease on ${this.o.dataset}: it expired while it could not be renewed (${(err as Error).message})`);
        clearInterval(this.timer);
      }
      this.o.log?.warn({ dataset: this.o.dataset, err: (err as Error).message }, 'could not renew the lease');
    }
  }

  /** Re-reads the lease: throws unless this run still holds it. */
  async assertHeld(): Promise<void> {
    if (this.lostError) throw this.lostError;
    const current = await readLease(this.o.backend, this.o.dataset);
    if (current?.runId !== this.runId) {
      this.lostError = new LockHeldError(`lost the lease on ${this.o.dataset}${current ? `: taken over by ${holderText(current)}` : ''}`, current ?? { host: '?', pid: 0 });
      throw this.lostError;
    }
  }

  /** Removes the lease (only if still ours) and the local lock. Never throws: it runs in `finally`. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.refreshing;
    try {
      const current = await readLease(this.o.backend, this.o.dataset);
      if (current?.runId === this.runId) await this.removeLease();
    } catch (err) {
      this.o.log?.warn({ dataset: this.o.dataset, err: (err as Error).message }, 'could not remove the lease; it expires by itself');
    }
    if (this.localPath) await releaseLocalLock(this.localPath, this.runId).catch(() => undefined);
  }

  /**
   * Deletes the lease; with credentials that may not delete (append-only, archive/leftovers.ts)
   * overwrites it with one released and expired now instead: any run, on any host, takes it at once.
   */
  private async removeLease(): Promise<void> {
    try {
      await this.o.backend.delete([leaseKey(this.o.dataset)]);
    } catch (err) {
      if (!deletionRefused(err)) throw err;
      const now = new Date().toISOString();
      await writeLease(this.o.backend, { ...this.lease, refreshed: now, expires: now, released: now });
      this.o.log?.info({ dataset: this.o.dataset }, 'the lease could not be deleted (append-only credentials?): it was marked released instead');
    }
  }
}

function holderText(l: LeaseRecord): string {
  return `host ${l.host}, pid ${l.pid} (run ${l.runId}); its lease expires at ${l.expires}`;
}

async function readLease(backend: Backend, dataset: string): Promise<LeaseRecord | undefined> {
  let text: Buffer;
  try {
    text = await backend.getBuffer(leaseKey(dataset));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  try {
    const lease = JSON.parse(text.toString()) as LeaseRecord;
    if (lease.format === LEASE_FORMAT && typeof lease.runId === 'string' && !Number.isNaN(Date.parse(lease.expires))) return lease;
  } catch {
    // fall through: an unreadable lease protects nothing
  }
  return { format: LEASE_FORMAT, dataset, host: '(unreadable lease)', pid: 0, runId: '', acquired: '', refreshed: '', expires: new Date(0).toISOString() };
}

async function writeLease(backend: Backend, lease: LeaseRecord): Promise<void> {
  await backend.put(leaseKey(lease.dataset), Buffer.from(`${JSON.stringify(lease, null, 2)}\n`));
}

/** Takes the local lock, then the lease in the target; LockHeldError names the holder when either is taken. */
export async function acquireDatasetLock(options: LockOptions): Promise<DatasetLock> {
  const leaseMs = options.leaseMs ?? 15 * 60_000;
  const o = { ...options, leaseMs, refreshMs: options.refreshMs ?? Math.max(1000, Math.floor(leaseMs / 3)) };
  const host = o.host ?? hostname();
  const runId = o.runId ?? randomBytes(8).toString('hex');
  const now = new Date();
  const localPath = o.localLock === false ? undefined : await takeLocalLock(o.stateDir ?? defaultLockDir(), { dataset: o.dataset, host, pid: process.pid, runId, since: now.toISOString() });
  try {
    const existing = await readLease(o.backend, o.dataset);
    if (existing && existing.runId !== runId) {
      const expired = Date.parse(existing.expires) <= Date.now();
      const deadHere = existing.host === host && !pidAlive(existing.pid);
      if (!expired && !deadHere) {
        throw new LockHeldError(`${o.dataset} is locked by another zfs-offsite run: ${holderText(existing)} (${o.backend.location}/${leaseKey(o.dataset)})`, existing);
      }
      // A lease released by an append-only writer (removeLease) was given up, not abandoned.
      if (existing.released === undefined || !expired) {
        o.log?.warn({ dataset: o.dataset, holder: existing.host, pid: existing.pid }, `taking over the ${expired ? 'expired' : 'abandoned'} lease of ${holderText(existing)}`);
      }
    }
    const lease: LeaseRecord = {
      format: LEASE_FORMAT,
      dataset: o.dataset,
      host,
      pid: process.pid,
      runId,
      acquired: now.toISOString(),
      refreshed: now.toISOString(),
      expires: new Date(Date.now() + leaseMs).toISOString(),
    };
    await writeLease(o.backend, lease);
    await sleep(o.settleMs ?? 2000);
    const readBack = await readLease(o.backend, o.dataset);
    if (readBack?.runId !== runId) {
      const holder = readBack ?? { host: '?', pid: 0 };
      throw new LockHeldError(`${o.dataset} is locked by another zfs-offsite run that started at the same moment: ${readBack ? holderText(readBack) : 'its lease vanished'}`, holder);
    }
    return new DatasetLock(o, runId, localPath, lease);
  } catch (err) {
    if (localPath) await releaseLocalLock(localPath, runId).catch(() => undefined);
    throw err;
  }
}
