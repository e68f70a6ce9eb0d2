import { archivedSnapshots } from '../archive/format/catalog.js';
import { selectBase } from '../archive/plan/base-selection.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { splitSnapshotName } from '../archive/format/keys.js';
import { StreamRejectedError } from '../archive/pipeline/writer.js';
import type { Backend } from '../storage/backend.js';
import type { StreamSummary } from '../stream/validator.js';
import { errorMessage, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { checkZfsName } from '../zfs/command.js';
import { type SnapshotInfo, type Zfs, ZfsCommandError } from '../zfs/zfs.js';
import { type ArchiveSettings, type ArchiveStreamResult, archiveStream, showsProgress } from './archive-stream.js';
import { InterruptedError } from '../util/interrupted.js';
import type { HeldLease } from '../archive/lease.js';
import { Repository } from '../archive/repository.js';
import { protectBase } from './protect.js';
import { localSnapshotTxgs } from '../zfs/snapshot-txgs.js';
import { archivedStreams, type UploadPlan } from './dry-run.js';

export interface SendOptions {
  /** pool/ds@snap */
  snapshot: string;
  backend: Backend;
  zfs: Zfs;
  pool: ChunkPool;
  settings: ArchiveSettings;
  log: Logger;
  /** Base: `snap`, `pool/ds@snap`, `#bookmark` or `pool/ds#bookmark`. */
  from?: string;
  /** -I: include every intermediate snapshot. */
  intermediates?: boolean;
  full?: boolean;
  /** undefined = raw when the dataset is encrypted. */
  raw?: boolean;
  /** Keep a bookmark of the archived snapshot on the source (default true). */
  bookmark?: boolean;
  /** Non-raw sends: keep large blocks (-L) and on-disk compression (-c); both default true. */
  largeBlocks?: boolean;
  compressed?: boolean;
  /** The dataset's lease, when the caller holds it already (`run`); otherwise send takes it. */
  lease?: HeldLease;
  /** Ctrl-C / SIGTERM: the upload stops and saves its journal (archive-stream.ts). */
  signal?: AbortSignal;
}

export interface SendResult extends ArchiveStreamResult {
  base?: string;
  sendArgs: string[];
  /** The protective bookmark kept on the source. */
  bookmark?: string;
}

/** What to send: the dataset, its snapshot as zfs knows it, raw or not. */
async function sendSource(o: SendOptions): Promise<{ dataset: string; snapshot: string; target: SnapshotInfo; raw: boolean }> {
  const { dataset, snapshot } = splitSnapshotName(o.snapshot);
  if (!snapshot) throw new UsageError(`expected a snapshot (pool/dataset@snapshot), got ${JSON.stringify(o.snapshot)}`);
  checkZfsName(o.snapshot, 'snapshot');
  if (o.full && o.from) throw new UsageError('--full and --from exclude each other');
  if (o.intermediates && o.full) throw new UsageError('-I needs a base; it cannot be used with --full');

  const encryption = await o.zfs.getProperty(dataset, 'encryption');
  const target = await o.zfs.findSnapshot(o.snapshot);
  if (!target) throw new UsageError(`snapshot not found: ${o.snapshot}`);
  const raw = o.raw ?? (encryption !== 'off' && encryption !== '-');
  return { dataset, snapshot, target, raw };
}

/** --dry-run: the base the planner chooses and the zfs send it would run; nothing is written to the target. */
export async function planSend(o: SendOptions): Promise<UploadPlan> {
  const { dataset, target, raw } = await sendSource(o);
  const { exists, streams } = await archivedStreams(o.backend, dataset);
  const archived = archivedSnapshots(streams);
  const base = await chooseBase(o, dataset, target, raw);
  const args = sendArguments(o, raw, base);
  const estimate = await sendEstimate(o, args);
  return {
    dryRun: true,
    dataset,
    snapshot: o.snapshot,
    kind: base ? 'incremental' : 'full',
    ...(base ? { base: { name: base.name, guid: base.guid.toString(), inArchive: archived.has(base.guid.toString()) } } : {}),
    raw,
    archiveExists: exists,
    alreadyArchived: archived.has(target.guid.toString()),
    sendArgs: ['zfs', 'send', ...args],
    ...(estimate !== undefined ? { bytes: estimate, estimated: true } : {}),
  };
}

/** Plans the `zfs send` (raw?, which base?) and archives its stream. */
export async function sendSnapshot(o: SendOptions): Promise<SendResult> {
  const { dataset, snapshot, target, raw } = await sendSource(o);
  const repo = new Repository(o.backend);
  await repo.check();
  // Live from the choice of the base to the commit (archive/lease.ts): no prune takes the base away, or
  // the upload for abandoned, meanwhile.
  const taken = o.lease ? undefined : await repo.lease({ dataset, log: o.log, localLock: false });
  try {
    return await sendFromBase({ ...o, lease: o.lease ?? taken }, dataset, snapshot, target, raw);
  } finally {
    await taken?.release();
  }
}

async function sendFromBase(o: SendOptions, dataset: string, snapshot: string, target: SnapshotInfo, raw: boolean): Promise<SendResult> {
  const base = await chooseBase(o, dataset, target, raw);
  const sendArgs = sendArguments(o, raw, base);
  o.log.info({ args: sendArgs.join(' ') }, base ? `incremental from ${base.name}` : 'full stream');
  o.signal?.throwIfAborted();

  const zfsVersion = await o.zfs.version();
  const estimate = showsProgress(o.settings) ? await sendEstimate(o, sendArgs) : undefined;
  const send = o.zfs.send(sendArgs);
  const beforeCommit = async (summary: StreamSummary): Promise<void> => {
    await send.completion.catch((err: unknown) => {
      throw err instanceof ZfsCommandError ? err.explained({ outcome: 'nothing was committed' }) : err;
    });
    const last = summary.substreams[summary.substreams.length - 1];
    if (!last || last.toguid !== target.guid) {
      throw new StreamRejectedError(`stream ends at GUID ${last?.toguid}, but ${o.snapshot} has GUID ${target.guid}; nothing was committed`);
    }
    if (base && summary.substreams[0]?.fromguid !== base.guid) {
      throw new StreamRejectedError(`stream starts from GUID ${summary.substreams[0]?.fromguid}, expected ${base.name} (${base.guid}); nothing was committed`);
    }
  };

  try {
    const result = await archiveStream({
      backend: o.backend,
      input: send.stream,
      pool: o.pool,
      settings: o.settings,
      log: o.log,
      dataset,
      sendArgs: ['zfs', 'send', ...sendArgs],
      zfsVersion,
      fromName: async () => (base ? base.name.slice(base.name.search(/[@#]/) + (base.kind === 'snapshot' ? 1 : 0)) : ''),
      beforeCommit,
      lease: o.lease,
      totalBytes: estimate,
      estimate: true,
      signal: o.signal,
      snapshotTxgs: async (summary) => {
        const txgs = await localSnapshotTxgs(o.zfs, summary);
        // What zfs said when the send was planned, should the listing have failed since.
        for (const s of [target, base]) if (s && !txgs.has(s.guid.toString())) txgs.set(s.guid.toString(), s.createtxg.toString());
        return txgs;
      },
    });
    await send.abort(); // ended already, or still writing a stream that was archived before
    const bookmark = o.bookmark === false ? undefined : await protectBase(o.zfs, dataset, snapshot);
    return { ...result, base: base?.name, sendArgs, ...(bookmark ? { bookmark } : {}) };
  } catch (err) {
    // A zfs send failure explains a broken stream better than the stream itself does.
    const own = await send.abort();
    // A zfs send killed by the same Ctrl-C is not what stopped the run.
    if (err instanceof InterruptedError) throw err;
    throw own ? own.explained({ outcome: 'nothing was committed' }) : err;
  }
}

/**
 * The size `zfs send -nvP` expects, for the progress line only: when zfs cannot say (an old
 * version, a remote shell that fails), the send goes on without a total.
 */
async function sendEstimate(o: SendOptions, sendArgs: string[]): Promise<number | undefined> {
  try {
    return await o.zfs.sendEstimate(sendArgs);
  } catch (err) {
    o.log.debug({ err: errorMessage(err) }, 'zfs send -nvP gave no size estimate: progress without a total');
    return undefined;
  }
}

function sendArguments(o: SendOptions, raw: boolean, base: SnapshotInfo | undefined): string[] {
  // Raw sends carry blocks as stored (large, compressed) anyway; plain ones are told to.
  const plain = [...(o.largeBlocks === false ? [] : ['-L']), ...(o.compressed === false ? [] : ['-c'])];
  return [...(raw ? ['-w'] : plain), ...(base ? [o.intermediates ? '-I' : '-i', base.name] : []), o.snapshot];
}

async function chooseBase(o: SendOptions, dataset: string, target: SnapshotInfo, raw: boolean): Promise<SnapshotInfo | undefined> {
  if (o.full) return undefined;
  if (o.from) {
    const name = o.from.startsWith('@') || o.from.startsWith('#') ? `${dataset}${o.from}` : o.from.includes('@') || o.from.includes('#') ? o.from : `${dataset}@${o.from}`;
    const base = await o.zfs.findSnapshot(name);
    if (!base) throw new UsageError(`base not found: ${name}`);
    if (base.createtxg >= target.createtxg) throw new UsageError(`base ${name} is not older than ${o.snapshot}`);
    return base;
  }
  const repo = new Repository(o.backend);
  const source = await o.zfs.listSnapshots(dataset);
  // The nightly case, whatever the history: the stream index names the base and that stream's
  // manifest proves it; anything else (no index, no base, a stale entry) asks the listing.
  const indexed = await repo.indexedStreams(dataset);
  if (indexed) {
    const archived = archivedSnapshots(indexed);
    const base = selectBase({ target, source, archived, raw });
    const holder = base && indexed.find((m) => m.streamId === archived.get(base.guid.toString())?.streamId);
    if (base && holder && (await repo.confirms(holder))) {
      const already = archived.get(target.guid.toString());
      if (already) o.log.info({ stream: already.streamId }, `${o.snapshot} is already in the archive`);
      return base;
    }
  }
  const { streams } = await repo.catalog(dataset);
  const archived = archivedSnapshots(streams);
  const already = archived.get(target.guid.toString());
  if (already) o.log.info({ stream: already.streamId }, `${o.snapshot} is already in the archive`);
  const base = selectBase({ target, source, archived, raw });
  if (!base && streams.length > 0) {
    o.log.warn({ dataset }, 'no snapshot the archive holds still exists on the source (as snapshot or bookmark): sending a new full stream');
  }
  return base;
}
