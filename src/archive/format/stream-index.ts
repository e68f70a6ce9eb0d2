import { createHash } from 'node:crypto';
import type { Backend, ObjectInfo } from '../../storage/backend.js';
import { OperationalError } from '../../util/errors.js';
import { datasetPath, INDEX_NAME, indexSegmentName, indexSegmentNumber } from './keys.js';
import { MANIFEST_FORMAT, type Manifest, type ManifestSummary } from './manifest.js';

/**
 * The stream index of one dataset, `<dataset path>/~index.json` (docs/archive-format.md,
 * "Stream index"): a cache of its committed streams' manifests without their chunk lists, so
 * that listing, planning and a quick verify of a dataset with thousands of streams cost one
 * listing and one read instead of one read per stream (restic's index is the model).
 *
 * The manifests stay the truth. Each entry records how the listing showed the manifest object it
 * was made from (size and ETag, or modification time where there is no ETag: local, SFTP); an
 * entry is used only while the listing still shows that very object (format/catalog.ts
 * loadCatalog), every other stream's manifest is read and parsed as without an index. An index
 * that cannot be read or parsed is ignored as a whole. Only writers write it (after a commit,
 * after a prune deleted streams), best effort: the manifest is the commit point.
 */

export const INDEX_FORMAT = 'zfs-offsite-index';
export const INDEX_MAJOR = 1;

/** How a listing showed an object: what tells whether it changed since. */
export interface ObjectStamp {
  size: number;
  etag?: string;
  /** ISO time; compared only where the backend keeps no ETag. */
  modified?: string;
}

/** A committed stream as planners and `list` see it: its manifest without the chunks, and their count. */
export interface IndexedStream extends ManifestSummary {
  chunkCount: number;
}

export interface IndexEntry {
  /** The manifest object this entry was made from, as listed. */
  object: ObjectStamp;
  stream: IndexedStream;
  /** chunkDigest of the manifest's chunks: a listing showing the same chunk objects has the same one. */
  chunkDigest: string;
  /** SHA256SUMS as listed right after the writer wrote it from the same chunks as the manifest. */
  sums?: ObjectStamp;
}

/** Stream id → entry. */
export type StreamIndex = Map<string, IndexEntry>;

export function indexKey(dataset: string): string {
  return `${datasetPath(dataset)}/${INDEX_NAME}`;
}

export function stampOf(info: ObjectInfo): ObjectStamp {
  return { size: info.size, ...(info.etag === undefined ? {} : { etag: info.etag }), ...(info.modified === undefined ? {} : { modified: info.modified.toISOString() }) };
}

/** Whether the listing shows the object a stamp was taken of: same size, and same ETag (or time, without one). */
export function sameObject(stamp: ObjectStamp | undefined, info: ObjectInfo | undefined): boolean {
  if (!stamp || !info || stamp.size !== info.size) return false;
  if (stamp.etag !== undefined || info.etag !== undefined) return stamp.etag === info.etag;
  return stamp.modified !== undefined && info.modified !== undefined && Date.parse(stamp.modified) === info.modified.getTime();
}

/** SHA-256 over `<key> <stored size>\n` of chunks in order: what quick verify compares with the listing. */
export function chunkDigest(chunks: Iterable<{ key: string; storedSize: number }>): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(`${c.key} ${c.storedSize}\n`);
  return hash.digest('hex');
}

export function summarize(m: Manifest): IndexedStream {
  const { chunks, ...rest } = m;
  return { ...rest, chunkCount: chunks.length };
}

export function entryOf(m: Manifest, manifestObject: ObjectInfo, sums?: ObjectInfo): IndexEntry {
  return { object: stampOf(manifestObject), stream: summarize(m), chunkDigest: chunkDigest(m.chunks), ...(sums ? { sums: stampOf(sums) } : {}) };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isStamp = (v: unknown): v is ObjectStamp =>
  isObject(v) && isCount(v.size) && (v.etag === undefined || typeof v.etag === 'string') && (v.modified === undefined || (typeof v.modified === 'string' && !Number.isNaN(Date.parse(v.modified))));
const isSnapshot = (v: unknown) => isObject(v) && typeof v.name === 'string' && typeof v.guid === 'string';

const isAttachment = (a: unknown) => isObject(a) && typeof a.name === 'string' && typeof a.key === 'string' && isCount(a.size) && typeof a.sha256 === 'string';

/** The shape planners rely on; the values came from a manifest parseManifest accepted. */
function isStream(v: unknown, dataset: string, streamId: string): v is IndexedStream {
  if (!isObject(v) || v.format !== MANIFEST_FORMAT || v.dataset !== dataset || v.streamId !== streamId) return false;
  if ((v.kind !== 'full' && v.kind !== 'incr') || !isSnapshot(v.to) || (v.from !== null && !isSnapshot(v.from))) return false;
  if (typeof v.raw !== 'boolean' || typeof v.compound !== 'boolean' || !isCount(v.chunkCount) || v.chunkCount < 1) return false;
  if (!isCount(v.rawBytes) || !isCount(v.storedBytes) || !isCount(v.chunkSize) || typeof v.sha256 !== 'string' || typeof v.finishedAt !== 'string' || typeof v.startedAt !== 'string') return false;
  if (!Array.isArray(v.substreams) || v.substreams.length === 0) return false;
  if (v.attachments !== undefined && !(Array.isArray(v.attachments) && v.attachments.every(isAttachment))) return false;
  return v.substreams.every(
    (s: unknown) =>
      isObject(s) &&
      typeof s.toname === 'string' &&
      typeof s.toguid === 'string' &&
      typeof s.fromguid === 'string' &&
      typeof s.creation === 'string' &&
      typeof s.raw === 'boolean' &&
      typeof s.clone === 'boolean' &&
      isCount(s.offset) &&
      isCount(s.bytes),
  );
}

/** A parsed segment: its entries, and (the head, `~index.json`) how many sealed segments it names. */
export interface IndexSegment {
  entries: StreamIndex;
  sealed: number;
}

/**
 * One segment of `dataset`'s index from its stored body, or undefined when it is not one (then
 * it is ignored: its streams' manifests are read, and a writer rewrites it). `segment` is the
 * number its key names: a sealed segment's body says which it is, so one stored under another
 * segment's or dataset's name is not one. The head (segment 0, `~index.json`, the whole index
 * before segments existed) says how many sealed segments there are (none when it says nothing).
 */
export function parseSegment(body: Buffer, dataset: string, segment = 0): IndexSegment | undefined {
  let data: unknown;
  try {
    data = JSON.parse(body.toString());
  } catch {
    return undefined;
  }
  if (!isObject(data) || data.format !== INDEX_FORMAT || typeof data.formatVersion !== 'string' || Number(data.formatVersion.split('.')[0]) !== INDEX_MAJOR) return undefined;
  if (data.dataset !== dataset || !isObject(data.streams)) return undefined;
  if ((data.segment ?? 0) !== segment) return undefined;
  const sealed = data.sealed ?? 0;
  if (!isCount(sealed) || (segment !== 0 && sealed !== 0)) return undefined;
  const entries: StreamIndex = new Map();
  for (const [streamId, e] of Object.entries(data.streams)) {
    if (!isObject(e) || !isStamp(e.object) || (e.sums !== undefined && !isStamp(e.sums)) || typeof e.chunkDigest !== 'string') return undefined;
    if (!isStream(e.stream, dataset, streamId)) return undefined;
    entries.set(streamId, e as unknown as IndexEntry);
  }
  return { entries, sealed };
}

/** The entries of one segment of `dataset`'s index (parseSegment), or undefined when it is not one. */
export function parseIndex(body: Buffer, dataset: string, segment = 0): StreamIndex | undefined {
  return parseSegment(body, dataset, segment)?.entries;
}

/**
 * Entries the head holds before a commit seals them: a commit reads and rewrites at most this
 * many (≈ 1.2 KiB each), whatever the history (issue 17).
 */
export const SEGMENT_ENTRIES = 500;

function segmentKey(dataset: string, n: number): string {
  return `${datasetPath(dataset)}/${indexSegmentName(n)}`;
}

/** The index segments among listed objects of `dataset` (its own, not a child's): number → object. */
export function indexSegments(dataset: string, listed: Iterable<ObjectInfo>): Map<number, ObjectInfo> {
  const dir = `${datasetPath(dataset)}/`;
  const out = new Map<number, ObjectInfo>();
  for (const info of listed) {
    if (!info.key.startsWith(dir)) continue;
    const n = indexSegmentNumber(info.key.slice(dir.length));
    if (n !== undefined) out.set(n, info);
  }
  return out;
}

/** One segment read and parsed; undefined when absent, unreadable or not that segment of this dataset. */
async function readSegment(backend: Backend, dataset: string, n: number): Promise<IndexSegment | undefined> {
  try {
    return parseSegment(await backend.getBuffer(segmentKey(dataset, n)), dataset, n);
  } catch (err) {
    if (err instanceof OperationalError) return undefined;
    throw err;
  }
}

/**
 * The stored index of a dataset, undefined when no segment of it is usable: the head and the
 * sealed segments it names, read and merged; with a head that cannot be used, the sealed
 * segments `listed` shows (a listing of the dataset), if any. A segment that cannot be read or
 * parsed, of another dataset or numbered otherwise, is left out, and so is every entry of a
 * stream that more than one segment holds (neither is trusted): their streams' manifests are
 * read instead, and a cache that fails is only a slower answer.
 */
export async function readIndex(backend: Backend, dataset: string, listed?: Map<number, ObjectInfo>): Promise<StreamIndex | undefined> {
  if (listed?.size === 0) return undefined;
  const head = !listed || listed.has(0) ? await readSegment(backend, dataset, 0) : undefined;
  const sealed = head ? Array.from({ length: head.sealed }, (_, i) => i + 1) : [...(listed?.keys() ?? [])].filter((n) => n > 0);
  const read: (IndexSegment | undefined)[] = [head];
  for (let i = 0; i < sealed.length; i += 8) read.push(...(await Promise.all(sealed.slice(i, i + 8).map((n) => readSegment(backend, dataset, n)))));
  const usable = read.filter((s) => s !== undefined);
  if (usable.length === 0) return undefined;
  const index: StreamIndex = new Map();
  const twice = new Set<string>();
  for (const segment of usable) {
    for (const [id, entry] of segment.entries) {
      if (index.has(id)) twice.add(id);
      index.set(id, entry);
    }
  }
  for (const id of twice) index.delete(id);
  return index;
}

async function writeSegment(backend: Backend, dataset: string, n: number, entries: Iterable<[string, IndexEntry]>, sealed = 0): Promise<void> {
  const streams = Object.fromEntries([...entries].sort(([a], [b]) => a.localeCompare(b)));
  const body = { format: INDEX_FORMAT, formatVersion: `${INDEX_MAJOR}.1`, dataset, segment: n, ...(n === 0 ? { sealed } : {}), written: new Date().toISOString(), streams };
  await backend.put(segmentKey(dataset, n), Buffer.from(JSON.stringify(body)));
}

/**
 * Writes a dataset's whole index (a rebuild: prune, or a writer that found none usable): its
 * entries in stream id (= time) order, `per` to a sealed segment, the rest in the head, written
 * last (each an atomic put); then removes the segments a listing shows beyond them. An empty
 * index removes every segment. A rewrite cut short leaves old and new segments side by side: a
 * stream two of them hold is trusted in neither.
 */
export async function writeIndex(backend: Backend, dataset: string, index: StreamIndex, per = SEGMENT_ENTRIES): Promise<void> {
  const entries = [...index.entries()].sort(([a], [b]) => a.localeCompare(b));
  const sealed = entries.length === 0 ? 0 : Math.ceil(entries.length / per) - 1;
  for (let n = 1; n <= sealed; n++) await writeSegment(backend, dataset, n, entries.slice((n - 1) * per, n * per));
  const found: ObjectInfo[] = [];
  await backend.list(`${datasetPath(dataset)}/~index`, (info) => found.push(info));
  if (entries.length > 0) await writeSegment(backend, dataset, 0, entries.slice(sealed * per), sealed);
  const extra = [...indexSegments(dataset, found).keys()].filter((k) => k > sealed || (k === 0 && entries.length === 0));
  if (extra.length > 0) await backend.delete(extra.map((k) => segmentKey(dataset, k)));
}

/** The head of a dataset's index (`~index.json`), or undefined when there is no usable one. */
export function readIndexHead(backend: Backend, dataset: string): Promise<IndexSegment | undefined> {
  return readSegment(backend, dataset, 0);
}

/**
 * A commit's update of the index, whatever the history (issue 17): the head (readIndexHead)
 * rewritten with `entry` for the stream (or without the stream when `entry` is undefined); a
 * head already holding `per` entries is sealed first (written whole as the next sealed segment,
 * then a new head holding only `entry` names it). Without a usable head the caller rebuilds the
 * index instead (writeIndex).
 */
export async function recordIndexEntry(backend: Backend, dataset: string, head: IndexSegment, streamId: string, entry: IndexEntry | undefined, per = SEGMENT_ENTRIES): Promise<void> {
  if (!entry) {
    if (head.entries.delete(streamId)) await writeSegment(backend, dataset, 0, head.entries, head.sealed);
  } else if (head.entries.has(streamId) || head.entries.size < per) {
    head.entries.set(streamId, entry);
    await writeSegment(backend, dataset, 0, head.entries, head.sealed);
  } else {
    await writeSegment(backend, dataset, head.sealed + 1, head.entries);
    await writeSegment(backend, dataset, 0, [[streamId, entry]], head.sealed + 1);
  }
}

/**
 * For a writer before its upload, without listing the dataset: the newest indexed stream
 * `wanted` accepts, reading the head and then sealed segments newest first, stopping at the first
 * that holds one (the base of a nightly incremental is in the head). Not proven by a listing: the
 * caller trusts it only once its manifest says the same. Undefined without a usable head.
 */
export async function findIndexed(backend: Backend, dataset: string, wanted: (s: IndexedStream) => boolean): Promise<IndexedStream | undefined> {
  const head = await readSegment(backend, dataset, 0);
  if (!head) return undefined;
  for (let n = 0; n <= head.sealed; n++) {
    const segment = n === 0 ? head : await readSegment(backend, dataset, head.sealed + 1 - n);
    const found = [...(segment?.entries.values() ?? [])].reverse().find((e) => wanted(e.stream));
    if (found) return found.stream;
  }
  return undefined;
}
