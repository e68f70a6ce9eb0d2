/**
 * Builds small (or, streamed, very large) valid ZFS send streams for tests, as described in docs/stream-format.md, "Test streams":
 * full, incremental, compound (`-I`/`-R` framing), raw, little- or big-endian, plus the faults of
 * "What the validator refuses" so tests can check every way a stream can be broken.
 *
 * Checksums are computed with the project's Fletcher4; that implementation is cross-checked
 * against a BigInt reference in its own tests, and the builder against the golden minimal stream.
 */
import { Fletcher4 } from '../../src/stream/fletcher4.js';
import { DMU_BACKUP_MAGIC, DrrType, Feature, RECORD_SIZE, TRAILING_CHECKSUM_OFFSET } from '../../src/stream/records.js';

/** sha256 of the minimal full stream (`minimalFullStream()`). */
export const MINIMAL_FULL_SHA256 = 'ce2c76774f0f8015a9b03fd12a8317b11866546a764192c5c79493e5224a0f0c';
export const RAW_FEATURES = Feature.SA_SPILL | Feature.LZ4 | Feature.COMPRESSED | Feature.RAW; // 0x1420004
const UINT64_MAX = (1n << 64n) - 1n;

export type ContentRecord =
  | { kind: 'object'; object: number; objectType?: number; blockSize?: number; bonus?: Uint8Array }
  | { kind: 'free'; object: number; offset: number; length?: bigint }
  | { kind: 'write'; object: number; offset: number; data: Uint8Array; objectType?: number; compression?: number }
  | { kind: 'freeobjects'; firstObject: number; count: number }
  /** Anything else: `fill` writes the 312-byte header (type included); the trailing checksum is added. */
  | { kind: 'custom'; fill: (header: DataView, littleEndian: boolean) => void; payload?: Uint8Array };

export interface SubstreamSpec {
  toname: string;
  toguid: bigint;
  /** 0n (default) for a full stream. */
  fromguid?: bigint;
  creationTime?: number;
  /** Feature bits; default SA_SPILL. */
  features?: number;
  /** BEGIN drr_flags; default 0xc (FREERECORDS | SPILL_BLOCK). */
  flags?: number;
  objsetType?: number;
  /** BEGIN payload (a packed nvlist, see xdrNvlist). */
  nvlist?: Uint8Array;
  /** Content records between BEGIN and END; default the full recipe. */
  records?: ContentRecord[];
  /** Byte order of this substream; default that of the stream (a compound may mix them). */
  littleEndian?: boolean;
}

/** The negative cases (and a few more), applied while or after encoding. */
export interface StreamFaults {
  /** OR'ed into every BEGIN's features, with every checksum still correct. */
  extraFeatureBits?: number;
  badMagic?: boolean;
  /** Add 1 to word `a` of the first substream's END checksum (END's own trailing checksum stays right). */
  wrongEndChecksum?: boolean;
  /** Repeat the first substream's BEGIN just before its END. */
  beginInsideSubstream?: boolean;
  /** Compound streams: leave out the conclusion END. */
  omitConclusion?: boolean;
  /** Flip one byte in the middle of the first WRITE payload. */
  flipPayloadByte?: boolean;
  /** Cut this many bytes off the end (312 drops the final END). */
  dropLastBytes?: number;
  trailingGarbage?: Uint8Array;
}

export interface StreamSpec {
  /** Default true. */
  littleEndian?: boolean;
  /** Present: a compound stream with this header (toname = the LAST snapshot). */
  compound?: { toname: string; nvlist?: Uint8Array; features?: number };
  substreams: SubstreamSpec[];
  /** Leave every trailing checksum zero ("unchecked"), as the END checksum still covers it all. */
  zeroTrailingChecksums?: boolean;
  faults?: StreamFaults;
}

/** Where each record landed, for tests that corrupt a particular field. */
export interface RecordLayout {
  type: number;
  offset: number;
  payloadLength: number;
  /** Index into spec.substreams; -1 for the compound header, its END and the conclusion. */
  substream: number;
}

export interface BuiltStream {
  bytes: Uint8Array;
  records: RecordLayout[];
}

/** A record header being filled in, in the stream's byte order. */
class Header {
  readonly bytes = new Uint8Array(RECORD_SIZE);
  readonly view = new DataView(this.bytes.buffer);

  constructor(
    type: number,
    private readonly littleEndian: boolean,
  ) {
    this.u32(0, type);
  }

  // Setters in the stream's byte order, chainable.
  u8 = (offset: number, value: number): this => (this.view.setUint8(offset, value), this);
  u32 = (offset: number, value: number): this => (this.view.setUint32(offset, value, this.littleEndian), this);
  u64 = (offset: number, value: bigint | number): this => (this.view.setBigUint64(offset, BigInt.asUintN(64, BigInt(value)), this.littleEndian), this);
}

/** Emits records with the running checksum exactly as dump_record() does ("Running checksum"). */
class Encoder {
  constructor(
    private readonly layout: RecordLayout[],
    private readonly trailingChecksums: boolean,
  ) {}

  private out: Uint8Array[] = [];
  private offset = 0;
  private zc = new Fletcher4();

  /** Parts emitted since the last call. */
  drain(): Uint8Array[] {
    const parts = this.out;
    this.out = [];
    return parts;
  }

  begin(header: Header, littleEndian: boolean, payload: Uint8Array | undefined, substream: number): void {
    this.zc.reset(littleEndian);
    this.emit(header, payload, substream, false);
  }

  /** END: drr_checksum = the state before this record (+1 to fake corruption). */
  end(header: Header, substream: number, options: { wrongChecksum?: boolean; trailing?: boolean } = {}): void {
    this.zc.writeTo(header.bytes, 8);
    if (options.wrongChecksum) header.bytes[this.zc.littleEndian ? 8 : 15]! ^= 1; // low byte of word a
    this.emit(header, undefined, substream, (options.trailing ?? true) && this.trailingChecksums);
    this.zc.reset();
  }

  record(header: Header, payload: Uint8Array | undefined, substream: number): void {
    this.emit(header, payload, substream, this.trailingChecksums);
  }

  /** A record emitted verbatim, outside any checksum (the conclusion END). */
  raw(header: Header, substream: number): void {
    this.push(header.bytes, undefined, substream);
  }

  private emit(header: Header, payload: Uint8Array | undefined, substream: number, trailing: boolean): void {
    const bytes = header.bytes;
    this.zc.update(bytes.subarray(0, TRAILING_CHECKSUM_OFFSET));
    if (trailing) this.zc.writeTo(bytes, TRAILING_CHECKSUM_OFFSET);
    this.zc.update(bytes.subarray(TRAILING_CHECKSUM_OFFSET));
    if (payload) this.zc.update(payload).endBuffer();
    this.push(bytes, payload, substream);
  }

  private push(bytes: Uint8Array, payload: Uint8Array | undefined, substream: number): void {
    const type = bytes[0]! | bytes[3]!; // drr_type < 256 sits in byte 0 (LE) or byte 3 (BE)
    this.layout.push({ type, offset: this.offset, payloadLength: payload?.length ?? 0, substream });
    this.out.push(bytes);
    this.offset += bytes.length;
    if (payload && payload.length > 0) {
      this.out.push(payload);
      this.offset += payload.length;
    }
  }
}

function beginHeader(
  littleEndian: boolean,
  fields: {
    headerType: number;
    features: number;
    creationTime: number;
    objsetType: number;
    flags: number;
    toguid: bigint;
    fromguid: bigint;
    toname: string;
    payloadLength: number;
    badMagic?: boolean;
  },
): Header {
  const h = new Header(DrrType.BEGIN, littleEndian)
    .u32(4, fields.payloadLength)
    .u64(8, fields.badMagic ? DMU_BACKUP_MAGIC ^ 0xffn : DMU_BACKUP_MAGIC)
    .u64(16, (BigInt(fields.features) << 2n) | BigInt(fields.headerType))
    .u64(24, fields.creationTime)
    .u32(32, fields.objsetType)
    .u32(36, fields.flags)
    .u64(40, fields.toguid)
    .u64(48, fields.fromguid);
  const name = new TextEncoder().encode(fields.toname);
  if (name.length >= 256) throw new Error(`toname too long: ${fields.toname}`);
  h.bytes.set(name, 56);
  return h;
}

function contentHeader(r: ContentRecord, littleEndian: boolean, toguid: bigint, raw: boolean): [Header, Uint8Array?] {
  switch (r.kind) {
    case 'object': {
      const bonus = r.bonus ?? new Uint8Array(0);
      const h = new Header(DrrType.OBJECT, littleEndian)
        .u64(8, r.object)
        .u32(16, r.objectType ?? 21)
        .u32(20, 0)
        .u32(24, r.blockSize ?? 512)
        .u32(28, bonus.length)
        .u64(40, toguid);
      const payload = new Uint8Array(Math.ceil(bonus.length / 8) * 8);
      payload.set(bonus);
      return [h, payload.length > 0 ? payload : undefined];
    }
    case 'free':
      return [
        new Header(DrrType.FREE, littleEndian)
          .u64(8, r.object)
          .u64(16, r.offset)
          .u64(24, r.length ?? UINT64_MAX)
          .u64(32, toguid),
      ];
    case 'freeobjects':
      return [new Header(DrrType.FREEOBJECTS, littleEndian).u64(8, r.firstObject).u64(16, r.count).u64(24, toguid)];
    case 'write': {
      // Raw WRITEs always carry a compression type (2 = OFF) and psize ("Raw streams").
      const compression = r.compression ?? (raw ? 2 : 0);
      const h = new Header(DrrType.WRITE, littleEndian)
        .u64(8, r.object)
        .u32(16, r.objectType ?? 19)
        .u64(24, r.offset)
        .u64(32, r.data.length)
        .u64(40, toguid)
        .u8(48, 7)
        .u8(50, compression)
        .u64(96, compression !== 0 ? r.data.length : 0);
      return [h, r.data];
    }
    case 'custom': {
      const h = new Header(0, littleEndian);
      r.fill(h.view, littleEndian);
      return [h, r.payload];
    }
  }
}

/** The "full" recipe; `data` is the 512-byte WRITE payload. */
export function recipeRecords(data: Uint8Array = patternBytes(512, 1)): ContentRecord[] {
  return [
    { kind: 'object', object: 1, objectType: 21, blockSize: 512 },
    { kind: 'free', object: 1, offset: 512 },
    { kind: 'write', object: 1, objectType: 21, offset: 0, data },
    { kind: 'freeobjects', firstObject: 2, count: 30 },
  ];
}

/** `count` WRITEs of `data` (the same buffer, not copied) to consecutive offsets of object 2. */
export function writeRecords(count: number, data: Uint8Array): ContentRecord[] {
  return Array.from({ length: count }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * data.length, data }));
}

/** Deterministic non-trivial bytes. */
export function patternBytes(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * The stream, part by part, without ever holding it whole (for very large streams). Payload
 * parts are the caller's buffers, not copies. `layout`, if given, receives every record's place.
 */
export function* streamParts(spec: StreamSpec, layout: RecordLayout[] = []): Generator<Uint8Array> {
  const enc = new Encoder(layout, !spec.zeroTrailingChecksums);
  const faults = spec.faults ?? {};
  const topLE = spec.littleEndian ?? true;
  let badMagic = faults.badMagic ?? false;
  if (spec.compound) {
    const c = spec.compound;
    const h = beginHeader(topLE, {
      headerType: 2,
      features: c.features ?? 0,
      creationTime: 0,
      objsetType: 0,
      flags: 0,
      toguid: 0n,
      fromguid: 0n,
      toname: c.toname,
      payloadLength: c.nvlist?.length ?? 0,
      badMagic,
    });
    badMagic = false;
    enc.begin(h, topLE, c.nvlist, -1);
    enc.end(new Header(DrrType.END, topLE), -1, { trailing: false }); // like libzfs: trailing 0, toguid 0
    yield* enc.drain();
  }
  for (const [index, sub] of spec.substreams.entries()) {
    const le = sub.littleEndian ?? topLE;
    const features = (sub.features ?? Feature.SA_SPILL) | (faults.extraFeatureBits ?? 0);
    const begin = beginHeader(le, {
      headerType: 1,
      features,
      creationTime: sub.creationTime ?? 0x6a000000,
      objsetType: sub.objsetType ?? 2,
      flags: sub.flags ?? 0xc,
      toguid: sub.toguid,
      fromguid: sub.fromguid ?? 0n,
      toname: sub.toname,
      payloadLength: sub.nvlist?.length ?? 0,
      badMagic,
    });
    badMagic = false;
    enc.begin(begin, le, sub.nvlist, index);
    yield* enc.drain();
    const raw = (features & Feature.RAW) !== 0;
    for (const r of sub.records ?? recipeRecords()) {
      const [h, payload] = contentHeader(r, le, sub.toguid, raw);
      enc.record(h, payload, index);
      yield* enc.drain();
    }
    if (index === 0 && faults.beginInsideSubstream) enc.raw(begin, index);
    enc.end(new Header(DrrType.END, le).u64(40, sub.toguid), index, { wrongChecksum: index === 0 && faults.wrongEndChecksum });
    yield* enc.drain();
  }
  if (spec.compound && !faults.omitConclusion) {
    enc.raw(new Header(DrrType.END, topLE), -1); // all zero but drr_type
    yield* enc.drain();
  }
  if (faults.trailingGarbage) yield faults.trailingGarbage;
}

export function buildStream(spec: StreamSpec): BuiltStream {
  const records: RecordLayout[] = [];
  const parts = [...streamParts(spec, records)];
  let bytes = concat(parts);
  const faults = spec.faults ?? {};
  if (faults.flipPayloadByte) {
    const write = records.find((r) => r.type === DrrType.WRITE && r.payloadLength > 0);
    if (!write) throw new Error('flipPayloadByte needs a WRITE record with a payload');
    bytes[write.offset + RECORD_SIZE + (write.payloadLength >> 1)]! ^= 0x40;
  }
  if (faults.dropLastBytes) bytes = bytes.slice(0, bytes.length - faults.dropLastBytes);
  return { bytes, records };
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

// ---- ready-made streams ----

/** BEGIN + END only, 624 bytes; its sha256 is MINIMAL_FULL_SHA256. */
export function minimalFullStream(littleEndian = true): Uint8Array {
  return buildStream({
    littleEndian,
    substreams: [{ toname: 'pool/fs@a', toguid: 0x1111222233334444n, records: [] }],
  }).bytes;
}

export const FULL: SubstreamSpec = { toname: 'pool/fs@a', toguid: 0x1111222233334444n };
export const INCR_AB: SubstreamSpec = { toname: 'pool/fs@b', toguid: 0x5555666677778888n, fromguid: FULL.toguid, creationTime: 0x6a000100 };
export const INCR_BC: SubstreamSpec = { toname: 'pool/fs@c', toguid: 0x99990000aaaabbbbn, fromguid: INCR_AB.toguid, creationTime: 0x6a000200 };

/** `zfs send -I @a pool/fs@c`: header, a→b, b→c, conclusion ("Compound streams"). */
export function compoundSpec(littleEndian = true): StreamSpec {
  return { littleEndian, compound: { toname: 'pool/fs@c' }, substreams: [INCR_AB, INCR_BC] };
}

/** `zfs send -w` of an encrypted dataset: features 0x1420004, crypt_keydata nvlist. */
export function rawSpec(littleEndian = true): StreamSpec {
  const keydata = xdrNvlist(
    {
      crypt_keydata: {
        DSL_CRYPTO_SUITE: 8n,
        DSL_CRYPTO_GUID: 0x0123456789abcdefn,
        DSL_CRYPTO_VERSION: 1n,
        DSL_CRYPTO_MASTER_KEY_1: patternBytes(32, 7),
        DSL_CRYPTO_HMAC_KEY_1: patternBytes(64, 8),
        DSL_CRYPTO_IV: patternBytes(12, 9),
        DSL_CRYPTO_MAC: patternBytes(16, 10),
        portable_mac: patternBytes(32, 11),
        keyformat: 3n,
        pbkdf2iters: 350000n,
        pbkdf2salt: 0x1122334455667788n,
      },
    },
    { padTo8: true },
  );
  return {
    littleEndian,
    substreams: [{ toname: 'pool/secret@a', toguid: 0x2222333344445555n, features: RAW_FEATURES, nvlist: keydata }],
  };
}

// ---- XDR nvlists, enough for BEGIN payloads ----

/** bigint/number → UINT64, string → STRING, true → BOOLEAN (no value), bytes → UINT8_ARRAY, object → NVLIST. */
export type NvValue = bigint | number | string | true | Uint8Array | { [key: string]: NvValue };

/** Pack an nvlist as NV_ENCODE_XDR; `padTo8` zero-pads it like master's kernel does for substream BEGINs. */
export function xdrNvlist(pairs: { [key: string]: NvValue }, options: { padTo8?: boolean } = {}): Uint8Array {
  const words = [0x01, 0x01, 0x00, 0x00, ...xdrList(pairs)]; // header: XDR, little-endian host
  while (options.padTo8 && words.length % 8 !== 0) words.push(0);
  return new Uint8Array(words);
}

const be32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const align = (n: number, to: number): number => Math.ceil(n / to) * to;
const padded = (bytes: number[], to = 4): number[] => [...bytes, ...new Array<number>(align(bytes.length, to) - bytes.length).fill(0)];

function xdrString(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...be32(bytes.length), ...padded(bytes)];
}

function xdrList(pairs: { [key: string]: NvValue }): number[] {
  const out = [...be32(0), ...be32(1)]; // nvl_version 0, nvflag NV_UNIQUE_NAME
  for (const [name, value] of Object.entries(pairs)) out.push(...xdrPair(name, value));
  return [...out, ...be32(0), ...be32(0)]; // terminating empty pair
}

function xdrPair(name: string, value: NvValue): number[] {
  let type: number, nelem: number, encoded: number[], valueSize: number;
  if (typeof value === 'bigint' || typeof value === 'number') {
    const v = BigInt(value);
    [type, nelem, valueSize] = [8, 1, 8];
    encoded = [...be32(Number(v >> 32n)), ...be32(Number(v & 0xffffffffn))];
  } else if (typeof value === 'string') {
    [type, nelem, valueSize, encoded] = [9, 1, new TextEncoder().encode(value).length + 1, xdrString(value)];
  } else if (value === true) {
    [type, nelem, valueSize, encoded] = [1, 0, 0, []];
  } else if (value instanceof Uint8Array) {
    // xdr_array of uint8: a count, then each element in its own 4-byte unit.
    [type, nelem, valueSize] = [26, value.length, value.length];
    encoded = [...be32(value.length), ...[...value].flatMap((b) => be32(b))];
  } else {
    [type, nelem, valueSize, encoded] = [19, 1, 24, xdrList(value)];
  }
  // decode size = NVP_SIZE_CALC(strlen(name) + 1, value size)
  const decodeSize = align(16 + new TextEncoder().encode(name).length + 1, 8) + align(valueSize, 8);
  const body = [...xdrString(name), ...be32(type), ...be32(nelem), ...encoded];
  return [...be32(body.length + 8), ...be32(decodeSize), ...body];
}
