import type { InvalidDir, StreamDir } from '../archive/plan/audit.js';
import { type DamagedStream, invalidKeyWarning } from '../archive/format/catalog.js';
import { shownKey } from '../archive/format/keys.js';
import type { Manifest, ManifestSummary } from '../archive/format/manifest.js';
import { planRetention, type RetentionPolicy } from '../archive/plan/retention.js';
import { DeletionRefusedError, deletionRefused, probeDeletion } from '../archive/leftovers.js';
import { Repository } from '../archive/repository.js';
import { expiredDeletions } from '../archive/plan/object-lock.js';
import type { Backend, ObjectLockStore, ObjectVersion } from '../storage/backend.js';
import { deleteVersions, streamVersions } from './object-lock.js';
import { errorMessage, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/**
 * `prune`: applies the retention planner to each dataset of an archive and deletes what it lets
 * go, plus uploads abandoned long ago. Order of deletion, so that a crash at any point leaves
 * nothing a restore would trip over, only leftovers that verify reports and the next prune removes:
 *   - within a stream: manifest.json first (the stream stops existing), then SHA256SUMS and chunks;
 *   - across streams: newest first, so a stream is never left behind without its base (an
 *     incremental's base snapshot is always older than the incremental itself).
 */

/** Holds a dataset while it is pruned: listing, planning and deleting happen under it. */
export interface HeldLock {
  release(): Promise<void>;
  /** Re-checks the lock just before deleting (a lease may have been taken over). */
  assertHeld?(): Promise<void>;
}

export interface PruneOptions {
  backend: Backend;
  log: Logger;
  /** Only this dataset (not its children); default every dataset of the archive. */
  dataset?: string;
  policy: RetentionPolicy;
  /** Streams without a manifest whose newest object is older than this are removed. */
  staleAfterMs: number;
  dryRun: boolean;
  now?: Date;
  /**
   * Locks a dataset for the prune (the CLI takes the dataset lock; `run` already holds it and
   * passes nothing). Not called in a dry run, which changes nothing.
   */
  lockDataset?(dataset: string): Promise<HeldLock>;
}

export interface PrunedStream {
  dataset: string;
  streamId: string;
  kind: 'full' | 'incr';
  snapshots: string[];
  storedBytes: number;
  objects: number;
  reason: string;
}

export interface AbandonedStream {
  dataset: string;
  streamId: string;
  /** An interrupted upload (journal) or the leftovers of an interrupted delete (no journal). */
  hasJournal: boolean;
  objects: number;
  bytes: number;
  ageSeconds: number;
}

export interface PruneDatasetReport {
  dataset: string;
  keptStreams: number;
  keptBytes: number;
  deleted: PrunedStream[];
  /** Snapshots chosen by the policy, newest first, with why. */
  keptSnapshots: { name: string; why: string[] }[];
  /** Snapshots restorable before the prune and not after it. */
  lostSnapshots: string[];
  /** Streams kept because no full leads to them (verify reports them as chain-broken). */
  brokenKept: { streamId: string; reason: string }[];
  abandoned: AbandonedStream[];
  /**
   * Streams the retention policy lets go that Object Lock still holds (docs/object-lock.md): kept
   * until `until`, their own retention or that of the locked stream (`neededBy`) that needs them.
   */
  locked: { streamId: string; until: string; neededBy?: string }[];
  /** Streams whose manifest is damaged: while there are any, nothing of the dataset is deleted. */
  damaged?: { streamId: string; object: string; message: string }[];
  /** Why this dataset was not pruned (damaged manifest, held lock, storage failure). */
  error?: string;
}

export interface PruneReport {
  target: string;
  dryRun: boolean;
  policy: RetentionPolicy;
  datasets: PruneDatasetReport[];
  /** Incomplete S3 multipart uploads aborted (or found, in a dry run); null when the backend has none. */
  incompleteUploads: number | null;
  deletedStreams: number;
  deletedObjects: number;
  deletedBytes: number;
  seconds: number;
}

export async function pruneArchive(o: PruneOptions): Promise<PruneReport> {
  const started = Date.now();
  const now = o.now ?? new Date();
  const repo = await Repository.open(o.backend);
  // Before any lease is taken: a typo never leaves a lease (or its directory) behind.
  if (o.dataset && !(await repo.hasDataset(o.dataset))) throw await repo.unknownDataset(o.dataset);
  // Append-only credentials are refused here, before any lease is taken or anything deleted.
  if (!o.dryRun) await probeDeletion(o.backend);
  let datasets = o.dataset ? [o.dataset] : [];
  if (!o.dataset) {
    // A directory whose key is invalid belongs to no dataset this program wrote: never deleted.
    const layout = await repo.layout();
    datasets = layout.datasets;
    for (const d of layout.invalid) warnInvalid(o.log, repo, d);
  }
  const versions = await versionedBucket(o);
  const reports: PruneDatasetReport[] = [];
  let deletedSoFar = 0;
  for (const dataset of datasets) {
    const report = await pruneDataset(o, repo, dataset, now, deletedSoFar, versions);
    deletedSoFar += report.deleted.length;
    reports.push(report);
  }
  const olderThan = new Date(now.getTime() - o.staleAfterMs);
  // Outside the dataset leases, but no live writer is touched: chunks, journal, SHA256SUMS and
  // manifest are each one PutObject (writer.ts, journal.ts); only other tools' uploads are multipart.
  const incompleteUploads = await repo.cleanupIncompleteUploads(olderThan, o.dataset, o.dryRun);
  if (incompleteUploads) o.log.info({ count: incompleteUploads }, `${o.dryRun ? 'would abort' : 'aborted'} incomplete multipart uploads older than ${olderThan.toISOString()}`);
  const deleted = reports.flatMap((r) => r.deleted);
  const abandoned = reports.flatMap((r) => r.abandoned);
  return {
    target: repo.location,
    dryRun: o.dryRun,
    policy: o.policy,
    datasets: reports,
    incompleteUploads,
    deletedStreams: deleted.length,
    deletedObjects: deleted.reduce((n, s) => n + s.objects, 0) + abandoned.reduce((n, a) => n + a.objects, 0),
    deletedBytes: deleted.reduce((n, s) => n + s.storedBytes, 0) + abandoned.reduce((n, a) => n + a.bytes, 0),
    seconds: (Date.now() - started) / 1000,
  };
}

/** A versioned bucket: deleting is removing versions (and what Object Lock holds is kept). */
interface Versioned {
  store: ObjectLockStore;
  objectLock: boolean;
}

/**
 * Whether the target keeps versions. A server that cannot say is taken as not versioned, with a
 * warning: plain deletes then add delete markers at worst, never remove what a lock holds.
 */
async function versionedBucket(o: PruneOptions): Promise<Versioned | undefined> {
  const store = o.backend.objectLock;
  if (!store) return undefined;
  try {
    const state = await store.state();
    return state.versioning ? { store, objectLock: state.objectLock } : undefined;
  } catch (err) {
    o.log.warn(`cannot tell whether the bucket keeps versions (${errorMessage(err)}): deleting as if it did not (a versioned bucket keeps the data behind delete markers)`);
    return undefined;
  }
}

async function pruneDataset(o: PruneOptions, repo: Repository, dataset: string, now: Date, deletedBefore: number, versioned?: Versioned): Promise<PruneDatasetReport> {
  const report: PruneDatasetReport = { dataset, keptStreams: 0, keptBytes: 0, deleted: [], keptSnapshots: [], lostSnapshots: [], brokenKept: [], locked: [], abandoned: [] };
  let lock: HeldLock | undefined;
  const done = { deleted: 0 };
  try {
    if (!o.dryRun && o.lockDataset) lock = await o.lockDataset(dataset);
    await pruneListed(o, repo, dataset, now, report, lock, done, deletedBefore, versioned);
    // The one full rebuild of the stream index (writers only add their stream): without the
    // streams deleted, with any a failed index write missed. Written only when it differs.
    if (!o.dryRun) await refreshIndex(o.log, repo, dataset);
  } catch (err) {
    if (err instanceof UsageError && o.dataset) throw err;
    if (err instanceof DeletionRefusedError) throw err;
    if (deletionRefused(err)) throw new DeletionRefusedError(repo.location, err, `stopped after ${deletedBefore + done.deleted} deleted stream(s), the archive is consistent`);
    report.error = errorMessage(err);
    o.log.info({ dataset }, `not pruned: ${report.error}`); // the report says it; the caller decides how loudly
  } finally {
    await lock?.release();
  }
  return report;
}

/**
 * Lists, plans and deletes one dataset's streams into `report`. Its own function so that what it
 * listed (the manifests' chunk tables: 38 MB at 500,000 chunks, issue 17) is garbage before the
 * stream index is rebuilt, which reads the manifests again.
 */
async function pruneListed(
  o: PruneOptions,
  repo: Repository,
  dataset: string,
  now: Date,
  report: PruneDatasetReport,
  lock: HeldLock | undefined,
  done: { deleted: number },
  deletedBefore: number,
  versioned?: Versioned,
): Promise<void> {
  // Listed under the lock: a stream committed just before it is part of the plan.
  const { streams: dirs, invalid } = await repo.listStreams(dataset);
  if (o.dataset) for (const d of invalid) warnInvalid(o.log, repo, d);
  const manifests = new Map(dirs.flatMap((d): [StreamDir, Manifest][] => (d.manifest ? [[d, d.manifest]] : [])));
  const damaged = dirs.flatMap((d): DamagedStream[] => (d.damaged ? [d.damaged] : []));
  const committed = dirs.filter((d) => manifests.has(d));
  if (damaged.length > 0) {
    // What a damaged stream depends on, or whether it holds the newest snapshot, is unknown:
    // deleting anything could cost the snapshot it holds once it is rewritten. Keep it all.
    report.damaged = damaged.map((d) => ({ streamId: d.streamId, object: d.object, message: d.message }));
    report.keptStreams = committed.length + damaged.length;
    report.keptBytes = [...manifests.values()].reduce((n, m) => n + m.storedBytes, 0);
    report.error = `${damaged.length} damaged manifest${damaged.length === 1 ? '' : 's'} (${damaged.map((d) => `${d.streamId}: ${d.message}`).join('; ')}): nothing of this dataset is deleted until the stream is archived again (which rewrites it) or removed; verify reports it`;
  } else if (committed.length > 0) {
    const plan = planRetention({ streams: [...manifests.values()], policy: o.policy, now });
    // The plan hands back the manifests it was given, as summaries: deleting needs the chunks.
    const dirOf = new Map<ManifestSummary, StreamDir>(committed.map((d) => [manifests.get(d)!, d]));
    const fullOf = new Map<ManifestSummary, Manifest>([...manifests.values()].map((m) => [m, m]));
    report.keptStreams = plan.keep.length;
    report.keptBytes = plan.keep.reduce((n, m) => n + m.storedBytes, 0);
    report.keptSnapshots = plan.snapshots.filter((s) => s.kept).map((s) => ({ name: s.name, why: s.why }));
    report.lostSnapshots = plan.snapshots.filter((s) => s.restorable && !s.restorableAfter).map((s) => s.name);
    report.brokenKept = plan.broken.map((m) => ({ streamId: m.streamId, reason: plan.reasons.get(m.streamId)! }));
    // Newest first: dependents go before the streams they are based on. plan.delete is oldest
    // first by the snapshot order (snapshot-order.ts); stream ids would put `s10` before `s9`.
    let doomed = [...plan.delete].reverse();
    const versionsOf = new Map<ManifestSummary, ObjectVersion[]>();
    if (versioned) {
      // Only what has expired goes, and nothing a stream still locked needs (plan/object-lock.ts).
      const until = new Map<ManifestSummary, Date | null>();
      for (const m of doomed) {
        const found = await streamVersions(versioned.store, repo.streamPrefix(m), versioned.objectLock);
        versionsOf.set(m, found.versions);
        until.set(m, found.lockedUntil);
      }
      const split = expiredDeletions([...manifests.values()], doomed, (m) => until.get(m) ?? null, now);
      report.locked = split.locked.map((l) => ({ streamId: l.stream.streamId, until: l.until.toISOString(), ...(l.neededBy ? { neededBy: l.neededBy.streamId } : {}) }));
      report.keptStreams += split.locked.length;
      report.keptBytes += split.locked.reduce((n, l) => n + l.stream.storedBytes, 0);
      const deletable = new Set(split.deletable);
      doomed = doomed.filter((m) => deletable.has(m));
    }
    report.deleted = doomed.map((m) => describeStream(repo, fullOf.get(m)!, dirOf.get(m)!, plan.reasons.get(m.streamId)!));
    if (!o.dryRun && doomed.length > 0) {
      await lock?.assertHeld?.();
      for (const m of doomed) {
        try {
          if (versioned) await deleteVersions(versioned.store, versionsOf.get(m)!, repo.manifestKey(m));
          else await repo.deleteStream(fullOf.get(m)!, dirOf.get(m)!);
        } catch (err) {
          // The first refusal ends the prune (archive/leftovers.ts): the manifest goes first, so a
          // stream is whole or gone, and dependents went before their bases.
          if (deletionRefused(err)) throw new DeletionRefusedError(repo.location, err, `stopped after ${deletedBefore + done.deleted} deleted stream(s), the archive is consistent`);
          throw err;
        }
        done.deleted++;
        o.log.info({ dataset: m.dataset, stream: m.streamId }, 'deleted stream');
      }
    }
    // Journals beside committed manifests: left by writers with append-only credentials.
    const journals = committed.filter((d) => repo.hasJournal(d) && !doomed.some((m) => dirOf.get(m) === d));
    if (!o.dryRun && journals.length > 0) await repo.deleteJournals(journals);
  }
  report.abandoned = await removeAbandoned(
    o,
    repo,
    dirs.filter((d) => !manifests.has(d) && !repo.hasManifest(d)),
    now,
    versioned,
  );
}

/** Best effort (format/stream-index.ts: a cache every reader checks against its listing). */
async function refreshIndex(log: Logger, repo: Repository, dataset: string): Promise<void> {
  try {
    await repo.refreshIndex(dataset);
  } catch (err) {
    log.warn({ dataset }, `the stream index was not updated (${errorMessage(err)}): the next command reads the manifests instead`);
  }
}

function warnInvalid(log: Logger, repo: Repository, d: InvalidDir): void {
  log.warn(invalidKeyWarning({ object: repo.where(shownKey(d.prefix)), message: d.reason }));
}

function describeStream(repo: Repository, m: Manifest, dir: StreamDir, reason: string): PrunedStream {
  const keys = repo.objectsBesideManifest(m, dir);
  return {
    dataset: m.dataset,
    streamId: m.streamId,
    kind: m.kind,
    snapshots: m.substreams.map((s) => s.toname.slice(s.toname.indexOf('@') + 1)),
    storedBytes: dir.objects.bytes || m.storedBytes,
    objects: keys.length + 1,
    reason,
  };
}

/**
 * Stream directories without a manifest whose newest object is older than the grace period.
 * Runs only while this prune holds the dataset's lease (or `run`, holding it, calls it): every
 * writer holds that lease for as long as it writes, so an upload whose input merely paused
 * longer than `--stale-after` is never taken for abandoned (archive/lease.ts).
 */
async function removeAbandoned(o: PruneOptions, repo: Repository, dirs: StreamDir[], now: Date, versioned?: Versioned): Promise<AbandonedStream[]> {
  const out: AbandonedStream[] = [];
  for (const d of dirs) {
    const newest = d.objects.newest;
    if (d.objects.someTimeUnknown || newest === undefined) continue; // cannot tell its age: leave it
    const age = now.getTime() - newest;
    if (age < o.staleAfterMs) continue;
    const found = versioned && (await streamVersions(versioned.store, d.prefix, versioned.objectLock));
    if (found && found.lockedUntil !== null && found.lockedUntil > now) {
      o.log.info({ dataset: d.dataset, stream: d.streamId, until: found.lockedUntil.toISOString() }, 'abandoned upload kept: Object Lock holds it');
      continue;
    }
    out.push({
      dataset: d.dataset,
      streamId: d.streamId,
      hasJournal: repo.hasJournal(d),
      objects: d.objects.count,
      bytes: d.objects.bytes,
      ageSeconds: Math.round(age / 1000),
    });
    if (!o.dryRun) await (found ? versioned!.store.deleteVersions(found.versions) : repo.deleteListed(d));
  }
  return out;
}
