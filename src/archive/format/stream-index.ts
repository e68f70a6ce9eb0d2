import { createHash } from 'node:crypto';
import type { Backend, ObjectInfo } from '../../storage/backend.js';
import { OperationalError } from '../../util/errors.js';
import { chunkName, datasetPath, INDEX_NAME } from './keys.js';
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
export function chunkDigest(chunks: readonly { key: string; storedSize: number }[]): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(`${c.key} ${c.storedSize}\n`);
  return hash.digest('hex');
}

/**
 * The digest `chunkDigest` gives for the chunk objects a stream directory's listing shows, when
 * it shows exactly `count` of them (`000000.zst` …) with their sizes; undefined when one is missing.
 */
export function listedChunkDigest(prefix: string, objects: readonly ObjectInfo[], count: number): string | undefined {
  const byKey = new Map(objects.map((o) => [o.key, o.size]));
  const chunks: { key: string; storedSize: number }[] = [];
  for (let i = 0; i < count; i++) {
    const size = byKey.get(prefix + chunkName(i));
    if (size === undefined) return undefined;
    chunks.push({ key: chunkName(i), storedSize: size });
  }
  return chunkDigest(chunks);
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

/** The index of `dataset` from its stored body, or undefined when it is not one (then it is ignored and rebuilt). */
export function parseIndex(body: Buffer, dataset: string): StreamIndex | undefined {
  let data: unknown;
  try {
    data = JSON.parse(body.toString());
  } catch {
    return undefined;
  }
  if (!isObject(data) || data.format !== INDEX_FORMAT || typeof data.formatVersion !== 'string' || Number(data.formatVersion.split('.')[0]) !== INDEX_MAJOR) return undefined;
  if (data.dataset !== dataset || !isObject(data.streams)) return undefined;
  const index: StreamIndex = new Map();
  for (const [streamId, e] of Object.entries(data.streams)) {
    if (!isObject(e) || !isStamp(e.object) || (e.sums !== undefined && !isStamp(e.sums)) || typeof e.chunkDigest !== 'string') return undefined;
    if (!isStream(e.stream, dataset, streamId)) return undefined;
    index.set(streamId, e as unknown as IndexEntry);
  }
  return index;
}

/**
 * The stored index of a dataset; undefined when there is none or it cannot be used (unreadable,
 * not an index, another dataset's): a cache that fails is only a slower answer. A listing that
 * did not show the object is not read (a read-only command asks only for listed ones).
 */
export async function readIndex(backend: Backend, dataset: string): Promise<StreamIndex | undefined> {
  try {
    return parseIndex(await backend.getBuffer(indexKey(dataset)), dataset);
  } catch (err) {
    if (err instanceof OperationalError) return undefined;
    throw err;
  }
}

/** Writes a dataset's index (an atomic put: readers see the old one or the new one). */
export async function writeIndex(backend: Backend, dataset: string, index: StreamIndex): Promise<void> {
  const streams = Object.fromEntries([...index.entries()].sort(([a], [b]) => a.localeCompare(b)));
  const body = { format: INDEX_FORMAT, formatVersion: `${INDEX_MAJOR}.0`, dataset, written: new Date().toISOString(), streams };
  await backend.put(indexKey(dataset), Buffer.from(JSON.stringify(body)));
}
