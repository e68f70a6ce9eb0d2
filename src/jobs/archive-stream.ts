import type { ByteSource } from '../util/byte-source.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import type { Manifest, ManifestSummary } from '../archive/format/manifest.js';
import { type StreamIdentity, writeArchiveStream } from '../archive/pipeline/writer.js';
import type { Backend } from '../storage/backend.js';
import type { StreamSummary } from '../stream/validator.js';
import type { SettingValues } from '../settings/table.js';
import { archiveSettingValues } from '../settings/values.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { Progress } from '../util/progress.js';
import type { DatasetLock, HeldLease } from '../archive/lease.js';
import { Repository } from '../archive/repository.js';
import type { ManifestSubstream } from '../archive/format/manifest.js';
import { findIndexed } from '../archive/format/stream-index.js';
import { checkLockTarget, extendChainRetention, extendObjects, type LockRequest, lockRequest, retentionFor } from './object-lock.js';

export interface ArchiveSettings {
  chunkSize: number;
  level: number;
  parallel: number;
  progress: boolean;
  /** No input for this long is an error (a stalled zfs send); 0 = wait forever. */
  stallMs: number;
  /** `--object-lock` / `object_lock:`: every object of the stream retained, its chain extended (jobs/object-lock.ts). */
  lock?: LockRequest;
}

/** The writer's settings from the values of src/settings/table.ts (defaults filled in). */
export function archiveSettings(values: SettingValues, progress: boolean): ArchiveSettings {
  const v = archiveSettingValues(values);
  const lock = lockRequest(v);
  return { chunkSize: v.chunkSize, level: v.compressionLevel, parallel: v.parallel, stallMs: v.stallTimeout, progress, ...(lock ? { lock } : {}) };
}

export interface ArchiveStreamResult {
  status: 'archived' | 'already-archived';
  dataset: string;
  streamId: string;
  manifest?: Manifest;
  seconds: number;
  /** Stored bytes sent by this run, and chunks an interrupted run had stored already. */
  uploadedBytes: number;
  chunksReused: number;
}

export interface ArchiveStreamJob {
  backend: Backend;
  input: ByteSource;
  pool: ChunkPool;
  settings: ArchiveSettings;
  log: Logger;
  dataset?: string;
  sendArgs: string[] | null;
  zfsVersion: string | null;
  fromName?(fromguid: bigint, dataset: string): Promise<string>;
  beforeCommit?(summary: StreamSummary): Promise<void>;
  /** GUID → `createtxg` of the stream's snapshots, best effort (see snapshot-txgs.ts). */
  snapshotTxgs?(summary: StreamSummary): Promise<ReadonlyMap<string, string>>;
  /**
   * The dataset's lease when the caller holds it already (`send`, `run`). Without it the lease
   * is taken as soon as the stream names its dataset and held until the end (archive/lease.ts).
   */
  lease?: HeldLease;
  /** The stream's size when known, for the progress line (`put --input FILE`; `send`: an estimate). */
  totalBytes?: number;
  /** `totalBytes` is an estimate (`zfs send -nvP`): the stream may outgrow it. */
  estimate?: boolean;
  /** Ctrl-C / SIGTERM (src/cli/interrupt.ts): the writer saves its journal and fails with an InterruptedError. */
  signal?: AbortSignal;
  /** Files kept with the stream (jobs/attachments.ts), read before the upload starts. */
  attachments?: readonly { name: string; body: Buffer }[];
}

/** Whether a command shows the progress line: asked for, and stderr is a terminal. */
export function showsProgress(settings: ArchiveSettings): boolean {
  return settings.progress && Boolean(process.stderr.isTTY);
}

/** Shared by `put` and `send`: one stream into the archive, refusing to archive twice. */
export async function archiveStream(job: ArchiveStreamJob): Promise<ArchiveStreamResult> {
  const started = Date.now();
  const repo = new Repository(job.backend);
  await repo.check();
  // A lock the target cannot keep is refused before anything is written (exit 2).
  const lockStore = await checkLockTarget(job.backend, job.settings.lock);
  const lock = job.settings.lock;
  await repo.ensureMarker();
  const progress = new Progress(showsProgress(job.settings));
  let alreadyArchived = false;
  let taken: DatasetLock | undefined;
  let dataset = job.dataset ?? '';
  try {
    const result = await writeArchiveStream({
      backend: job.backend,
      input: job.input,
      dataset: job.dataset,
      chunkSize: job.settings.chunkSize,
      level: job.settings.level,
      parallel: job.settings.parallel,
      stallMs: job.settings.stallMs,
      pool: job.pool,
      log: job.log,
      sendArgs: job.sendArgs,
      zfsVersion: job.zfsVersion,
      ...(lock ? { retention: () => retentionFor(lock) } : {}),
      onIdentified: async (identity: StreamIdentity) => {
        dataset = identity.dataset;
        // Live from here on: no prune deletes this stream (or the chain it extends) as abandoned.
        if (!job.lease) taken = await repo.lease({ dataset: identity.dataset, log: job.log, localLock: false });
        alreadyArchived = await archivedAlready(repo, job, identity);
        return !alreadyArchived;
      },
      fromName: job.fromName ?? ((guid, dataset) => fromNameInArchive(repo, guid, dataset, job.log)),
      beforeCommit: async (summary) => {
        await job.beforeCommit?.(summary);
        // A writer whose lease was taken over may have lost chunks to the new holder's prune.
        await (job.lease ?? taken)?.assertHeld();
        // Before the manifest: a stream is never committed while a stream it needs could expire first.
        if (lockStore && lock) {
          const substreams = summary.substreams.map((sub) => ({ fromguid: sub.fromguid.toString(), toguid: sub.toguid.toString() }) as ManifestSubstream);
          await extendChainRetention({ repo, store: lockStore, dataset, stream: { substreams, finishedAt: new Date().toISOString() }, retention: retentionFor(lock), log: job.log });
        }
      },
      onProgress: (p) =>
        progress.update({
          rawBytes: p.rawBytes,
          storedBytes: p.storedBytes,
          totalBytes: job.totalBytes ?? job.input.totalBytes,
          estimate: job.totalBytes !== undefined && job.estimate,
          label: 'archiving',
        }),
      snapshotTxgs: job.snapshotTxgs,
      signal: job.signal,
      attachments: job.attachments,
    });
    const seconds = (Date.now() - started) / 1000;
    const { streamId } = result.identity;
    if (result.status === 'stopped') {
      return { status: alreadyArchived ? 'already-archived' : 'archived', dataset, streamId, seconds, uploadedBytes: 0, chunksReused: 0 };
    }
    const { uploadedBytes, chunksReused } = result.progress;
    // Chunks an interrupted run stored were written with that run's (earlier) date, or none.
    if (lockStore && lock && chunksReused > 0) await extendObjects(lockStore, await repo.streamObjectKeys(result.identity), retentionFor(lock));
    await refreshIndex(repo, job.log, result.manifest);
    return { status: 'archived', dataset, streamId, manifest: result.manifest, seconds, uploadedBytes, chunksReused };
  } finally {
    progress.done();
    await taken?.release();
  }
}

/**
 * After the commit, still under the lease: the dataset's stream index with this stream
 * (format/stream-index.ts). Best effort: the manifest is the commit point and the index a cache
 * every reader checks, so a failure here is a warning, never a failed archive.
 */
async function refreshIndex(repo: Repository, log: Logger, manifest: Manifest): Promise<void> {
  const { dataset, streamId } = manifest;
  try {
    // The manifest the writer just stored (a checked put): not read back (154 MB at 500,000 chunks).
    await repo.recordCommit(manifest, manifest);
  } catch (err) {
    log.warn({ dataset, stream: streamId }, `the stream index was not updated (${errorMessage(err)}): the stream is archived; the next command reads its manifest instead`);
  }
}

/**
 * Only a manifest that is valid and describes this very stream (parseManifest checks dataset and
 * stream id against its directory; here the first substream's GUIDs) means "already archived".
 * A damaged or foreign one is rewritten: the writer treats the directory as an interrupted upload
 * and the commit replaces the manifest.
 */
async function archivedAlready(repo: Repository, job: ArchiveStreamJob, identity: StreamIdentity): Promise<boolean> {
  const read = await repo.readManifest(identity);
  if ('absent' in read) return false;
  const first = identity.start.first;
  const m = 'manifest' in read ? read.manifest : undefined;
  const sub = m?.substreams[0];
  if (m && sub && sub.toguid === first.toguid.toString() && sub.fromguid === first.fromguid.toString() && m.compound === identity.start.compound) return true;
  const why = 'damaged' in read ? read.damaged.message : 'it describes another stream';
  job.log.warn({ dataset: identity.dataset, stream: identity.streamId }, `the stored manifest of this stream cannot be used (${why}): archiving the stream again rewrites it`);
  return false;
}

/**
 * A piped stream carries only the base GUID; its name comes from the archived stream that leads
 * to it: found in the stream index (its newest segment holding one) and proven by that stream's
 * manifest (a few reads, whatever the history), or else from the catalog (a listing of the dataset). None does: the stream is
 * archived all the same (its base may be archived later, or be on the pool it is restored to),
 * but the user is told, since a restore from this archive alone fails.
 */
async function fromNameInArchive(repo: Repository, guid: bigint, dataset: string, log: Logger): Promise<string> {
  const leadingTo = (streams: readonly ManifestSummary[]) => streams.find((m) => m.substreams.some((s) => s.toguid === guid.toString()));
  // Newest index segment first: the base of a nightly incremental is among the newest streams.
  const indexed = await findIndexed(repo.backend, dataset, (m) => m.substreams.some((s) => s.toguid === guid.toString()));
  if (indexed && (await repo.confirms(indexed))) return toShortName(indexed, guid);
  const { streams, damaged } = await repo.catalog(dataset);
  const found = leadingTo(streams);
  if (found) return toShortName(found, guid);
  // A stream whose manifest is damaged may be the base: that is not known, so not claimed (list
  // and verify report the damaged manifest, and archiving its snapshot again repairs it).
  if (damaged.length > 0) return '';
  log.warn(
    `the base of this incremental stream (the snapshot with GUID ${guid}, from its BEGIN record) is not in the archive of ${dataset}: ` +
      'put the stream that ends at that snapshot too, or a restore needs that snapshot on the receiving pool already',
  );
  return '';
}

/** The short name (after `@`) of the snapshot with this GUID in a stream. */
function toShortName(m: ManifestSummary, guid: bigint): string {
  const s = m.substreams.find((sub) => sub.toguid === guid.toString())!;
  return s.toname.slice(s.toname.indexOf('@') + 1);
}
