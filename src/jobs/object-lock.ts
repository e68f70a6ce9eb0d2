import type { ManifestSummary } from '../archive/format/manifest.js';
import type { Problem, StreamDir } from '../archive/plan/audit.js';
import { lockDependencies, retainUntil, retentionShortfalls } from '../archive/plan/object-lock.js';
import type { Repository } from '../archive/repository.js';
import type { Backend, ObjectLockStore, ObjectRetention, ObjectVersion } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/**
 * Chain-aware Object Lock for the writers (docs/object-lock.md): what `--object-lock` asks for,
 * whether the target can keep it, and, before a stream's manifest is written, the retention of
 * every stream it depends on extended to at least its own (archive/plan/object-lock.ts).
 */

export interface LockRequest {
  mode: 'governance' | 'compliance';
  durationMs: number;
}

/** The lock the settings ask for (`--object-lock`, `object_lock:`), or none. */
export function lockRequest(values: { objectLock?: number; objectLockMode?: string }): LockRequest | undefined {
  if (values.objectLock === undefined) {
    if (values.objectLockMode !== undefined) throw new UsageError('--object-lock-mode needs --object-lock DURATION (or object_lock.days in the config)', { kind: 'object-lock' });
    return undefined;
  }
  return { mode: values.objectLockMode === 'compliance' ? 'compliance' : 'governance', durationMs: values.objectLock };
}

/** The retention of a stream written now under `lock`. */
export function retentionFor(lock: LockRequest, now = new Date()): ObjectRetention {
  return { mode: lock.mode, until: retainUntil(now, lock.durationMs) };
}

/**
 * Refuses a lock the target cannot keep (exit 2, before anything is written): a local directory
 * or SFTP server has no Object Lock, and a bucket created without it cannot take a retention.
 */
export async function checkLockTarget(backend: Backend, lock: LockRequest | undefined): Promise<ObjectLockStore | undefined> {
  if (!lock) return undefined;
  const store = backend.objectLock;
  if (!store) throw new UsageError(`--object-lock is not supported by ${backend.location}: Object Lock needs an S3 bucket created with Object Lock enabled`, { kind: 'object-lock' });
  if (!(await store.state()).objectLock) {
    throw new UsageError(`--object-lock: the bucket of ${backend.location} does not have Object Lock enabled (it can only be turned on for a new bucket, or by the provider)`, { kind: 'object-lock' });
  }
  return store;
}

/** The commit-time view of a stream about to be committed: its links, committed now. */
export type CommittingStream = Pick<ManifestSummary, 'substreams'> & { finishedAt: string };

/**
 * Extends the retention of every stream `stream` depends on (its dataset's committed streams, as
 * the catalog lists them now) to at least `retention`. Per stream, the manifest is read first: one
 * already retained that long (extended last, see Repository.streamObjectKeys) means the whole
 * stream is, and costs one request. Returns how many streams and objects were extended.
 */
export async function extendChainRetention(o: {
  repo: Repository;
  store: ObjectLockStore;
  dataset: string;
  stream: CommittingStream;
  retention: ObjectRetention;
  log: Logger;
}): Promise<{ streams: number; objects: number }> {
  const { streams } = await o.repo.catalog(o.dataset);
  const deps = lockDependencies(streams, o.stream as ManifestSummary);
  let extended = { streams: 0, objects: 0 };
  for (const dep of deps) {
    const current = await o.store.getRetention(o.repo.manifestKey(dep)).catch((err: unknown) => {
      if (isNotFound(err)) return null; // deleted since the listing: extended below finds nothing
      throw err;
    });
    if (current && current.until.getTime() >= o.retention.until.getTime()) continue;
    const objects = await extendObjects(o.store, await o.repo.streamObjectKeys(dep), o.retention);
    extended = { streams: extended.streams + 1, objects: extended.objects + objects };
    o.log.debug({ dataset: dep.dataset, stream: dep.streamId, objects, until: o.retention.until.toISOString() }, 'retention extended');
  }
  if (extended.streams > 0) {
    o.log.info({ dataset: o.dataset, streams: extended.streams, objects: extended.objects, until: o.retention.until.toISOString() }, 'retention of the chain extended');
  }
  return extended;
}

/** Extends each object, in order (the manifest last); objects gone since the listing are skipped. */
export async function extendObjects(store: ObjectLockStore, keys: readonly string[], retention: ObjectRetention): Promise<number> {
  let done = 0;
  // Chunks in parallel (8), then the manifest alone, last.
  const last = keys.at(-1);
  const body = keys.slice(0, -1);
  for (let i = 0; i < body.length; i += 8) {
    const n = await Promise.all(body.slice(i, i + 8).map((k) => extendOne(store, k, retention)));
    done += n.filter(Boolean).length;
  }
  if (last !== undefined && (await extendOne(store, last, retention))) done++;
  return done;
}

async function extendOne(store: ObjectLockStore, key: string, retention: ObjectRetention): Promise<boolean> {
  try {
    await store.extendRetention(key, retention);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** The earliest retention among the current objects of a stream (null: one has none). */
export async function earliestRetention(store: ObjectLockStore, keys: readonly string[]): Promise<Date | null> {
  let earliest: Date | null | undefined;
  for (let i = 0; i < keys.length && earliest !== null; i += 8) {
    const found = await Promise.all(keys.slice(i, i + 8).map((k) => store.getRetention(k).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)))));
    for (const r of found) {
      if (r === undefined) continue;
      if (r === null) earliest = null;
      else if (earliest !== null && (earliest === undefined || r.until < earliest)) earliest = r.until;
    }
  }
  return earliest ?? null;
}

/**
 * For prune on a versioned bucket: every version of a stream directory (delete markers too), and
 * the latest retention among them (null: none is retained). A plain delete there would only add
 * delete markers, and the data would stay, billed.
 */
export async function streamVersions(store: ObjectLockStore, prefix: string, lockEnabled: boolean): Promise<{ versions: ObjectVersion[]; lockedUntil: Date | null }> {
  const versions = await store.listVersions(prefix);
  let latest: Date | null = null;
  if (lockEnabled) {
    const data = versions.filter((v) => !v.deleteMarker);
    for (let i = 0; i < data.length; i += 8) {
      const found = await Promise.all(data.slice(i, i + 8).map((v) => store.getRetention(v.key, v.versionId).catch((err: unknown) => (isNotFound(err) ? null : Promise.reject(err)))));
      for (const r of found) if (r && (!latest || r.until > latest)) latest = r.until;
    }
  }
  return { versions, lockedUntil: latest };
}

/** Deletes every version of a stream directory, those of its manifest first (the stream stops existing first). */
export async function deleteVersions(store: ObjectLockStore, versions: readonly ObjectVersion[], manifestKey: string): Promise<void> {
  await store.deleteVersions(versions.filter((v) => v.key === manifestKey));
  await store.deleteVersions(versions.filter((v) => v.key !== manifestKey));
}

/**
 * Quick verify on a bucket with Object Lock: every committed stream's earliest object retention
 * (one request per object), and a `retention-short` problem for each stream retained for less
 * time than a stream that depends on it (archive/plan/object-lock.ts retentionShortfalls).
 * Nothing on targets without Object Lock.
 */
export async function retentionProblems(repo: Repository, dirs: readonly StreamDir[]): Promise<Problem[]> {
  const store = repo.backend.objectLock;
  // A server (or key) that cannot say whether the bucket has Object Lock has none to check here.
  if (
    !store ||
    !(await store.state().then(
      (st) => st.objectLock,
      () => false,
    ))
  )
    return [];
  const problems: Problem[] = [];
  const byDataset = new Map<string, { summary: ManifestSummary; dir: StreamDir }[]>();
  for (const dir of dirs) {
    const summary = dir.manifest ?? dir.indexed;
    if (!summary) continue;
    byDataset.set(dir.dataset, [...(byDataset.get(dir.dataset) ?? []), { summary, dir }]);
  }
  for (const [dataset, entries] of byDataset) {
    const until = new Map<ManifestSummary, Date | null>();
    for (const { summary, dir } of entries) {
      until.set(summary, await earliestRetention(store, repo.listedStreamObjects(dir)));
    }
    for (const s of retentionShortfalls(
      entries.map((e) => e.summary),
      (m) => until.get(m) ?? null,
    )) {
      problems.push({
        kind: 'retention-short',
        dataset,
        stream: s.stream.streamId,
        object: repo.where(repo.manifestKey(s.stream)),
        expected: s.needs.toISOString(),
        found: s.has ? s.has.toISOString() : 'none',
        message: `retained ${s.has ? `until ${s.has.toISOString()}` : 'without Object Lock'}, but ${s.neededBy.streamId} needs it until ${s.needs.toISOString()}: the next put or send with --object-lock extends it`,
      });
    }
  }
  return problems;
}
