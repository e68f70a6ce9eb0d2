import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../util/errors.js';
import { checkZfsName } from './command.js';
import { type Zfs, ZfsCommandError } from './zfs.js';

/**
 * The scratch datasets of `zfs-offsite drill` (src/jobs/drill.ts): `POOL/zfs-offsite-drill-<id>`,
 * created unmounted (canmount=off, mountpoint=none, so nothing below it is ever mounted, not
 * even by a `zfs mount -a` at boot) and marked with the user property `zfs-offsite:drill`. The
 * drilled datasets are received below it, so one `zfs destroy -r` removes a drill's every trace.
 * Only a dataset that has both the name prefix and the property set on itself is ever
 * destroyed here: nothing else in the pool is touched, whatever its name.
 */

export const SCRATCH_PREFIX = 'zfs-offsite-drill-';
export const DRILL_PROPERTY = 'zfs-offsite:drill';

/** Who made a scratch dataset: `host:pid:ISO time` (the property's value). */
export interface ScratchOwner {
  host: string;
  pid: number;
  started: string;
}

export interface ScratchDataset {
  name: string;
  owner: ScratchOwner | undefined;
  /** The property as found. */
  value: string;
}

const SCRATCH_NAME = /^[^@#/]+\/zfs-offsite-drill-[A-Za-z0-9._-]+$/;

export function ownerValue(owner: ScratchOwner): string {
  return `${owner.host}:${owner.pid}:${owner.started}`;
}

export function parseOwner(value: string): ScratchOwner | undefined {
  const m = /^([^:]*):(\d+):(.+)$/.exec(value);
  return m ? { host: m[1]!, pid: Number(m[2]), started: m[3]! } : undefined;
}

/** A new scratch name under `pool`: time and a random part, so two drills never share one. */
export function scratchName(pool: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  return `${pool}/${SCRATCH_PREFIX}${stamp}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The pool (or dataset) drills receive under must exist: a UsageError naming it otherwise. */
export async function checkScratchParent(zfs: Zfs, pool: string): Promise<void> {
  checkZfsName(pool, 'pool');
  if (/[@#]/.test(pool)) throw new UsageError(`invalid --pool: ${JSON.stringify(pool)} (a pool or dataset, not a snapshot or bookmark)`);
  try {
    await zfs.listDatasets(pool, false);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`pool not found: ${pool} (the drill receives into a scratch dataset under --pool POOL)`, { kind: 'unknown-pool' });
    throw err;
  }
}

/** Creates the scratch dataset, unmounted and marked as this process's. */
export async function createScratch(zfs: Zfs, name: string, owner: ScratchOwner): Promise<void> {
  if (!SCRATCH_NAME.test(name)) throw new UsageError(`not a drill scratch name: ${name}`);
  await zfs.run(['create', '-u', '-o', 'canmount=off', '-o', 'mountpoint=none', '-o', `${DRILL_PROPERTY}=${ownerValue(owner)}`, name]);
}

/**
 * The scratch datasets directly under `parent`: name prefix and the property set locally
 * (`-s local`: the datasets received below one inherit it and are not listed on their own).
 */
export async function findScratch(zfs: Zfs, parent: string): Promise<ScratchDataset[]> {
  const out = await zfs.run(['get', '-H', '-d', '1', '-s', 'local', '-t', 'filesystem', '-o', 'name,value', DRILL_PROPERTY, parent]);
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const tab = line.indexOf('\t');
      return { name: line.slice(0, tab), value: line.slice(tab + 1) };
    })
    .filter((d) => d.name.startsWith(`${parent}/${SCRATCH_PREFIX}`) && SCRATCH_NAME.test(d.name) && d.value !== '' && d.value !== '-')
    .map((d) => ({ ...d, owner: parseOwner(d.value) }));
}

/** Whether the drill that made it still runs here (then it is not a leftover). */
export function ownerAlive(owner: ScratchOwner | undefined): boolean {
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `zfs destroy -r` of a scratch dataset, retried for a while: a `zfs receive` just stopped
 * (over ssh it ends only when it reads the end of its input) keeps the dataset busy a moment.
 * The name is checked again here: nothing but a scratch name ever reaches `destroy`.
 */
export async function destroyScratch(zfs: Zfs, name: string, options: { tries?: number; delayMs?: number } = {}): Promise<void> {
  if (!SCRATCH_NAME.test(name)) throw new UsageError(`not a drill scratch name: ${name}`);
  const tries = options.tries ?? 15;
  for (let i = 1; ; i++) {
    try {
      await zfs.run(['destroy', '-r', name]);
      return;
    } catch (err) {
      if (err instanceof ZfsCommandError && /does not exist/i.test(err.stderr)) return;
      if (i >= tries) throw err;
      await sleep(options.delayMs ?? 1000);
    }
  }
}
