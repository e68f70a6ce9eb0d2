import { constants } from 'node:buffer';
import { ChunkTable } from './chunk-table.js';
import { describe, Fields, ManifestError } from './manifest-fields.js';
import { attachmentKey, chunkName, isArchivableDataset, isAttachmentName, parseStreamId, type StreamKind } from './keys.js';
import { type ChunkSink, ManifestScanner, SyntaxFault } from './manifest-scan.js';

/**
 * The manifest of one archived stream: the commit point (docs/archive-format.md, "Manifest" and "Commit protocol"). Written LAST, only
 * when every chunk is stored and checked. GUIDs are decimal strings, as `zfs get -Hp guid`
 * prints them (JSON numbers cannot hold 64 bits).
 */
export { ManifestError, type ManifestProblemKind } from './manifest-fields.js';

export const MANIFEST_FORMAT = 'zfs-offsite-manifest';
export const MANIFEST_MAJOR = 1;
export const MANIFEST_VERSION = '1.0';
/**
 * The minor version of a manifest that lists attachments: a reader of 1.0 still reads it (it
 * ignores the field it does not know), and one without attachments stays 1.0.
 */
export const MANIFEST_VERSION_ATTACHMENTS = '1.1';

/** A file kept with the stream (`--attach NAME=FILE`, config `attach:`): an object beside the manifest. */
export interface ManifestAttachment {
  /** [A-Za-z0-9][A-Za-z0-9._-]* (keys.ts isAttachmentName), unique in the stream. */
  name: string;
  /** `attachment.<name>` (keys.ts attachmentKey): fixed by the name. */
  key: string;
  size: number;
  sha256: string;
}

export interface ManifestSnapshot {
  /** Short snapshot name (after '@'), or a bookmark name starting with '#'; '' when unknown. */
  name: string;
  guid: string;
  /** ISO time of the snapshot's creation (from the BEGIN record). */
  creation?: string;
  /**
   * The snapshot's `createtxg` as a decimal string, when zfs was at hand at archive time
   * (`send`, or `put` on a host that has the snapshot). Orders snapshots made in one second.
   */
  createtxg?: string;
}

export interface ManifestSubstream {
  toname: string;
  toguid: string;
  fromguid: string;
  creation: string;
  /** `createtxg` of the to-snapshot (decimal string) when known; absent in older manifests. */
  createtxg?: string;
  objsetType: 'filesystem' | 'volume' | 'other';
  features: string[];
  featureFlags: number;
  beginFlags: number;
  raw: boolean;
  clone: boolean;
  /** Where this substream starts in the stream (after a compound header) and its length. */
  offset: number;
  bytes: number;
  records: number;
  /** fletcher-4 END checksum, 4 words of 16 hex digits: the substream's content fingerprint. */
  endChecksum: string[];
}

export interface ManifestChunk {
  index: number;
  key: string;
  rawSize: number;
  storedSize: number;
  rawSha256: string;
  storedSha256: string;
  /** zstd level actually used (a cheaper one for incompressible chunks). */
  level: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: string;
  toolVersion: string;
  streamId: string;
  dataset: string;
  kind: StreamKind;
  to: ManifestSnapshot;
  from: ManifestSnapshot | null;
  raw: boolean;
  compound: boolean;
  substreams: ManifestSubstream[];
  /** The exact `zfs send` arguments, or null for a stream piped into `put`. */
  sendArgs: string[] | null;
  zfsVersion: string | null;
  host: string;
  startedAt: string;
  finishedAt: string;
  rawBytes: number;
  storedBytes: number;
  sha256: string;
  compression: { algorithm: 'zstd'; level: number; checksum: true };
  chunkSize: number;
  chunks: ManifestChunk[];
  /** Files kept with the stream (format 1.1); absent in manifests without any. */
  attachments?: ManifestAttachment[];
}

/**
 * A manifest without its chunk list: everything the planners (archive/plan/: chains, snapshot
 * order, restore and retention plans, cadence, base selection) and `list` use. The stream index
 * (format/stream-index.ts) keeps one per committed stream, so planning never needs the chunks.
 */
export type ManifestSummary = Omit<Manifest, 'chunks'>;

/** The directory a manifest was read from: its content must describe that stream. */
export interface ManifestLocation {
  dataset: string;
  streamId: string;
}

/**
 * Parses and checks a manifest: the one validation every reader (list, verify, restore, prune,
 * send/run base lookups, the "already archived" test) relies on, so that none of them does
 * arithmetic on a manifest another would reject. Throws only ManifestError.
 */
export function parseManifest(text: string | Buffer, where: string, location?: ManifestLocation): Manifest {
  const reader = new ManifestReader(where, location);
  reader.push(typeof text === 'string' ? Buffer.from(text) : text);
  return reader.finish();
}

/**
 * parseManifest fed piece by piece (a manifest read with `Backend.load`): the chunk list goes
 * straight into a ChunkTable (manifest-scan.ts), never held as text or as objects, so reading a
 * stream of 500,000 chunks costs tens of MiB, not the ≈ 150 MB of its JSON twice over (issue 17).
 */
export class ManifestReader {
  private readonly chunks: ChunkCollector;
  private readonly scanner: ManifestScanner;
  private fault: SyntaxFault | undefined;

  constructor(
    private readonly where: string,
    private readonly location?: ManifestLocation,
  ) {
    this.chunks = new ChunkCollector(new Fields(where));
    this.scanner = new ManifestScanner(this.chunks);
  }

  push(piece: Buffer): void {
    if (this.fault) return;
    try {
      this.scanner.push(piece);
    } catch (err) {
      if (!(err instanceof SyntaxFault)) throw err;
      this.fault = err;
    }
  }

  finish(): Manifest {
    const where = this.where;
    const { total, skeleton } = this.scanner.sizes;
    // A string cannot hold more (toString would throw a RangeError); only the skeleton is one.
    if (skeleton > constants.MAX_STRING_LENGTH) throw new ManifestError('manifest-unreadable', where, undefined, `is too large (${total} bytes)`);
    let body: string;
    try {
      body = this.scanner.finish();
    } catch (err) {
      if (!(err instanceof SyntaxFault)) throw err;
      this.fault ??= err;
      body = '';
    }
    if (!this.fault && body.trim() === '') throw new ManifestError('manifest-unreadable', where, undefined, `is empty (${total} bytes)`);
    let data: unknown;
    try {
      if (this.fault) throw this.fault;
      data = JSON.parse(body);
    } catch (err) {
      throw new ManifestError('manifest-unreadable', where, undefined, `is not valid JSON (${(err as Error).message})`);
    }
    const m = data as Partial<Manifest> | null;
    if (typeof m !== 'object' || m === null || Array.isArray(m) || m.format !== MANIFEST_FORMAT || typeof m.formatVersion !== 'string') {
      throw new ManifestError('manifest-unreadable', where, undefined, 'is not a zfs-offsite manifest');
    }
    const version = /^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$/.exec(m.formatVersion);
    if (!version) throw new ManifestError('manifest-invalid', where, 'formatVersion', `expected MAJOR.MINOR, found ${describe(m.formatVersion)}`);
    if (Number(version[1]) !== MANIFEST_MAJOR) {
      throw new ManifestError('manifest-unreadable', where, undefined, `format ${m.formatVersion} is not supported by this version (supports ${MANIFEST_MAJOR}.x); upgrade zfs-offsite`);
    }
    return checkManifest(m as Record<string, unknown>, new Fields(where), this.chunks, this.location);
  }
}

/** Bytes of a send stream record (BEGIN, END): a substream holds at least its BEGIN and END. */
const RECORD_BYTES = 312;
/** The largest chunk `--chunk-size` allows: chunk sizes beyond it are edits, not archives. */
const MAX_CHUNK_SIZE = 1024 ** 3;
const OBJSET_TYPES = new Set(['filesystem', 'volume', 'other']);

/** zstd's ZSTD_COMPRESSBOUND: no frame the writer stores (chunk-pool.ts frameBound) is larger. */
function compressBound(rawSize: number): number {
  return rawSize + (rawSize >>> 8) + (rawSize < 128 * 1024 ? (128 * 1024 - rawSize) >>> 11 : 0);
}

function checkSubstream(f: Fields, v: unknown, at: string): ManifestSubstream {
  const s = f.object(v, at);
  f.name(s.toname, `${at}.toname`, true);
  f.decimal64(s.toguid, `${at}.toguid`, true);
  f.decimal64(s.fromguid, `${at}.fromguid`);
  f.time(s.creation, `${at}.creation`);
  f.optional(s.createtxg, (x) => f.decimal64(x, `${at}.createtxg`));
  if (!OBJSET_TYPES.has(s.objsetType as string)) f.fail(`${at}.objsetType`, `expected filesystem, volume or other, found ${describe(s.objsetType)}`);
  for (const [i, x] of f.array(s.features, `${at}.features`).entries()) f.string(x, `${at}.features[${i}]`);
  f.int(s.featureFlags, `${at}.featureFlags`, 0);
  f.int(s.beginFlags, `${at}.beginFlags`, 0);
  f.boolean(s.raw, `${at}.raw`);
  f.boolean(s.clone, `${at}.clone`);
  f.int(s.offset, `${at}.offset`, 0);
  const bytes = f.int(s.bytes, `${at}.bytes`, 2 * RECORD_BYTES);
  // Every record is a 312-byte header and its payload: more records than that is an edit.
  f.int(s.records, `${at}.records`, 2, Math.floor(bytes / RECORD_BYTES));
  const words = f.array(s.endChecksum, `${at}.endChecksum`);
  if (words.length !== 4) f.fail(`${at}.endChecksum`, `expected 4 words, found ${words.length}`);
  for (const [i, w] of words.entries()) f.hex(w, `${at}.endChecksum[${i}]`, 16);
  return s as unknown as ManifestSubstream;
}

function checkChunk(f: Fields, v: unknown, i: number, chunkSize: number, last: boolean): ManifestChunk {
  const at = `chunks[${i}]`;
  const c = f.object(v, at);
  // Array order is stream order for every reader: an entry must sit where its index says.
  if (c.index !== i) f.fail(`${at}.index`, `expected ${i} (chunks are listed in stream order from 0), found ${describe(c.index)}`);
  // The key is fixed by the index: a chunk is never named outside its own stream directory.
  if (c.key !== chunkName(i)) f.fail(`${at}.key`, `expected ${JSON.stringify(chunkName(i))}, found ${describe(c.key)}`);
  // Every chunk but the last is exactly chunkSize (chunker.ts cuts fixed-size chunks).
  const rawSize = f.int(c.rawSize, `${at}.rawSize`, 1, chunkSize);
  if (!last && rawSize !== chunkSize) f.fail(`${at}.rawSize`, `expected chunkSize ${chunkSize} (only the last chunk may be shorter), found ${rawSize}`);
  f.int(c.storedSize, `${at}.storedSize`, 1, compressBound(rawSize));
  f.hex(c.rawSha256, `${at}.rawSha256`, 64);
  f.hex(c.storedSha256, `${at}.storedSha256`, 64);
  f.int(c.level, `${at}.level`, -131072, 22);
  return c as unknown as ManifestChunk;
}

/**
 * Takes each chunk entry as the scanner finds it: checked for what does not depend on fields
 * that may come later in the document (chunkSize, which entry is last) and stored in the table;
 * the first entry that fails is kept as it is, so that checkChunks reports exactly the error
 * (and field) a check of the whole list in order gives.
 */
class ChunkCollector implements ChunkSink {
  table = new ChunkTable();
  count = 0;
  failed: { index: number; value: unknown } | undefined;

  constructor(private readonly f: Fields) {}

  onChunks(): void {
    this.table = new ChunkTable();
    this.count = 0;
    this.failed = undefined;
  }

  onChunk(index: number, value: unknown): void {
    this.count = index + 1;
    if (this.failed) return;
    try {
      this.table.set(index, checkChunk(this.f, value, index, MAX_CHUNK_SIZE, true));
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      this.failed = { index, value };
    }
  }
}

/** The `chunks` field: a list of at least one entry, each checked against `chunkSize` in order. */
function checkChunks(f: Fields, field: unknown, collected: ChunkCollector, chunkSize: number): ChunkTable {
  // Every list at the root's `chunks` went to the collector; the skeleton holds `[]` for it.
  f.array(field, 'chunks');
  const count = collected.count;
  if (count < 1) f.array([], 'chunks', 1);
  const failed = collected.failed;
  const t = collected.table;
  for (let i = 0; i < (failed?.index ?? count); i++) {
    const rawSize = f.int(t.rawSize(i), `chunks[${i}].rawSize`, 1, chunkSize);
    if (i < count - 1 && rawSize !== chunkSize) f.fail(`chunks[${i}].rawSize`, `expected chunkSize ${chunkSize} (only the last chunk may be shorter), found ${rawSize}`);
  }
  if (failed) {
    checkChunk(f, failed.value, failed.index, chunkSize, failed.index === count - 1);
    f.fail(`chunks[${failed.index}]`, 'is not a chunk entry');
  }
  return t;
}

function checkSnapshot(f: Fields, v: unknown, at: string): ManifestSnapshot {
  const s = f.object(v, at);
  f.name(s.name, `${at}.name`);
  f.decimal64(s.guid, `${at}.guid`, true);
  f.optional(s.creation, (x) => f.time(x, `${at}.creation`));
  f.optional(s.createtxg, (x) => f.decimal64(x, `${at}.createtxg`));
  return s as unknown as ManifestSnapshot;
}

/** The largest attachment a manifest may describe (the writer reads one whole into memory). */
export const MAX_ATTACHMENT_BYTES = 64 * 1024 * 1024;

function checkAttachments(f: Fields, v: unknown): void {
  const seen = new Set<string>();
  for (const [i, x] of f.array(v, 'attachments').entries()) {
    const at = `attachments[${i}]`;
    const a = f.object(x, at);
    const name = f.string(a.name, `${at}.name`, true);
    if (!isAttachmentName(name)) f.fail(`${at}.name`, `expected letters, digits, '.', '_' or '-' (not first), found ${describe(name)}`);
    if (seen.has(name)) f.fail(`${at}.name`, `${describe(name)} is listed twice`);
    seen.add(name);
    // The key is fixed by the name: an attachment is never read from outside its stream directory.
    if (a.key !== attachmentKey(name)) f.fail(`${at}.key`, `expected ${JSON.stringify(attachmentKey(name))}, found ${describe(a.key)}`);
    f.int(a.size, `${at}.size`, 0, MAX_ATTACHMENT_BYTES);
    f.hex(a.sha256, `${at}.sha256`, 64);
  }
}

/** Structure and arithmetic: what list, verify, restore and prune compute from must add up. */
function checkManifest(m: Record<string, unknown>, f: Fields, collected: ChunkCollector, location?: ManifestLocation): Manifest {
  const streamId = f.string(m.streamId, 'streamId', true);
  const dataset = f.name(m.dataset, 'dataset', true);
  if (!isArchivableDataset(dataset)) f.fail('dataset', `${describe(dataset)} is not a dataset name (an empty, "." or ".." component)`);
  f.string(m.toolVersion, 'toolVersion');
  if (location && dataset !== location.dataset) f.fail('dataset', `expected ${JSON.stringify(location.dataset)} (the directory it is in), found ${describe(dataset)}`);
  if (location && streamId !== location.streamId) f.fail('streamId', `expected ${JSON.stringify(location.streamId)} (the directory it is in), found ${describe(streamId)}`);
  const id = parseStreamId(streamId);
  if (!id || 'invalid' in id) f.fail('streamId', `not a stream id: ${id ? id.invalid : describe(streamId)}`);
  if (m.kind !== 'full' && m.kind !== 'incr') f.fail('kind', `expected "full" or "incr", found ${describe(m.kind)}`);
  const raw = f.boolean(m.raw, 'raw');
  const compound = f.boolean(m.compound, 'compound');
  const subs = f.array(m.substreams, 'substreams', 1).map((s, i) => checkSubstream(f, s, `substreams[${i}]`));
  const first = subs[0]!;
  const last = subs[subs.length - 1]!;
  if ((first.fromguid === '0') !== (m.kind === 'full')) f.fail('kind', `${m.kind} does not agree with substreams[0].fromguid ${first.fromguid}`);
  if (id.kind !== m.kind) f.fail('kind', `${m.kind} does not agree with the stream id ${streamId}`);
  if (!BigInt(first.toguid).toString(16).padStart(16, '0').startsWith(id.guidPrefix)) f.fail('substreams[0].toguid', `does not agree with the stream id ${streamId}`);
  const to = checkSnapshot(f, m.to, 'to');
  if (to.guid !== last.toguid) f.fail('to.guid', `expected the last substream's toguid ${last.toguid}, found ${to.guid}`);
  if (m.from === null) {
    if (m.kind !== 'full') f.fail('from', 'an incremental stream needs its base snapshot');
  } else {
    const from = checkSnapshot(f, m.from, 'from');
    if (from.guid !== first.fromguid) f.fail('from.guid', `expected substreams[0].fromguid ${first.fromguid}, found ${from.guid}`);
  }
  if (raw !== subs.every((s) => s.raw)) f.fail('raw', `${raw} does not agree with the substreams' raw flags`);
  if (!compound && subs.length !== 1) f.fail('substreams', `a stream that is not compound has exactly one substream, found ${subs.length}`);
  if (m.sendArgs !== null) for (const [i, x] of f.array(m.sendArgs, 'sendArgs').entries()) f.string(x, `sendArgs[${i}]`);
  if (m.zfsVersion !== null) f.string(m.zfsVersion, 'zfsVersion');
  f.string(m.host, 'host');
  f.time(m.startedAt, 'startedAt');
  f.time(m.finishedAt, 'finishedAt');
  f.hex(m.sha256, 'sha256', 64);
  const compression = f.object(m.compression, 'compression');
  if (compression.algorithm !== 'zstd') f.fail('compression.algorithm', `expected "zstd", found ${describe(compression.algorithm)}`);
  f.int(compression.level, 'compression.level', -131072, 22);
  if (compression.checksum !== true) f.fail('compression.checksum', `expected true (every frame carries its checksum), found ${describe(compression.checksum)}`);
  const chunkSize = f.int(m.chunkSize, 'chunkSize', 1, MAX_CHUNK_SIZE);
  const rawBytes = f.int(m.rawBytes, 'rawBytes', 2 * RECORD_BYTES);
  const storedBytes = f.int(m.storedBytes, 'storedBytes', 1);
  const chunks = checkChunks(f, m.chunks, collected, chunkSize);
  const { rawBytes: rawSum, storedBytes: storedSum } = chunks.totals();
  if (rawSum !== rawBytes) f.fail('rawBytes', `${rawBytes}, but the chunks hold ${rawSum} bytes`);
  if (storedSum !== storedBytes) f.fail('storedBytes', `${storedBytes}, but the chunk objects hold ${storedSum} bytes`);
  f.optional(m.attachments, (x) => checkAttachments(f, x));
  // Substreams tile the stream: after the compound header (BEGIN + nvlist + END) one after
  // another, then the conclusion END (reader.ts unitSpans cuts -I streams on these offsets).
  if (!compound && (first.offset !== 0 || first.bytes !== rawBytes)) f.fail('substreams[0]', `offset ${first.offset} and ${first.bytes} bytes do not cover the stream's ${rawBytes} bytes`);
  if (compound) {
    if (first.offset < 2 * RECORD_BYTES) f.fail('substreams[0].offset', `${first.offset} leaves no room for the compound header`);
    for (let i = 1; i < subs.length; i++) {
      const expected = subs[i - 1]!.offset + subs[i - 1]!.bytes;
      if (subs[i]!.offset !== expected) f.fail(`substreams[${i}].offset`, `expected ${expected} (where substream ${i - 1} ends), found ${subs[i]!.offset}`);
    }
    const end = last.offset + last.bytes + RECORD_BYTES;
    if (end !== rawBytes) f.fail('substreams', `end at ${last.offset + last.bytes}, then the conclusion END: ${end} bytes, but rawBytes is ${rawBytes}`);
  }
  return { ...(m as unknown as Manifest), chunks: chunks.views() };
}

// The manifest's text (serializeManifest, sha256sums and their pieces) is in manifest-text.ts.
export { manifestPieces, serializeManifest, sha256sums, sha256sumsPieces } from './manifest-text.js';
