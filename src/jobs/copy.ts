import type { IndexedStream } from '../archive/format/stream-index.js';
import type { ManifestSummary } from '../archive/format/manifest.js';
import { CopyDamagedError, copyStream } from '../archive/pipeline/stream-copy.js';
import { Repository } from '../archive/repository.js';
import type { Backend, ObjectLockStore } from '../storage/backend.js';
import { errorMessage } from '../util/errors.js';
import { interruptionOf } from '../util/interrupted.js';
import type { Logger } from '../util/logger.js';
import { checkLockTarget, extendChainRetention, extendObjects, type LockRequest, retentionFor } from './object-lock.js';

/**
 * `zfs-offsite copy --from A --to B [DATASET…]`: the committed streams of A that B lacks, copied
 * object by object with every hash checked (archive/pipeline/stream-copy.ts), each committed in
 * B by its manifest, written last, under B's dataset lease, and recorded in B's stream index as
 * a writer does. No ZFS: a USB disk seeded from a bucket, or the other way round.
 *
 * A stream is in B when B holds a valid manifest of the same dataset, to-snapshot GUID and base
 * GUID (whatever its stream id or chunk size). Streams are copied oldest first, so B never holds
 * an incremental before the stream it builds on unless A lacks it too.
 */

export interface CopyJob {
  source: Backend;
  target: Backend;
  /** Only these datasets (exactly, not their children); all of A's when empty. */
  datasets: string[];
  parallel: number;
  log: Logger;
  signal?: AbortSignal;
  /** `copy --object-lock`: as put's (jobs/object-lock.ts): every object retained, the chain in B extended before each commit. */
  lock?: LockRequest;
}

export interface CopiedStream {
  dataset: string;
  streamId: string;
  /** Objects (chunks, attachments) copied now, and kept from an interrupted copy. */
  objectsCopied: number;
  objectsReused: number;
  copiedBytes: number;
  storedBytes: number;
}

export interface CopyFailure {
  dataset: string;
  streamId: string;
  /** The damaged or missing object of A, for `copy-damaged`. */
  object?: string;
  kind: 'copy-damaged' | 'failed';
  message: string;
}

export interface CopyReport {
  from: string;
  to: string;
  copied: CopiedStream[];
  /** Streams B holds already. */
  present: number;
  failed: CopyFailure[];
  /** Streams of A not copied because their manifest is damaged (verify A). */
  skippedDamaged: { dataset: string; streamId: string; message: string }[];
}

/** Stream identity across archives: dataset, to-snapshot GUID, base GUID. */
function identity(s: ManifestSummary): string {
  return `${s.dataset}\u0000${s.to.guid}\u0000${s.substreams[0]!.fromguid}`;
}

export async function copyArchive(job: CopyJob): Promise<CopyReport> {
  const source = await Repository.open(job.source);
  for (const dataset of job.datasets) if (!(await source.hasDataset(dataset))) throw await source.unknownDataset(dataset);
  const catalogs = job.datasets.length === 0 ? [await source.catalog()] : await Promise.all(job.datasets.map((d) => source.catalog(d)));
  const streams = catalogs.flatMap((c) => c.streams);
  const report: CopyReport = {
    from: job.source.location,
    to: job.target.location,
    copied: [],
    present: 0,
    failed: [],
    skippedDamaged: catalogs.flatMap((c) => c.damaged).map((d) => ({ dataset: d.dataset, streamId: d.streamId, message: `${d.object}: ${d.message}` })),
  };
  for (const d of report.skippedDamaged) job.log.warn({ dataset: d.dataset, stream: d.streamId }, `not copied: its manifest in ${job.source.location} is damaged (${d.message})`);
  const target = new Repository(job.target);
  await target.check();
  // A lock B cannot keep is refused before anything is written (exit 2), as put refuses it.
  const lockStore = await checkLockTarget(job.target, job.lock);
  await target.ensureMarkerInEmpty();
  const byDataset = new Map<string, IndexedStream[]>();
  for (const s of streams) byDataset.set(s.dataset, [...(byDataset.get(s.dataset) ?? []), s]);
  for (const [dataset, list] of byDataset) {
    const interrupted = interruptionOf(job.signal);
    if (interrupted) throw interrupted;
    await copyDataset(job, source, target, dataset, list, report, lockStore);
  }
  return report;
}

async function copyDataset(job: CopyJob, source: Repository, target: Repository, dataset: string, streams: IndexedStream[], report: CopyReport, lockStore: ObjectLockStore | undefined): Promise<void> {
  const lock = lockStore ? job.lock : undefined;
  // Held from the first look at B's streams to the last commit, as a writer holds it.
  const lease = await target.lease({ dataset, log: job.log, localLock: false });
  try {
    const held = new Set((await target.catalog(dataset)).streams.map(identity));
    for (const summary of [...streams].sort((a, b) => a.streamId.localeCompare(b.streamId))) {
      if (held.has(identity(summary))) {
        report.present++;
        continue;
      }
      const interrupted = interruptionOf(job.signal);
      if (interrupted) throw interrupted;
      const other = await target.readManifest(summary);
      if ('manifest' in other) {
        report.failed.push({ dataset, streamId: summary.streamId, kind: 'failed', message: `${target.where(target.streamPrefix(summary))} holds another stream under the same id: not overwritten` });
        continue;
      }
      try {
        const manifest = await source.fullManifest(summary);
        const done = await copyStream({
          source: job.source,
          target: job.target,
          manifest,
          parallel: job.parallel,
          signal: job.signal,
          ...(lock ? { retention: () => retentionFor(lock) } : {}),
          beforeCommit: async () => {
            await lease.assertHeld();
            // Before the manifest: never committed while a stream it needs in B could expire first.
            if (lockStore && lock) {
              await extendChainRetention({
                repo: target,
                store: lockStore,
                dataset,
                stream: { substreams: manifest.substreams, finishedAt: new Date().toISOString() },
                retention: retentionFor(lock),
                log: job.log,
              });
            }
          },
        });
        // Objects an interrupted copy stored were written with that run's (earlier) date, or none.
        if (lockStore && lock && done.reused > 0) await extendObjects(lockStore, await target.streamObjectKeys(summary), retentionFor(lock));
        held.add(identity(summary));
        report.copied.push({ dataset, streamId: summary.streamId, objectsCopied: done.copied, objectsReused: done.reused, copiedBytes: done.copiedBytes, storedBytes: manifest.storedBytes });
        job.log.info({ dataset, stream: summary.streamId, copied: done.copied, reused: done.reused }, 'stream copied');
        await recordCommit(target, job.log, summary);
      } catch (err) {
        if (interruptionOf(job.signal)) throw err;
        if (!(err instanceof CopyDamagedError)) throw err;
        // Reported by the command (one error line, the report): the other streams are still copied.
        report.failed.push({ dataset, streamId: summary.streamId, kind: 'copy-damaged', object: err.object, message: err.message });
      }
    }
  } finally {
    await lease.release();
  }
}

/** B's stream index with the stream just committed: best effort, as after a put (jobs/archive-stream.ts). */
async function recordCommit(target: Repository, log: Logger, stream: { dataset: string; streamId: string }): Promise<void> {
  try {
    await target.recordCommit(stream);
  } catch (err) {
    log.warn({ dataset: stream.dataset, stream: stream.streamId }, `the stream index was not updated (${errorMessage(err)}): the stream is copied; the next command reads its manifest instead`);
  }
}
