import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { OperationalError, UsageError } from '../util/errors.js';
import { checkZfsName, shellQuote, splitCommandWords } from './command.js';
import { STOP_GRACE_MS, ZfsCommandError, ZfsProcess } from './process.js';
import { type ReceiveHandle, type SendHandle, type StreamOptions, startReceive, startSend } from './streams.js';

export { ZfsCommandError } from './process.js';
export type { ReceiveHandle, SendHandle } from './streams.js';

export interface SnapshotInfo {
  /** Full name: pool/ds@snap or pool/ds#bookmark. */
  name: string;
  kind: 'snapshot' | 'bookmark';
  guid: bigint;
  createtxg: bigint;
  /** Unix seconds. */
  creation: number;
}

export interface ReceiveOptions extends StreamOptions {
  /** -F: roll the destination back to its newest snapshot first. */
  force?: boolean;
  /** -s: keep the state of an interrupted receive (discarded again by abort). */
  resumable?: boolean;
  /** -u: do not mount what was received. */
  noMount?: boolean;
}

/**
 * The one place that runs the zfs command. The prefix is injectable (`zfs`,
 * `ssh root@host zfs`, a test VM's ssh); arguments are always an array. When the prefix
 * runs through ssh, the remote side joins arguments into a shell line, so each is quoted.
 */
export class Zfs {
  private readonly remoteShell: boolean;

  constructor(readonly prefix: string[] = ['zfs']) {
    this.remoteShell = basename(prefix[0]!) === 'ssh';
  }

  static fromCommand(command: string | undefined): Zfs {
    const text = command ?? process.env.ZFS_OFFSITE_ZFS_CMD;
    return new Zfs(text ? splitCommandWords(text) : ['zfs']);
  }

  private argv(args: string[]): [string, string[]] {
    const rest = [...this.prefix.slice(1), ...(this.remoteShell ? args.map(shellQuote) : args)];
    return [this.prefix[0]!, rest];
  }

  /**
   * Runs zfs to completion and returns stdout; a non-zero exit throws ZfsCommandError. With
   * `timeoutMs`, a command still running then is stopped (SIGTERM, then SIGKILL) and the call
   * fails with kind `zfs-timeout`: for lookups that must not hold a job up (a suspended pool
   * leaves `zfs list` hanging).
   */
  async run(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
    const [cmd, argv] = this.argv(args);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    const proc = new ZfsProcess(child, args, (e) => new OperationalError(`cannot run ${cmd}: ${e.message} (set --zfs-cmd or ZFS_OFFSITE_ZFS_CMD)`));
    const { timeoutMs } = options;
    if (timeoutMs === undefined) {
      await proc.completion;
      return Buffer.concat(out).toString();
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    try {
      if ((await Promise.race([proc.completion, late])) === 'late') {
        await proc.stop(STOP_GRACE_MS);
        throw new OperationalError(`zfs ${args.join(' ')} did not answer within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`} and was stopped`, {
          kind: 'zfs-timeout',
        });
      }
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(out).toString();
  }

  /** Starts `zfs send ARGS`: its stream, and a completion that fails with what zfs said. */
  send(args: string[], options?: StreamOptions): SendHandle {
    return startSend(this.argv(['send', ...args]), ['send', ...args], options);
  }

  /**
   * The size `zfs send -n -v -P ARGS` (a dry run: nothing is sent) estimates for the stream of
   * `zfs send ARGS`, for the progress line; undefined when its output has no `size` line. Only an
   * estimate: the stream may be larger or smaller.
   */
  async sendEstimate(args: string[]): Promise<number | undefined> {
    return parseSendEstimate(await this.run(['send', '-n', '-v', '-P', ...args]));
  }

  /** Starts `zfs receive [-F] [-s] [-u] DATASET` reading the stream from its sink. */
  receive(dataset: string, options: ReceiveOptions = {}): ReceiveHandle {
    checkZfsName(dataset, 'dataset');
    const args = ['receive', ...(options.force ? ['-F'] : []), ...(options.resumable ? ['-s'] : []), ...(options.noMount ? ['-u'] : []), dataset];
    return startReceive(this.argv(args), args, { ...options, discardState: options.resumable ? () => this.abortReceive(dataset) : undefined });
  }

  /** Discards the saved state of an interrupted `zfs receive -s`. */
  async abortReceive(dataset: string): Promise<void> {
    checkZfsName(dataset, 'dataset');
    await this.run(['receive', '-A', dataset]);
  }

  async version(): Promise<string | null> {
    try {
      return (await this.run(['version'])).split('\n')[0]!.trim() || null;
    } catch {
      return null;
    }
  }

  async getProperty(name: string, property: string): Promise<string> {
    checkZfsName(name, 'dataset');
    try {
      return (await this.run(['get', '-H', '-p', '-o', 'value', property, name])).trim();
    } catch (err) {
      throw asNotFound(err, name);
    }
  }

  /** A snapshot or bookmark by full name, or undefined when it does not exist. */
  async findSnapshot(name: string): Promise<SnapshotInfo | undefined> {
    checkZfsName(name, 'snapshot');
    try {
      const out = await this.run(['list', '-H', '-p', '-t', name.includes('#') ? 'bookmark' : 'snapshot', '-o', 'name,guid,createtxg,creation', name]);
      return parseSnapshotLines(out)[0];
    } catch (err) {
      if (err instanceof ZfsCommandError && /does not exist|not found/i.test(err.stderr)) return undefined;
      throw err;
    }
  }

  /** GUIDs of every snapshot in a pool (where `zfs receive` looks for a clone's origin). */
  async poolSnapshotGuids(pool: string): Promise<Set<string>> {
    checkZfsName(pool, 'pool');
    try {
      const out = await this.run(['list', '-H', '-p', '-r', '-t', 'snapshot', '-o', 'guid', pool]);
      return new Set(
        out
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean),
      );
    } catch (err) {
      throw asNotFound(err, pool);
    }
  }

  /** Snapshots and bookmarks of one dataset, oldest first (`timeoutMs`: see run). */
  async listSnapshots(dataset: string, options: { timeoutMs?: number } = {}): Promise<SnapshotInfo[]> {
    checkZfsName(dataset, 'dataset');
    try {
      const out = await this.run(['list', '-H', '-p', '-d', '1', '-t', 'snapshot,bookmark', '-o', 'name,guid,createtxg,creation', '-s', 'createtxg', dataset], options);
      return parseSnapshotLines(out);
    } catch (err) {
      throw asNotFound(err, dataset);
    }
  }

  /** `zfs snapshot pool/ds@snap` (one dataset, not recursive: each dataset is archived on its own). */
  async createSnapshot(name: string): Promise<void> {
    checkZfsName(name, 'snapshot');
    if (!/^[^@#]+@[^@#]+$/.test(name)) throw new UsageError(`invalid ZFS snapshot name: ${JSON.stringify(name)} (expected pool/dataset@snapshot)`);
    try {
      await this.run(['snapshot', name]);
    } catch (err) {
      throw asNotFound(err, name.slice(0, name.indexOf('@')));
    }
  }

  /**
   * `zfs bookmark pool/ds@snap pool/ds#bm`: keeps the snapshot's GUID and txg as an incremental
   * base after a snapshot-pruning tool destroys the snapshot (base protection).
   */
  async createBookmark(snapshot: string, bookmark: string): Promise<void> {
    checkZfsName(snapshot, 'snapshot');
    checkZfsName(bookmark, 'bookmark');
    const source = /^([^@#]+)[@#][^@#]+$/.exec(snapshot);
    const target = /^([^@#]+)#[^@#]+$/.exec(bookmark);
    if (!source) throw new UsageError(`invalid ZFS snapshot name: ${JSON.stringify(snapshot)} (expected pool/dataset@snapshot)`);
    if (!target) throw new UsageError(`invalid ZFS bookmark name: ${JSON.stringify(bookmark)} (expected pool/dataset#bookmark)`);
    if (source[1] !== target[1]) throw new UsageError(`bookmark ${bookmark} must belong to the dataset of ${snapshot}`);
    await this.run(['bookmark', snapshot, bookmark]);
  }

  /** `zfs destroy pool/ds#bm`. Only ever a bookmark: a name without '#' is refused, never passed to destroy. */
  async destroyBookmark(name: string): Promise<void> {
    checkZfsName(name, 'bookmark');
    if (!/^[^@#]+#[^@#]+$/.test(name)) throw new UsageError(`invalid ZFS bookmark name: ${JSON.stringify(name)} (expected pool/dataset#bookmark)`);
    await this.run(['destroy', name]);
  }

  /** `zfs hold TAG pool/ds@snap`: the snapshot cannot be destroyed while the tag holds it. */
  async hold(tag: string, snapshot: string): Promise<void> {
    checkZfsName(snapshot, 'snapshot');
    if (!/^[^@#]+@[^@#]+$/.test(snapshot)) throw new UsageError(`invalid ZFS snapshot name: ${JSON.stringify(snapshot)} (expected pool/dataset@snapshot)`);
    await this.run(['hold', tag, snapshot]);
  }

  /** `zfs release TAG pool/ds@snap`. */
  async release(tag: string, snapshot: string): Promise<void> {
    checkZfsName(snapshot, 'snapshot');
    await this.run(['release', tag, snapshot]);
  }

  /** The holds on these snapshots (`zfs holds -H`): snapshot name and tag of each. */
  async holds(snapshots: string[]): Promise<{ snapshot: string; tag: string }[]> {
    if (snapshots.length === 0) return [];
    for (const s of snapshots) checkZfsName(s, 'snapshot');
    const out = await this.run(['holds', '-H', ...snapshots]);
    return out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [snapshot = '', tag = ''] = line.split('\t');
        return { snapshot, tag };
      });
  }

  /** Filesystems and volumes: `root` itself, and with `recursive` every descendant, parents first. */
  async listDatasets(root: string, recursive: boolean): Promise<string[]> {
    checkZfsName(root, 'dataset');
    if (/[@#]/.test(root)) throw new UsageError(`invalid ZFS dataset name: ${JSON.stringify(root)} (a dataset, not a snapshot or bookmark)`);
    try {
      const out = await this.run(['list', '-H', '-o', 'name', '-t', 'filesystem,volume', ...(recursive ? ['-r'] : []), root]);
      return out.split('\n').filter((line) => line.trim() !== '');
    } catch (err) {
      throw asNotFound(err, root);
    }
  }
}

/** Snapshots of a dataset that may not exist yet (a restore destination): none when absent. */
export async function destinationSnapshots(zfs: Zfs, dataset: string): Promise<SnapshotInfo[]> {
  try {
    return await zfs.listSnapshots(dataset);
  } catch (err) {
    if (err instanceof UsageError) return [];
    throw err;
  }
}

function asNotFound(err: unknown, name: string): unknown {
  if (err instanceof ZfsCommandError && /dataset does not exist/i.test(err.stderr)) {
    return new UsageError(`dataset not found: ${name}`);
  }
  return err;
}

export function parseSnapshotLines(out: string): SnapshotInfo[] {
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [name, guid, createtxg, creation] = line.split('\t');
      if (!name || !guid || !createtxg || !creation) throw new OperationalError(`unexpected zfs list output: ${line}`);
      return {
        name,
        kind: name.includes('#') ? 'bookmark' : 'snapshot',
        guid: BigInt(guid),
        createtxg: BigInt(createtxg),
        creation: Number(creation),
      } satisfies SnapshotInfo;
    });
}

/**
 * The total of `zfs send -nvP` output: OpenZFS prints one line per stream (`full\t<snap>\t<size>`,
 * `incremental\t<from>\t<to>\t<size>`) and then `size\t<bytes>`.
 */
export function parseSendEstimate(out: string): number | undefined {
  let size: number | undefined;
  for (const line of out.split('\n')) {
    const m = /^size\t(\d+)\s*$/.exec(line);
    if (m) size = Number(m[1]);
  }
  return size !== undefined && Number.isSafeInteger(size) && size > 0 ? size : undefined;
}
