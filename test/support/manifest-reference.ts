/**
 * parseManifest as it was before issue 17's streaming reader (src/archive/format/manifest.ts at
 * the commit before): the whole text through JSON.parse, the chunk list as objects. Kept only as
 * the reference test/archive/chunk-table.test.ts compares the streaming reader with: same
 * manifest, or the same error kind and field, for every seeded mutation.
 */
import { constants } from 'node:buffer';
import { OperationalError } from '../../src/util/errors.js';
import { chunkName, isArchivableDataset, parseStreamId, type StreamKind } from '../../src/archive/format/keys.js';

/**
 * The manifest of one archived stream: the commit point (docs/archive-format.md, "Manifest" and "Commit protocol"). Written LAST, only
 * when every chunk is stored and checked. GUIDs are decimal strings, as `zfs get -Hp guid`
 * prints them (JSON numbers cannot hold 64 bits).
 */
export const MANIFEST_FORMAT = 'zfs-offsite-manifest';
export const MANIFEST_MAJOR = 1;
export const MANIFEST_VERSION = '1.0';

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
}

/**
 * A manifest without its chunk list: everything the planners (archive/plan/: chains, snapshot
 * order, restore and retention plans, cadence, base selection) and `list` use. The stream index
 * (format/stream-index.ts) keeps one per committed stream, so planning never needs the chunks.
 */
export type ManifestSummary = Omit<Manifest, 'chunks'>;

/**
 * What is wrong with a stored manifest: 'manifest-unreadable' (empty, not JSON, not a manifest,
 * a newer major format) or 'manifest-invalid' (a field is missing, of the wrong type, or its
 * arithmetic disagrees with the rest). Readers turn it into a problem of that one stream.
 */
export type ManifestProblemKind = 'manifest-unreadable' | 'manifest-invalid';

export class ManifestError extends OperationalError {
  override name = 'ManifestError';
  /** The message without the object: what is wrong with it. */
  readonly detail: string;
  constructor(
    override readonly kind: ManifestProblemKind,
    /** Where the manifest is (`<target>/<key>`). */
    readonly object: string,
    /** The offending field as a path (`chunks[3].rawSize`), when one is to blame. */
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    const detail = field === undefined ? `manifest ${reason}` : `invalid manifest: ${field}: ${reason}`;
    super(`${object}: ${detail}`, { kind, context: { object } });
    this.detail = detail;
  }
}

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
  // A string cannot hold more (toString would throw a RangeError); no real manifest comes near.
  if (typeof text !== 'string' && text.length > constants.MAX_STRING_LENGTH) throw new ManifestError('manifest-unreadable', where, undefined, `is too large (${text.length} bytes)`);
  const body = text.toString();
  if (body.trim() === '') throw new ManifestError('manifest-unreadable', where, undefined, `is empty (${Buffer.byteLength(body)} bytes)`);
  let data: unknown;
  try {
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
  return checkManifest(m as Record<string, unknown>, new Fields(where), location);
}

/**
 * What was found in a field, short and safe: JSON for a string, number or boolean (cut at 60
 * characters), the shape for a list or object — whose JSON could be megabytes, or nested deeper
 * than JSON.stringify's stack allows (issue 15).
 */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'an object';
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Field readers that name the field and what was found when a check fails. */
class Fields {
  constructor(private readonly where: string) {}

  fail(field: string, reason: string): never {
    throw new ManifestError('manifest-invalid', this.where, field, reason);
  }

  private found(v: unknown): string {
    return describe(v);
  }

  object(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, `expected an object, found ${this.found(v)}`);
    return v as Record<string, unknown>;
  }

  array(v: unknown, field: string, minLength = 0): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `expected a list, found ${this.found(v)}`);
    if (v.length < minLength) this.fail(field, `expected at least ${minLength} entr${minLength === 1 ? 'y' : 'ies'}, found none`);
    return v;
  }

  string(v: unknown, field: string, nonEmpty = false): string {
    if (typeof v !== 'string' || (nonEmpty && v === '')) this.fail(field, `expected a${nonEmpty ? ' non-empty' : ''} string, found ${this.found(v)}`);
    return v;
  }

  boolean(v: unknown, field: string): boolean {
    if (typeof v !== 'boolean') this.fail(field, `expected true or false, found ${this.found(v)}`);
    return v;
  }

  /** A whole number in [min, max] that JSON and JavaScript hold exactly. */
  int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(field, `expected a whole number from ${min} to ${max}, found ${this.found(v)}`);
    }
    return v;
  }

  /** A 64-bit unsigned integer in decimal, as `zfs get -Hp guid` prints it (and createtxg). */
  decimal64(v: unknown, field: string, nonZero = false): string {
    if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v) || BigInt(v) > 0xffff_ffff_ffff_ffffn || (nonZero && v === '0')) {
      this.fail(field, `expected a${nonZero ? ' non-zero' : ''} 64-bit number in decimal as a string, found ${this.found(v)}`);
    }
    return v;
  }

  hex(v: unknown, field: string, digits: number): string {
    if (typeof v !== 'string' || v.length !== digits || !/^[0-9a-f]*$/.test(v)) this.fail(field, `expected ${digits} lowercase hex digits, found ${this.found(v)}`);
    return v;
  }

  /** What `Date.toISOString` writes (and other ISO 8601 offsets): not whatever Date.parse guesses at. */
  time(v: unknown, field: string): string {
    if (typeof v !== 'string' || !ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) this.fail(field, `expected an ISO date and time, found ${this.found(v)}`);
    return v;
  }

  /** A name printed by list, prune and restore: no control characters to rewrite the terminal. */
  name(v: unknown, field: string, nonEmpty = false): string {
    const s = this.string(v, field, nonEmpty);
    if ([...s].some((ch) => ch < ' ' || ch === '\u007f')) this.fail(field, `control character in ${this.found(v)}`);
    return s;
  }

  optional<T>(v: unknown, read: (v: unknown) => T): T | undefined {
    return v === undefined ? undefined : read(v);
  }
}

/** Bytes of a send stream record (BEGIN, END): a substream holds at least its BEGIN and END. */
const RECORD_BYTES = 312;
/** The largest chunk `--chunk-size` allows: chunk sizes beyond it are edits, not archives. */
const MAX_CHUNK_SIZE = 1024 ** 3;
const OBJSET_TYPES = new Set(['filesystem', 'volume', 'other']);
const ISO_TIME = /^([+-][0-9]{6}|[0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$/;

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

function checkSnapshot(f: Fields, v: unknown, at: string): ManifestSnapshot {
  const s = f.object(v, at);
  f.name(s.name, `${at}.name`);
  f.decimal64(s.guid, `${at}.guid`, true);
  f.optional(s.creation, (x) => f.time(x, `${at}.creation`));
  f.optional(s.createtxg, (x) => f.decimal64(x, `${at}.createtxg`));
  return s as unknown as ManifestSnapshot;
}

/** Structure and arithmetic: what list, verify, restore and prune compute from must add up. */
function checkManifest(m: Record<string, unknown>, f: Fields, location?: ManifestLocation): Manifest {
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
  const list = f.array(m.chunks, 'chunks', 1);
  const chunks = list.map((c, i) => checkChunk(f, c, i, chunkSize, i === list.length - 1));
  const rawSum = chunks.reduce((n, c) => n + c.rawSize, 0);
  if (rawSum !== rawBytes) f.fail('rawBytes', `${rawBytes}, but the chunks hold ${rawSum} bytes`);
  const storedSum = chunks.reduce((n, c) => n + c.storedSize, 0);
  if (storedSum !== storedBytes) f.fail('storedBytes', `${storedBytes}, but the chunk objects hold ${storedSum} bytes`);
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
  return m as unknown as Manifest;
}

export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
}

/** coreutils `sha256sum` format: "<hex>  <name>" — `sha256sum -c SHA256SUMS` checks the objects. */
export function sha256sums(chunks: readonly ManifestChunk[]): Buffer {
  return Buffer.from(chunks.map((c) => `${c.storedSha256}  ${c.key.split('/').pop()}\n`).join(''));
}
