/** The planning half of `send` (send.ts): the source, the base per target, the zfs send arguments. */
import { archivedSnapshots } from '../archive/format/catalog.js';
import { selectBase } from '../archive/plan/base-selection.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { splitSnapshotName } from '../archive/format/keys.js';
import type { Backend } from '../storage/backend.js';
import { errorMessage, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { checkZfsName } from '../zfs/command.js';
import type { SnapshotInfo, Zfs } from '../zfs/zfs.js';
import type { ArchiveSettings, ArchiveStreamResult } from './archive-stream.js';
import type { HeldLease } from '../archive/lease.js';
import { Repository } from '../archive/repository.js';
import { baseCandidates } from '../archive/plan/bookmarks.js';

/** What every target of one send shares: the snapshot, how zfs sends it, and the bookmark. */
export interface SendCommon {
  /** pool/ds@snap */
  snapshot: string;
  zfs: Zfs;
  pool: ChunkPool;
  log: Logger;
  /** Base: `snap`, `pool/ds@snap`, `#bookmark` or `pool/ds#bookmark`. */
  from?: string;
  /** -I: include every intermediate snapshot. */
  intermediates?: boolean;
  /** Keep a bookmark of the archived snapshot on the source (default true). */
  bookmark?: boolean;
  /** Non-raw sends: keep large blocks (-L) and on-disk compression (-c); both default true. */
  largeBlocks?: boolean;
  compressed?: boolean;
  /** Ctrl-C / SIGTERM: the upload stops and saves its journal (archive-stream.ts). */
  signal?: AbortSignal;
  /** Files kept with the stream, the same for every target (jobs/attachments.ts). */
  attachments?: readonly { name: string; body: Buffer }[];
}

/** One target of a send: where, its writer's settings, and its own chain's choices. */
export interface SendTarget {
  backend: Backend;
  settings: ArchiveSettings;
  full?: boolean;
  /** undefined = raw when the dataset is encrypted. */
  raw?: boolean;
  /** The dataset's lease in this target, when the caller holds it already (`run`); otherwise send takes it. */
  lease?: HeldLease;
}

export type SendOptions = SendCommon & SendTarget;

export interface SendResult extends ArchiveStreamResult {
  base?: string;
  sendArgs: string[];
  /** The protective bookmark kept on the source. */
  bookmark?: string;
  /** The target's short id (format/catalog.ts), which names its bookmark. */
  targetId?: string;
}

/** The snapshot to send, as zfs knows it, and whether its dataset is encrypted (raw by default). */
export interface SendSource {
  dataset: string;
  snapshot: string;
  target: SnapshotInfo;
  encrypted: boolean;
}

/** What to send: the dataset, its snapshot as zfs knows it, encrypted or not. */
export async function sendSource(o: SendCommon & { full?: boolean }): Promise<SendSource> {
  const { dataset, snapshot } = splitSnapshotName(o.snapshot);
  if (!snapshot) throw new UsageError(`expected a snapshot (pool/dataset@snapshot), got ${JSON.stringify(o.snapshot)}`);
  checkZfsName(o.snapshot, 'snapshot');
  if (o.full && o.from) throw new UsageError('--full and --from exclude each other');
  if (o.intermediates && o.full) throw new UsageError('-I needs a base; it cannot be used with --full');

  const encryption = await o.zfs.getProperty(dataset, 'encryption');
  const target = await o.zfs.findSnapshot(o.snapshot);
  if (!target) throw new UsageError(`snapshot not found: ${o.snapshot}`);
  return { dataset, snapshot, target, encrypted: encryption !== 'off' && encryption !== '-' };
}

/**
 * The size `zfs send -nvP` expects, for the progress line only: when zfs cannot say (an old
 * version, a remote shell that fails), the send goes on without a total.
 */
export async function sendEstimate(o: SendCommon, sendArgs: string[]): Promise<number | undefined> {
  try {
    return await o.zfs.sendEstimate(sendArgs);
  } catch (err) {
    o.log.debug({ err: errorMessage(err) }, 'zfs send -nvP gave no size estimate: progress without a total');
    return undefined;
  }
}

export function sendArguments(o: SendCommon, raw: boolean, base: SnapshotInfo | undefined): string[] {
  // Raw sends carry blocks as stored (large, compressed) anyway; plain ones are told to.
  const plain = [...(o.largeBlocks === false ? [] : ['-L']), ...(o.compressed === false ? [] : ['-c'])];
  return [...(raw ? ['-w'] : plain), ...(base ? [o.intermediates ? '-I' : '-i', base.name] : []), o.snapshot];
}

/**
 * The base of this target's incremental, and the snapshot GUIDs its archive holds (protect.ts
 * decides on legacy bookmarks with them). Candidates: the source's snapshots, this target's
 * bookmarks and legacy or foreign ones, never another target's (plan/bookmarks.ts baseCandidates).
 */
export async function chooseBase(
  o: SendCommon,
  t: SendTarget,
  source: SendSource,
  raw: boolean,
  targetId: string | undefined,
): Promise<{ base?: SnapshotInfo; archived: ReadonlyMap<string, unknown> }> {
  const { dataset, target } = source;
  if (t.full) return { archived: new Map() };
  if (o.from) {
    const name = o.from.startsWith('@') || o.from.startsWith('#') ? `${dataset}${o.from}` : o.from.includes('@') || o.from.includes('#') ? o.from : `${dataset}@${o.from}`;
    const base = await o.zfs.findSnapshot(name);
    if (!base) throw new UsageError(`base not found: ${name}`);
    if (base.createtxg >= target.createtxg) throw new UsageError(`base ${name} is not older than ${o.snapshot}`);
    return { base, archived: new Map() };
  }
  const repo = new Repository(t.backend);
  const candidates = baseCandidates(await o.zfs.listSnapshots(dataset), targetId);
  // The nightly case, whatever the history: the stream index names the base and that stream's
  // manifest proves it; anything else (no index, no base, a stale entry) asks the listing.
  const indexed = await repo.indexedStreams(dataset);
  if (indexed) {
    const archived = archivedSnapshots(indexed);
    const base = selectBase({ target, source: candidates, archived, raw });
    const holder = base && indexed.find((m) => m.streamId === archived.get(base.guid.toString())?.streamId);
    if (base && holder && (await repo.confirms(holder))) {
      const already = archived.get(target.guid.toString());
      if (already) o.log.info({ stream: already.streamId }, `${o.snapshot} is already in the archive`);
      return { base, archived };
    }
  }
  const { streams } = await repo.catalog(dataset);
  const archived = archivedSnapshots(streams);
  const already = archived.get(target.guid.toString());
  if (already) o.log.info({ stream: already.streamId }, `${o.snapshot} is already in the archive`);
  const base = selectBase({ target, source: candidates, archived, raw });
  if (!base && streams.length > 0) {
    o.log.warn({ dataset, target: t.backend.location }, 'no snapshot the archive holds still exists on the source (as snapshot or bookmark of this target): sending a new full stream');
  }
  return { base, archived };
}
