import type { Backend, EntryType, ObjectInfo } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { OperationalError, UsageError } from '../util/errors.js';
import { closest } from '../util/suggest.js';
import {
  type Catalog,
  ensureArchiveMarker,
  inDataset,
  loadCatalog,
  type ManifestRead,
  NoArchiveError,
  readArchiveMarker,
  readIndexes,
  readManifest,
  readManifests,
  withoutNestedArchives,
} from './format/catalog.js';
import { createHash } from 'node:crypto';
import { rebuildIndex, recordCommit } from './format/index-update.js';
import { datasetFromPath, datasetPath, JOURNAL_NAME, MANIFEST_NAME, MARKER_KEY, shownKey, streamPrefix, SUMS_NAME } from './format/keys.js';
import { type IndexedStream, readIndex, sameObject } from './format/stream-index.js';
import type { Manifest, ManifestAttachment, ManifestSummary } from './format/manifest.js';
import { ChunkSums } from './format/chunk-sums.js';
import { readStatusRecord, type StatusKind, type StatusRecord, writeStatusRecord } from './format/status-record.js';
import { acquireDatasetLock, type DatasetLock, type LockOptions } from './lease.js';
import { type InvalidDir, StreamGrouper, type StreamDir } from './plan/audit.js';

/** A link or special file found inside the target. */
export interface UnsafeFound {
  key: string;
  type: EntryType;
}

export interface ListedStreams {
  streams: StreamDir[];
  /** Objects outside any stream directory (marker and leases excepted). */
  loose: ObjectInfo[];
  /** Directories whose key no zfs-offsite writes (format/keys.ts): never read or deleted. */
  invalid: InvalidDir[];
  unsafe: UnsafeFound[];
  /** Roots (`dir/`) of other archives found below this one's root: left out of everything above. */
  nested: string[];
  /** Datasets (of those listed) whose stream index (format/stream-index.ts) the listing showed. */
  indexed: Set<string>;
}

/** Whether a manifest read now is the stream a summary was made of (format/stream-index.ts summarize). */
function describesSame(m: Manifest, summary: ManifestSummary): boolean {
  return m.sha256 === summary.sha256 && m.rawBytes === summary.rawBytes && m.storedBytes === summary.storedBytes && JSON.stringify(m.substreams) === JSON.stringify(summary.substreams);
}

/** How a dataset name given by the user is matched: that dataset alone, or with its children. */
export interface DatasetScope {
  children?: boolean;
}

/**
 * The archive in one target, as jobs see it (the model is restic's `internal/repository`): the
 * one way a job lists, reads, deletes and leases archive objects, so object keys
 * (format/keys.ts) and the manifest reading policy live here and not in each job. A damaged
 * manifest is always an answer about its stream (format/catalog.ts readManifest), never an
 * error of the whole listing. The data paths keep their own modules over `backend`:
 * pipeline/writer.ts writes streams, pipeline/chunk-fetcher.ts reads chunks.
 */
export class Repository {
  constructor(readonly backend: Backend) {}

  /**
   * The archive for a read-only command (list, verify, restore, prune): nothing is created in the
   * target; without the marker at its root there is no archive there (NoArchiveError, exit 4), so
   * a typo or an unmounted disk is never reported as an empty, clean archive.
   */
  static async open(backend: Backend): Promise<Repository> {
    await readArchiveMarker(backend);
    return new Repository(backend);
  }

  get location(): string {
    return this.backend.location;
  }

  /** Reachable and writable, with the credentials given (storage/backend.ts `check`): writers only, it creates the root. */
  check(): Promise<void> {
    return this.backend.check();
  }

  /** Reads or creates the archive marker; refuses an archive of an incompatible version. Resolves with the target's id (format/catalog.ts). */
  ensureMarker(): Promise<string> {
    return ensureArchiveMarker(this.backend);
  }

  /** The target's short id (format/catalog.ts) without creating anything; undefined when there is no archive yet. */
  async targetId(): Promise<string | undefined> {
    try {
      return await readArchiveMarker(this.backend);
    } catch (err) {
      if (err instanceof OperationalError && err.kind === 'no-archive') return undefined;
      throw err;
    }
  }

  /**
   * For `copy` into a target: its marker, or a new one when the target holds nothing at all. A
   * target with objects but no marker is someone else's directory or bucket (or an archive given
   * one level too deep): nothing is written into it (exit 2).
   */
  async ensureMarkerInEmpty(): Promise<void> {
    try {
      await readArchiveMarker(this.backend);
      return;
    } catch (err) {
      if (!(err instanceof NoArchiveError)) throw err;
    }
    let found: string | undefined;
    const note = (o: { key: string }) => {
      found ??= o.key;
    };
    await this.backend.list('', note, { onUnsafe: note });
    if (found !== undefined) {
      throw new UsageError(`${this.location} holds no archive (no zfs-offsite.json) but is not empty (${shownKey(found)}…): give an empty target or an archive`, {
        kind: 'target-not-empty',
        context: { object: this.where(found) },
      });
    }
    await ensureArchiveMarker(this.backend);
  }

  /** Key prefix of a dataset's objects (its children's too), or '' for the whole archive. */
  datasetPrefix(dataset?: string): string {
    return dataset ? `${datasetPath(dataset)}/` : '';
  }

  /** `<dataset path>/<stream id>/`: where a stream's objects live. */
  streamPrefix(stream: { dataset: string; streamId: string }): string {
    return streamPrefix(stream.dataset, stream.streamId);
  }

  /** How an object (or a prefix) is named to the user: `<target>/<key>`. */
  where(key: string): string {
    return `${this.location}/${key}`;
  }

  /**
   * Valid manifests (as summaries), damaged ones and uploads in progress of one dataset (its
   * children with `children`), or of all: one listing, the stream indexes it shows, and the
   * manifests no index entry stands for (format/catalog.ts loadCatalog). Writes nothing.
   */
  catalog(dataset?: string, scope: DatasetScope = {}): Promise<Catalog> {
    return loadCatalog(this.backend, dataset, { children: scope.children === true });
  }

  /**
   * Stores the stream index of `dataset` as a listing now proves it, when it differs from the
   * stored one (format/stream-index.ts); removes it when the dataset has no committed stream
   * left. Writers only, and best effort for them: the manifests are the truth, a missing or
   * stale index is only slower. Prune calls it (the full rebuild, one listing of the dataset).
   */
  async refreshIndex(dataset: string): Promise<void> {
    await rebuildIndex(this.backend, dataset);
  }

  /**
   * After a commit, under the lease: the stored index with the stream just committed, without
   * listing the dataset (which grows with its history): format/index-update.ts recordCommit.
   * `stored`: the manifest the caller just wrote, when it has it (else it is read).
   */
  async recordCommit(stream: { dataset: string; streamId: string }, stored?: Manifest): Promise<void> {
    await recordCommit(this.backend, { ...stream, prefix: this.streamPrefix(stream) }, stored);
  }

  /** The manifest of one stream: valid, damaged (an answer, not an error) or absent. */
  readManifest(stream: { dataset: string; streamId: string }): Promise<ManifestRead> {
    return readManifest(this.backend, { dataset: stream.dataset, streamId: stream.streamId, prefix: this.streamPrefix(stream) });
  }

  /**
   * The whole manifest of a stream a catalog summarised (restore needs its chunks): read,
   * parsed, and the same stream the summary describes, or an OperationalError (deleted or
   * rewritten since the listing: running again plans with what is there then).
   */
  async fullManifest(summary: ManifestSummary): Promise<Manifest> {
    const read = await this.readManifest(summary);
    if ('manifest' in read && describesSame(read.manifest, summary)) return read.manifest;
    const object = this.where(this.streamPrefix(summary) + MANIFEST_NAME);
    const why = 'absent' in read ? 'is gone' : 'damaged' in read ? `is damaged (${read.damaged.message})` : 'describes another stream';
    throw new OperationalError(`${object} ${why} since the archive was listed: nothing was restored from it; run the command again`, { context: { object } });
  }

  /**
   * For a writer before its upload, without listing the dataset (which grows with its history):
   * the summaries of the dataset's stored stream index, sorted as a catalog's; undefined without
   * a usable one. Not proven by a listing: the caller decides only on what `confirms` proves
   * against the manifest, and asks `catalog` otherwise (send.ts base selection,
   * archive-stream.ts fromNameInArchive).
   */
  async indexedStreams(dataset: string): Promise<IndexedStream[] | undefined> {
    const index = await readIndex(this.backend, dataset);
    return index && [...index.values()].map((e) => e.stream).sort((a, b) => a.streamId.localeCompare(b.streamId));
  }

  /** Whether the stream a summary describes is committed with a valid manifest that says the same. */
  async confirms(summary: ManifestSummary): Promise<boolean> {
    const read = await this.readManifest(summary);
    return 'manifest' in read && describesSame(read.manifest, summary);
  }

  /**
   * Every object under a dataset (its children's too) or the archive, grouped into stream
   * directories; `unsafe`: the links and special files met, which are never followed (storage/confined.ts).
   * Another archive nested below the root (its own marker) is left out (format/catalog.ts withoutNestedArchives).
   */
  private async listDirs(dataset?: string, scope: DatasetScope = {}): Promise<ListedStreams> {
    // Grouped as listed, chunks kept compact (format/listed-objects.ts): the listing is never held
    // whole (a stream of 500,000 chunks lists as many objects: issue 17).
    const grouper = new StreamGrouper();
    const markers: { key: string }[] = [];
    const unsafeAll: UnsafeFound[] = [];
    await this.backend.list(
      this.datasetPrefix(dataset),
      (info) => {
        if (info.key.endsWith(`/${MARKER_KEY}`)) markers.push({ key: info.key });
        grouper.add(info);
      },
      { onUnsafe: (entry) => unsafeAll.push(entry) },
    );
    // Every object below a nested archive's root is in a directory whose prefix starts with that root.
    const nested = withoutNestedArchives(markers).nested;
    const outside = (key: string) => !nested.some((root) => key.startsWith(root));
    const unsafe = unsafeAll.filter((u) => outside(u.key));
    const all = grouper.grouped;
    const grouped = {
      streams: [...all.streams.values()].filter((s) => outside(s.prefix)),
      loose: all.loose.filter((o) => outside(o.key)),
      invalid: [...all.invalid.values()].filter((d) => outside(d.prefix)),
      indexes: all.indexes.filter((o) => outside(o.key)),
    };
    const wanted = (name: string) => !dataset || name === dataset || (scope.children === true && name.startsWith(`${dataset}/`));
    const indexed = new Set<string>();
    for (const o of grouped.indexes) {
      const owner = datasetFromPath(o.key.slice(0, o.key.lastIndexOf('/')));
      if ('dataset' in owner && wanted(owner.dataset)) indexed.add(owner.dataset);
    }
    return {
      streams: grouped.streams.filter((s) => wanted(s.dataset)),
      loose: grouped.loose,
      invalid: grouped.invalid.filter((d) => scope.children === true || inDataset(d.prefix, dataset)),
      unsafe,
      nested,
      indexed,
    };
  }

  /** The datasets that have stream directories, sorted. */
  async datasets(): Promise<string[]> {
    return (await this.layout()).datasets;
  }

  /** The datasets that have stream directories, sorted, and the directories whose key is invalid (never read). */
  async layout(): Promise<{ datasets: string[]; invalid: InvalidDir[] }> {
    const { streams, invalid } = await this.listDirs();
    return { datasets: [...new Set(streams.map((s) => s.dataset))].sort(), invalid };
  }

  /**
   * Whether the archive has stream directories of `dataset` (or, with `children`, of a child):
   * a dataset the user named that is not there is bad input (unknownDataset), not an empty answer.
   */
  async hasDataset(dataset: string, scope: DatasetScope = {}): Promise<boolean> {
    return (await this.listDirs(dataset, scope)).streams.length > 0;
  }

  /**
   * The error for a dataset the archive does not hold (exit 2): names the datasets it holds, and
   * the closest one when there is a close one (util/suggest.ts). Lists the whole archive: only
   * on this error path.
   */
  async unknownDataset(dataset: string): Promise<UsageError> {
    const present = await this.datasets();
    const guess = closest(dataset, present);
    const shown = present.length > 12 ? `${present.slice(0, 12).join(', ')} … (${present.length} in all; see: zfs-offsite list)` : present.join(', ');
    const holds = present.length === 0 ? 'it holds no datasets yet' : `it holds: ${shown}`;
    return new UsageError(`no dataset ${dataset} in the archive at ${this.location}${guess ? ` — did you mean ${guess}?` : ''} (${holds})`, {
      kind: 'unknown-dataset',
      context: { dataset },
    });
  }

  /**
   * The stream directories of one dataset (exactly, or with its children with `children`) or
   * of the archive, each with every listed object and its manifest read as in the catalog:
   * `manifest`, or `damaged`, or neither (none listed, or gone since the listing). With `sums`,
   * SHA256SUMS is read too. `loose`: objects outside any stream directory (marker, leases and
   * stream indexes excepted). `invalid`: directories of the dataset (or archive) whose key is invalid, unread.
   *
   * With `index` (quick verify), a stream whose stream index entry the listing matches in full —
   * the same manifest object, exactly its chunk objects with their sizes (the entry's chunk
   * digest) and, with `sums`, the SHA256SUMS its writer recorded — gets `indexed` instead of
   * `manifest` and `sums`: neither is read. Any difference, and the stream is read as without one.
   */
  async listStreams(dataset?: string, options: { sums?: boolean | 'chunks'; index?: boolean } & DatasetScope = {}): Promise<ListedStreams> {
    const listed = await this.listDirs(dataset, options);
    if (options.index) await this.useIndexes(listed, options.sums !== undefined && options.sums !== false);
    const withManifest = listed.streams.filter((s) => !s.indexed && this.hasManifest(s));
    for (const [k, read] of (await readManifests(this.backend, withManifest)).entries()) {
      if ('manifest' in read) withManifest[k]!.manifest = read.manifest;
      else if ('damaged' in read) withManifest[k]!.damaged = read.damaged;
    }
    if (options.sums === 'chunks') {
      // Only the manifest's chunks are looked up in it (plan/audit.ts): read piece by piece, no text kept.
      const withSums = listed.streams.filter((s) => s.manifest && this.listed(s, SUMS_NAME));
      for (let i = 0; i < withSums.length; i += 8) await Promise.all(withSums.slice(i, i + 8).map(async (s) => (s.chunkSums = await this.readChunkSums(s, s.manifest!.chunks.length))));
    } else if (options.sums) {
      const withSums = listed.streams.filter((s) => !s.indexed && this.listed(s, SUMS_NAME));
      for (let i = 0; i < withSums.length; i += 8) await Promise.all(withSums.slice(i, i + 8).map(async (s) => (s.sums = await this.readSums(s))));
    }
    return listed;
  }

  /** Marks the streams whose index entry the listing matches in full (listStreams). */
  private async useIndexes(listed: ListedStreams, sums: boolean): Promise<void> {
    const stored = await readIndexes(this.backend, [...listed.indexed]);
    for (const dir of listed.streams) {
      const entry = stored.get(dir.dataset)?.get(dir.streamId);
      if (!entry) continue;
      if (!sameObject(entry.object, dir.objects.info(MANIFEST_NAME))) continue;
      if (sums && !sameObject(entry.sums, dir.objects.info(SUMS_NAME))) continue;
      // The chunk digest of the listing (format/listed-objects.ts), compared with the one the writer recorded.
      if (dir.objects.chunkDigest(entry.stream.chunkCount) !== entry.chunkDigest) continue;
      dir.indexed = entry.stream;
    }
  }

  /** SHA256SUMS of a stream; gone since the listing (a prune, a repair): as if it had not been listed. */
  private async readSums(dir: StreamDir): Promise<string | undefined> {
    return this.backend.getBuffer(dir.prefix + SUMS_NAME).then(
      (b) => b.toString(),
      (err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      },
    );
  }

  /** readSums without the text: what it says of chunks 0 … count − 1 (format/chunk-sums.ts). */
  private async readChunkSums(dir: StreamDir, count: number): Promise<ChunkSums | undefined> {
    const sums = new ChunkSums(count);
    try {
      await this.backend.load(dir.prefix + SUMS_NAME, (piece) => sums.push(piece));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    sums.finish();
    return sums;
  }

  private listed(dir: StreamDir, name: string): boolean {
    return dir.objects.has(name);
  }

  /** The listing showed the stream's manifest (it may be damaged, or gone since). */
  hasManifest(dir: StreamDir): boolean {
    return this.listed(dir, MANIFEST_NAME);
  }

  /** The listing showed a resume journal: an upload in progress or interrupted. */
  hasJournal(dir: StreamDir): boolean {
    return this.listed(dir, JOURNAL_NAME);
  }

  /**
   * One attachment of a stream, read whole (at most MAX_ATTACHMENT_BYTES) and checked against the
   * size and SHA-256 its manifest names: its bytes, or what is wrong (restore writes nothing of a
   * damaged one; deep verify reports it).
   */
  async readAttachment(
    m: ManifestSummary,
    a: ManifestAttachment,
  ): Promise<{ body: Buffer } | { kind: 'attachment-missing' | 'attachment-corrupt'; object: string; expected?: string; found?: string; message: string }> {
    const object = this.where(this.streamPrefix(m) + a.key);
    let body: Buffer;
    try {
      body = await this.backend.getBuffer(this.streamPrefix(m) + a.key);
    } catch (err) {
      if (isNotFound(err)) return { kind: 'attachment-missing', object, message: `attachment ${a.name} is missing` };
      throw err;
    }
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (body.length !== a.size || sha256 !== a.sha256) {
      const found = body.length !== a.size ? `${body.length} bytes` : sha256;
      return {
        kind: 'attachment-corrupt',
        object,
        expected: body.length !== a.size ? `${a.size} bytes` : a.sha256,
        found,
        message: `attachment ${a.name} is damaged (${body.length !== a.size ? `${body.length} bytes, the manifest says ${a.size}` : `SHA-256 ${sha256}, the manifest says ${a.sha256}`})`,
      };
    }
    return { body };
  }

  /** Every object of a stream but its manifest: SHA256SUMS, chunks, and whatever else was listed there. */
  objectsBesideManifest(m: Manifest, dir: StreamDir): string[] {
    // Without a Set of every key (500,000 chunks: issue 17): the manifest's own names (its chunks
    // are 000000.zst … in order, manifest.ts), then what else was listed, in listing order.
    const attached = [...new Set((m.attachments ?? []).map((a) => a.key))];
    const named = new Set([MANIFEST_NAME, SUMS_NAME, ...attached]);
    const keys = [dir.prefix + SUMS_NAME, ...m.chunks.map((c) => dir.prefix + c.key), ...attached.map((n) => dir.prefix + n)];
    for (const name of dir.objects.namesBeyond(m.chunks.length)) if (!named.has(name)) keys.push(dir.prefix + name);
    return keys;
  }

  /**
   * Deletes a committed stream, the manifest first: from then on the stream does not exist for
   * list, restore or send, and a crash leaves only leftovers that verify reports and prune removes.
   */
  async deleteStream(m: Manifest, dir: StreamDir): Promise<void> {
    await this.backend.delete([dir.prefix + MANIFEST_NAME]);
    await this.backend.delete(this.objectsBesideManifest(m, dir));
  }

  /** Deletes the journal of committed streams (left by append-only writers: archive/leftovers.ts). */
  deleteJournals(dirs: readonly StreamDir[]): Promise<void> {
    return this.backend.delete(dirs.map((dir) => dir.prefix + JOURNAL_NAME));
  }

  /**
   * Every object of a stream directory as listed now, the journal left out and the manifest last:
   * Object Lock extends them in this order (jobs/object-lock.ts), so a manifest retained until a
   * date says the whole stream is.
   */
  async streamObjectKeys(stream: { dataset: string; streamId: string }): Promise<string[]> {
    const prefix = this.streamPrefix(stream);
    const keys: string[] = [];
    await this.backend.list(prefix, (o) => keys.push(o.key));
    const manifest = prefix + MANIFEST_NAME;
    return [...keys.filter((k) => k !== manifest && k !== prefix + JOURNAL_NAME).sort(), ...(keys.includes(manifest) ? [manifest] : [])];
  }

  /** The objects a listing showed of a stream directory, its journal left out (what Object Lock retains). */
  listedStreamObjects(dir: StreamDir): string[] {
    return dir.objects
      .names()
      .filter((n) => n !== JOURNAL_NAME)
      .map((n) => dir.prefix + n);
  }

  /** The key of a stream's manifest. */
  manifestKey(stream: { dataset: string; streamId: string }): string {
    return this.streamPrefix(stream) + MANIFEST_NAME;
  }

  /** Deletes what the listing showed of a stream directory without a manifest. */
  deleteListed(dir: StreamDir): Promise<void> {
    return this.backend.delete(dir.objects.names().map((n) => dir.prefix + n));
  }

  /** Aborts (or counts, in a dry run) multipart uploads older than `olderThan`; null when the backend has none. */
  async cleanupIncompleteUploads(olderThan: Date, dataset: string | undefined, dryRun: boolean): Promise<number | null> {
    return (await this.backend.cleanupIncompleteUploads?.(olderThan, { prefix: this.datasetPrefix(dataset), dryRun })) ?? null;
  }

  /** The last recorded verify or drill of a dataset (format/status-record.ts): for display only; undefined when none is usable. */
  statusRecord(dataset: string, kind: StatusKind): Promise<StatusRecord | undefined> {
    return readStatusRecord(this.backend, dataset, kind);
  }

  /** Records the result of a verify or drill of a dataset, replacing the previous one (display only: `status`). */
  recordStatus(record: Omit<StatusRecord, 'host'>): Promise<void> {
    return writeStatusRecord(this.backend, record);
  }

  /** Takes the dataset's lease in this target (lease.ts): the local lock too unless `localLock: false`. */
  lease(options: Omit<LockOptions, 'backend'>): Promise<DatasetLock> {
    return acquireDatasetLock({ ...options, backend: this.backend });
  }
}
