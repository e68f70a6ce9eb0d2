import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Backend, ObjectInfo } from '../../storage/backend.js';
import { isNotFound } from '../../storage/backend.js';
import { OperationalError } from '../../util/errors.js';
import { TOOL_VERSION } from '../../util/version.js';
import { datasetFromPath, datasetPath, indexSegmentNumber, JOURNAL_NAME, MANIFEST_NAME, MARKER_KEY, parseStreamKey, SUMS_NAME, shownKey } from './keys.js';
import { type Manifest, ManifestError, type ManifestProblemKind, ManifestReader, type ManifestSummary, sha256sums } from './manifest.js';
import { entryOf, type IndexedStream, indexSegments, readIndex, sameObject, type StreamIndex } from './stream-index.js';

export const ARCHIVE_FORMAT = 'zfs-offsite-archive';
export const ARCHIVE_MAJOR = 1;

/**
 * There is no archive at the target: no marker at its root (a typo, an unmounted disk, an empty
 * bucket prefix). Read-only commands stop here rather than report an empty archive as clean.
 */
export class NoArchiveError extends OperationalError {
  override name = 'NoArchiveError';
  declare readonly kind: 'no-archive';
  constructor(readonly location: string) {
    super(`no archive at ${location} (no ${MARKER_KEY}) — is it mounted?`, { kind: 'no-archive', context: { object: `${location}/${MARKER_KEY}` } });
  }
}

/** A target id: eight lower-case hex digits (plan/bookmarks.ts names bookmarks with it). */
export const TARGET_ID = /^[0-9a-f]{8}$/;

/**
 * Refuses a marker that is not ours or of an incompatible (newer) version; else the target's
 * short id: the marker's `id` (written since several targets per dataset exist), or, for a marker
 * written before, the first 8 hex digits of the marker's SHA-256 — stable while the file is, and
 * the marker is never rewritten. Base protection names its bookmarks with it (plan/bookmarks.ts).
 */
function checkMarker(backend: Backend, body: Buffer): string {
  let marker: { format?: string; formatVersion?: string; id?: unknown } | undefined;
  try {
    marker = JSON.parse(body.toString()) as typeof marker;
  } catch {
    // Reported below as not ours: a marker that is not JSON was not written by this program.
  }
  const major = Number(String(marker?.formatVersion ?? '').split('.')[0]);
  if (marker?.format !== ARCHIVE_FORMAT || major !== ARCHIVE_MAJOR) {
    throw new OperationalError(`${backend.location}: ${MARKER_KEY} says format ${marker?.format} ${marker?.formatVersion}; this version writes ${ARCHIVE_FORMAT} ${ARCHIVE_MAJOR}.x`);
  }
  return typeof marker.id === 'string' && TARGET_ID.test(marker.id) ? marker.id : createHash('sha256').update(body).digest('hex').slice(0, 8);
}

/**
 * Reads the archive marker without creating anything (list, verify, restore, prune): a missing
 * marker is a NoArchiveError; a marker that is a link or special file is refused by the storage
 * layer (storage/confined.ts) as any other object would be. Returns the target's id (checkMarker).
 */
export async function readArchiveMarker(backend: Backend): Promise<string> {
  let body: Buffer;
  try {
    body = await backend.getBuffer(MARKER_KEY);
  } catch (err) {
    if (isNotFound(err)) throw new NoArchiveError(backend.location);
    throw err;
  }
  return checkMarker(backend, body);
}

/**
 * Reads or creates the archive marker (the writers: put, send, run), and returns the target's id.
 * An archive written by a newer, incompatible version is refused rather than mixed with streams
 * this version cannot describe.
 */
export async function ensureArchiveMarker(backend: Backend): Promise<string> {
  let body: Buffer;
  try {
    body = await backend.getBuffer(MARKER_KEY);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    const id = randomBytes(4).toString('hex');
    const marker = { format: ARCHIVE_FORMAT, formatVersion: `${ARCHIVE_MAJOR}.0`, id, created: new Date().toISOString(), createdBy: `zfs-offsite ${TOOL_VERSION}`, host: hostname() };
    await backend.put(MARKER_KEY, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`));
    return id;
  }
  return checkMarker(backend, body);
}

/**
 * Drops what belongs to another archive inside this one: a directory below the root that holds
 * its own marker is that archive's (a target given one level too high, `list /mnt`), never
 * merged into this archive's datasets and chains. `objectKeys` (default: the entries' keys) are where
 * markers are looked for. Returns the kept entries and the nested roots (`dir/`).
 */
export function withoutNestedArchives<T extends { key: string }>(entries: readonly T[], objectKeys: readonly string[] = entries.map((e) => e.key)): { kept: T[]; nested: string[] } {
  const nested = objectKeys.filter((k) => k.endsWith(`/${MARKER_KEY}`)).map((k) => k.slice(0, -MARKER_KEY.length));
  if (nested.length === 0) return { kept: [...entries], nested };
  return { kept: entries.filter((e) => !nested.some((root) => e.key.startsWith(root))), nested: nested.sort() };
}

export interface InProgressStream {
  dataset: string;
  streamId: string;
  modified?: Date;
}

/** A stream whose manifest exists but cannot be used: a problem of that stream alone. */
export interface DamagedStream {
  kind: ManifestProblemKind;
  dataset: string;
  streamId: string;
  /** `<target>/<key>` of the manifest. */
  object: string;
  /** The offending field (`chunks[3].rawSize`), when one is to blame. */
  field?: string;
  /** What is wrong, without the object. */
  message: string;
}

export type ManifestRead = { manifest: Manifest } | { damaged: DamagedStream } | { absent: true };

/**
 * Reads and validates the manifest of one stream directory. A damaged manifest is an answer,
 * not an error (the caller decides what it means for that stream); a manifest deleted since the
 * listing is absent. Storage failures still throw: they say nothing about the stream.
 */
export async function readManifest(backend: Backend, stream: { dataset: string; streamId: string; prefix: string }): Promise<ManifestRead> {
  const key = stream.prefix + MANIFEST_NAME;
  // Read piece by piece: a manifest of 500,000 chunks is ≈ 150 MB of JSON (issue 17).
  const reader = new ManifestReader(`${backend.location}/${key}`, stream);
  try {
    await backend.load(key, (piece) => reader.push(piece));
  } catch (err) {
    if (isNotFound(err)) return { absent: true };
    throw err;
  }
  try {
    return { manifest: reader.finish() };
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    return { damaged: { kind: err.kind, dataset: stream.dataset, streamId: stream.streamId, object: err.object, ...(err.field === undefined ? {} : { field: err.field }), message: err.detail } };
  }
}

/** readManifest over many stream directories, a few at a time; the answers in the input order. */
export async function readManifests(backend: Backend, dirs: readonly { dataset: string; streamId: string; prefix: string }[], concurrency = 8): Promise<ManifestRead[]> {
  const reads: ManifestRead[] = [];
  for (let i = 0; i < dirs.length; i += concurrency) reads.push(...(await Promise.all(dirs.slice(i, i + concurrency).map((d) => readManifest(backend, d)))));
  return reads;
}

/**
 * A directory shaped like a stream directory whose key this program cannot have written (a bad
 * or non-canonical `%` escape: keys.ts parseStreamKey): never read, reported by verify as
 * `key-invalid`, passed over with a warning by list, restore and prune.
 */
export interface InvalidKey {
  /** `<target>/<key prefix>/` of the directory. */
  object: string;
  /** Why the key is invalid. */
  message: string;
}

/** The warning list, restore and prune give for a directory they pass over. */
export function invalidKeyWarning(i: InvalidKey): string {
  return `${i.object}: not a valid archive key (${i.message}): ignored (verify reports it)`;
}

export interface Catalog {
  /** Committed streams whose manifests are valid, sorted by dataset then stream id (= time order). */
  streams: IndexedStream[];
  /** Streams whose manifest exists but is damaged: left out of `streams`, reported by list and verify. */
  damaged: DamagedStream[];
  /** Streams with a journal and no manifest: being written, or interrupted. */
  inProgress: InProgressStream[];
  /** Stream directories with an invalid key, in listing order; none of them is read. */
  invalid: InvalidKey[];
  /**
   * Per dataset with committed streams: its stream index as this listing proved it (entries
   * whose manifest object is unchanged, the others made from the manifests just read), and
   * whether that differs from the stored one (absent, unusable, or with entries dropped or
   * refreshed). Writers store it (Repository.refreshIndex); readers only use it.
   */
  indexes: Map<string, { index: StreamIndex; stale: boolean }>;
}

/** Whether a directory (`<dataset path>/<stream id>/`) holds one of `dataset`'s streams, or any with no dataset given. */
export function inDataset(prefix: string, dataset: string | undefined): boolean {
  if (!dataset) return true;
  const path = `${datasetPath(dataset)}/`;
  return prefix.startsWith(path) && !prefix.slice(path.length, -1).includes('/');
}

/**
 * Lists the archive, or one dataset (its children too with `children`), and gives every
 * committed stream's manifest summary. A damaged manifest never fails the whole catalog: that
 * stream goes to `damaged`; a directory whose key is invalid goes to `invalid`, unread. Another
 * archive nested below the root is not part of this one (withoutNestedArchives).
 *
 * Each dataset's stream index (stream-index.ts), when the listing shows one, stands in for the
 * manifests it describes exactly as listed (same size and ETag, or time); every other listed
 * manifest is read and parsed; entries of streams the listing no longer shows are dropped. With
 * `index: false` every manifest is read. Nothing is written here.
 *
 * With `sums` (a writer rebuilding the index: prune), each stream's SHA256SUMS as listed is
 * stamped into its entry when its content is exactly what the manifest's chunks give (read once,
 * with the manifest, for an entry that has no such stamp yet), so that quick verify need not read
 * it again while it is unchanged.
 */
export async function loadCatalog(backend: Backend, dataset?: string, options: { children?: boolean; concurrency?: number; index?: boolean; sums?: boolean } = {}): Promise<Catalog> {
  const concurrency = options.concurrency ?? 8;
  const dirs: { dataset: string; streamId: string; prefix: string; info: ObjectInfo; sums?: ObjectInfo }[] = [];
  const journals: InProgressStream[] = [];
  const invalid = new Map<string, InvalidKey>();
  const listed: ObjectInfo[] = [];
  const segments: ObjectInfo[] = [];
  const sumsListed = new Map<string, ObjectInfo>();
  // Only what the catalog reads is kept: a stream of 500,000 chunks lists as many chunk objects (issue 17).
  const kept = new Set([MANIFEST_NAME, JOURNAL_NAME, MARKER_KEY]);
  await backend.list(dataset ? `${datasetPath(dataset)}/` : '', (info) => {
    const name = info.key.slice(info.key.lastIndexOf('/') + 1);
    if (kept.has(name)) listed.push(info);
    else if (indexSegmentNumber(name) !== undefined) segments.push(info);
    else if (options.sums && name === SUMS_NAME) sumsListed.set(info.key.slice(0, -name.length), info);
  });
  const wanted = (name: string) => !dataset || name === dataset || (options.children === true && name.startsWith(`${dataset}/`));
  const keptObjects = withoutNestedArchives([...listed, ...segments]).kept;
  const indexed = new Map<string, ObjectInfo[]>();
  for (const info of keptObjects) {
    const name = info.key.slice(info.key.lastIndexOf('/') + 1);
    if (indexSegmentNumber(name) !== undefined) {
      const owner = datasetFromPath(info.key.slice(0, -name.length - 1));
      if ('dataset' in owner && wanted(owner.dataset)) indexed.set(owner.dataset, [...(indexed.get(owner.dataset) ?? []), info]);
      continue;
    }
    if (name !== MANIFEST_NAME && name !== JOURNAL_NAME) continue;
    const prefix = info.key.slice(0, -name.length);
    const parsed = parseStreamKey(info.key);
    if (!parsed) continue;
    if ('invalid' in parsed) {
      if (options.children || inDataset(prefix, dataset)) invalid.set(prefix, { object: `${backend.location}/${shownKey(prefix)}`, message: parsed.invalid });
      continue;
    }
    if (!wanted(parsed.dataset)) continue;
    const sums = sumsListed.get(prefix);
    if (name === MANIFEST_NAME) dirs.push({ ...parsed, prefix, info, ...(sums ? { sums } : {}) });
    else journals.push({ ...parsed, modified: info.modified });
  }
  const stored =
    options.index === false
      ? new Map<string, StreamIndex | undefined>()
      : await readIndexes(
          backend,
          [...new Set(dirs.map((d) => d.dataset))].filter((d) => indexed.has(d)),
          concurrency,
          indexed,
        );
  const indexes = new Map<string, { index: StreamIndex; stale: boolean }>();
  const streams: IndexedStream[] = [];
  const toRead: typeof dirs = [];
  for (const d of dirs) {
    const fresh = indexes.get(d.dataset) ?? { index: new Map(), stale: stored.get(d.dataset) === undefined };
    indexes.set(d.dataset, fresh);
    const entry = stored.get(d.dataset)?.get(d.streamId);
    // A rebuild stamps SHA256SUMS: an entry without the stamp of the listed one is made again.
    const sumsStamped = !options.sums || !d.sums || sameObject(entry?.sums, d.sums);
    if (entry && sameObject(entry.object, d.info) && sumsStamped) {
      fresh.index.set(d.streamId, entry);
      streams.push(entry.stream);
    } else toRead.push(d);
  }
  const damaged: DamagedStream[] = [];
  const committed = new Set<string>();
  for (const [k, read] of (await readManifests(backend, toRead, concurrency)).entries()) {
    const d = toRead[k]!;
    const fresh = indexes.get(d.dataset)!;
    fresh.stale = true;
    if ('absent' in read) continue;
    committed.add(`${d.dataset}\0${d.streamId}`);
    if ('manifest' in read) {
      const sums = d.sums && (await sumsMatch(backend, d.sums, read.manifest)) ? d.sums : undefined;
      const entry = entryOf(read.manifest, d.info, sums);
      fresh.index.set(d.streamId, entry);
      streams.push(entry.stream);
    } else damaged.push(read.damaged);
  }
  for (const s of streams) committed.add(`${s.dataset}\0${s.streamId}`);
  for (const [name, fresh] of indexes) if (fresh.index.size !== stored.get(name)?.size) fresh.stale = true;
  streams.sort((a, b) => a.dataset.localeCompare(b.dataset) || a.streamId.localeCompare(b.streamId));
  damaged.sort((a, b) => a.dataset.localeCompare(b.dataset) || a.streamId.localeCompare(b.streamId));
  return { streams, damaged, inProgress: journals.filter((j) => !committed.has(`${j.dataset}\0${j.streamId}`)), invalid: [...invalid.values()], indexes };
}

/**
 * The stored indexes of some datasets, a few at a time; a missing or unusable one is undefined.
 * `listed`: the index segments a listing showed, per dataset (else each dataset's are listed).
 */
export async function readIndexes(backend: Backend, datasets: readonly string[], concurrency = 8, listed?: Map<string, ObjectInfo[]>): Promise<Map<string, StreamIndex | undefined>> {
  const out = new Map<string, StreamIndex | undefined>();
  for (let i = 0; i < datasets.length; i += concurrency) {
    const batch = datasets.slice(i, i + concurrency);
    const read = await Promise.all(batch.map((d) => readIndex(backend, d, listed && indexSegments(d, listed.get(d) ?? []))));
    for (const [k, d] of batch.entries()) out.set(d, read[k]);
  }
  return out;
}

/** Whether a listed SHA256SUMS holds exactly what the manifest's chunks give (read once, by a rebuild). */
async function sumsMatch(backend: Backend, sums: ObjectInfo, manifest: Manifest): Promise<boolean> {
  const expected = sha256sums(manifest.chunks);
  if (expected.length !== sums.size) return false;
  try {
    return (await backend.getBuffer(sums.key)).equals(expected);
  } catch (err) {
    if (err instanceof OperationalError) return false;
    throw err;
  }
}

/** Every snapshot GUID an archived stream leads to, with whether that stream is raw. */
export function archivedSnapshots(streams: readonly ManifestSummary[]): Map<string, { raw: boolean; name: string; streamId: string }> {
  const out = new Map<string, { raw: boolean; name: string; streamId: string }>();
  for (const m of streams) {
    for (const s of m.substreams) {
      out.set(s.toguid, { raw: s.raw, name: s.toname.slice(s.toname.indexOf('@') + 1), streamId: m.streamId });
    }
  }
  return out;
}
