/**
 * The fixed parts of the ZFS send stream format (docs/stream-format.md): record layout, record
 * types, BEGIN fields, feature flags and how big each record's payload is.
 */
import { StreamFormatError } from '../util/errors.js';

/** Every record starts with a fixed 312-byte `dmu_replay_record_t`. */
export const RECORD_SIZE = 312;
/** Offset of the trailing checksum in every record except BEGIN (it covers bytes [0, 280)). */
export const TRAILING_CHECKSUM_OFFSET = 280;
/** `DMU_BACKUP_MAGIC`, the u64 at offset 8 of a BEGIN. */
export const DMU_BACKUP_MAGIC = 0x2f5bacbacn;
/** libzfs refuses BEGIN nvlists above this (`libzfs_max_nvlist`, default 64 MiB). */
export const MAX_BEGIN_PAYLOAD = 64 * 1024 * 1024;
/** The receiver asserts no payload exceeds SPA_MAXBLOCKSIZE (16 MiB). */
export const MAX_RECORD_PAYLOAD = 16 * 1024 * 1024;

/** `drr_type` values; the enum order is fixed and nothing above REDACT exists. */
export const DrrType = {
  BEGIN: 0,
  OBJECT: 1,
  FREEOBJECTS: 2,
  WRITE: 3,
  FREE: 4,
  END: 5,
  WRITE_BYREF: 6,
  SPILL: 7,
  WRITE_EMBEDDED: 8,
  OBJECT_RANGE: 9,
  REDACT: 10,
} as const;
export type DrrTypeValue = (typeof DrrType)[keyof typeof DrrType];
export const DRR_TYPE_NAMES: readonly string[] = Object.keys(DrrType);
export const DRR_NUMTYPES = DRR_TYPE_NAMES.length;

/** Human name for a record type, including impossible ones (for error messages). */
export function drrTypeName(type: number): string {
  return DRR_TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/** Header type in the low 2 bits of `drr_versioninfo`. */
export const HeaderType = { SUBSTREAM: 1, COMPOUND: 2 } as const;

/** BEGIN `drr_flags` bits (docs/stream-format.md, "BEGIN flags"). */
export const BeginFlag = { CLONE: 0x1, CI_DATA: 0x2, FREERECORDS: 0x4, SPILL_BLOCK: 0x8 } as const;

/** `DMU_BACKUP_FEATURE_*` values as they appear after `versioninfo >> 2` (docs/stream-format.md, "Feature flags"). */
export const Feature = {
  DEDUP: 1 << 0,
  DEDUPPROPS: 1 << 1,
  SA_SPILL: 1 << 2,
  EMBED_DATA: 1 << 16,
  LZ4: 1 << 17,
  LARGE_BLOCKS: 1 << 19,
  RESUMING: 1 << 20,
  REDACTED: 1 << 21,
  COMPRESSED: 1 << 22,
  LARGE_DNODE: 1 << 23,
  RAW: 1 << 24,
  ZSTD: 1 << 25,
  HOLDS: 1 << 26,
  SWITCH_TO_LARGE_BLOCKS: 1 << 27,
  LONGNAME: 1 << 28,
  LARGE_MICROZAP: 1 << 29,
} as const;
export type FeatureName = keyof typeof Feature;

/** Every bit OpenZFS defines. Others are reserved; `zfs receive` rejects them. */
export const KNOWN_FEATURES: number = Object.values(Feature).reduce((acc, bit) => acc | bit, 0);
/** Bits of legacy `zfs send -D` streams, which must go through `zstream redup` first. */
export const DEDUP_FEATURES = Feature.DEDUP | Feature.DEDUPPROPS;

/** Names of the known bits set in `flags`, lowest bit first (unknown bits are left out). */
export function featureNames(flags: number): FeatureName[] {
  return (Object.keys(Feature) as FeatureName[]).filter((name) => (flags & Feature[name]) !== 0);
}

/** Unknown bits of `flags` (which may exceed 32 bits) as a number, 0 if none. */
export function unknownFeatureBits(flags: number): number {
  const high = Math.floor(flags / 2 ** 32); // no feature is defined above bit 31
  return ((flags & ~KNOWN_FEATURES) >>> 0) + high * 2 ** 32;
}

// ---- little helpers to read fields in the stream's byte order, without allocations ----

export function readU32(buf: Uint8Array, offset: number, littleEndian: boolean): number {
  const b0 = buf[offset]!,
    b1 = buf[offset + 1]!,
    b2 = buf[offset + 2]!,
    b3 = buf[offset + 3]!;
  return littleEndian ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0 : (b3 | (b2 << 8) | (b1 << 16) | (b0 << 24)) >>> 0;
}

/** A u64 as a number; exact below 2^53, which every length and timestamp is in practice. */
export function readU64Number(buf: Uint8Array, offset: number, littleEndian: boolean): number {
  const first = readU32(buf, offset, littleEndian);
  const second = readU32(buf, offset + 4, littleEndian);
  return littleEndian ? first + second * 2 ** 32 : second + first * 2 ** 32;
}

export function readU64(buf: Uint8Array, offset: number, littleEndian: boolean): bigint {
  const first = BigInt(readU32(buf, offset, littleEndian));
  const second = BigInt(readU32(buf, offset + 4, littleEndian));
  return littleEndian ? first | (second << 32n) : second | (first << 32n);
}

export function isZero(buf: Uint8Array, offset: number, length: number): boolean {
  for (let i = offset; i < offset + length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** The four u64 words of a checksum field. */
export function readChecksum(buf: Uint8Array, offset: number, littleEndian: boolean): [bigint, bigint, bigint, bigint] {
  return [0, 8, 16, 24].map((i) => readU64(buf, offset + i, littleEndian)) as [bigint, bigint, bigint, bigint];
}

const roundUp8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * Byte order of a record whose offset 8 must hold the magic (docs/stream-format.md, "Byte order"): true = little-endian,
 * false = big-endian, undefined = not a BEGIN record at all. Needs 16 bytes.
 */
export function detectByteOrder(record: Uint8Array): boolean | undefined {
  // 0x2F5BACBAC = 0x00000002_F5BACBAC
  if (readU32(record, 8, true) === 0xf5bacbac && readU32(record, 12, true) === 2) return true;
  if (readU32(record, 8, false) === 0x00000002 && readU32(record, 12, false) === 0xf5bacbac) return false;
  return undefined;
}

/**
 * Payload bytes that follow a record header (docs/stream-format.md, "Record types and payload sizes"). Depends only on the header itself; BEGIN's is
 * `drr_payloadlen`. Values beyond 2^53 come out inexact, which callers reject as too large anyway.
 */
export function payloadSize(header: Uint8Array, littleEndian: boolean): number {
  const type = readU32(header, 0, littleEndian);
  switch (type) {
    case DrrType.BEGIN:
      return readU32(header, 4, littleEndian);
    case DrrType.OBJECT: {
      const rawBonusLength = readU32(header, 36, littleEndian);
      return rawBonusLength !== 0 ? rawBonusLength : roundUp8(readU32(header, 28, littleEndian));
    }
    case DrrType.WRITE:
      return header[50] !== 0 ? readU64Number(header, 96, littleEndian) : readU64Number(header, 32, littleEndian);
    case DrrType.SPILL: {
      const compressed = readU64Number(header, 40, littleEndian);
      return compressed !== 0 ? compressed : readU64Number(header, 16, littleEndian);
    }
    case DrrType.WRITE_EMBEDDED:
      return roundUp8(readU32(header, 52, littleEndian));
    default:
      return 0; // FREEOBJECTS, FREE, END, WRITE_BYREF, OBJECT_RANGE, REDACT (and unknown types)
  }
}

/** The decoded fields of a BEGIN record (docs/stream-format.md, "BEGIN record"). */
export interface BeginRecord {
  littleEndian: boolean;
  /** 1 = substream, 2 = compound header. */
  headerType: number;
  featureFlags: number;
  creationTime: number;
  objsetType: number;
  flags: number;
  toguid: bigint;
  fromguid: bigint;
  toname: string;
  payloadLength: number;
}

const utf8 = new TextDecoder('utf-8');

/**
 * Decode a BEGIN header (312 bytes, type already known to be BEGIN). Throws StreamFormatError
 * for a bad magic; `offset` is the record's position in the stream, for messages.
 * Feature bits above 52 (none is defined) would come out inexact in a number; they still
 * count as unknown bits.
 */
export function parseBegin(record: Uint8Array, offset: number): BeginRecord {
  const littleEndian = detectByteOrder(record);
  if (littleEndian === undefined) {
    const what = offset === 0 ? 'not a ZFS send stream' : 'corrupt stream';
    throw new StreamFormatError('bad-magic', `${what}: bad magic number in BEGIN record`, offset);
  }
  // versioninfo: bits 0..1 header type, bits 2..57 features, 58..63 reserved and ignored.
  const versionLow = readU32(record, littleEndian ? 16 : 20, littleEndian);
  const versionHigh = readU32(record, littleEndian ? 20 : 16, littleEndian);
  const nameBytes = record.subarray(56, 56 + 256);
  const nul = nameBytes.indexOf(0);
  return {
    littleEndian,
    headerType: versionLow & 3,
    featureFlags: (versionLow >>> 2) + (versionHigh & 0x03ffffff) * 2 ** 30,
    creationTime: readU64Number(record, 24, littleEndian),
    objsetType: readU32(record, 32, littleEndian),
    flags: readU32(record, 36, littleEndian),
    toguid: readU64(record, 40, littleEndian),
    fromguid: readU64(record, 48, littleEndian),
    toname: utf8.decode(nul === -1 ? nameBytes : nameBytes.subarray(0, nul)),
    payloadLength: readU32(record, 4, littleEndian),
  };
}
