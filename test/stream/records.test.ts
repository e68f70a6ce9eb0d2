import { describe, expect, it } from 'vitest';
import { detectByteOrder, DrrType, drrTypeName, Feature, featureNames, KNOWN_FEATURES, parseBegin, payloadSize, RECORD_SIZE, unknownFeatureBits } from '../../src/stream/records.js';
import { StreamFormatError } from '../../src/util/errors.js';
import { minimalFullStream } from '../support/synthetic-stream.js';

/** A 312-byte header with a few fields set, in either byte order. */
function header(type: number, littleEndian: boolean, fields: Record<number, [number, 'u8' | 'u32' | 'u64']>): Uint8Array {
  const bytes = new Uint8Array(RECORD_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, littleEndian);
  for (const [offset, [value, width]] of Object.entries(fields)) {
    if (width === 'u8') view.setUint8(Number(offset), value);
    else if (width === 'u32') view.setUint32(Number(offset), value, littleEndian);
    else view.setBigUint64(Number(offset), BigInt(value), littleEndian);
  }
  return bytes;
}

describe('record constants', () => {
  it('numbers the record types as zfs_ioctl.h does', () => {
    expect(DrrType.END).toBe(5);
    expect(DrrType.REDACT).toBe(10);
    expect(drrTypeName(3)).toBe('WRITE');
    expect(drrTypeName(11)).toBe('unknown type 11');
  });

  it('knows the documented feature flags', () => {
    expect(Feature.RAW).toBe(0x1000000);
    expect(featureNames(0x1420004)).toEqual(['SA_SPILL', 'LZ4', 'COMPRESSED', 'RAW']);
    expect(featureNames(0x3420004)).toEqual(['SA_SPILL', 'LZ4', 'COMPRESSED', 'RAW', 'ZSTD']);
    expect(featureNames(Feature.LONGNAME | Feature.LARGE_MICROZAP)).toEqual(['LONGNAME', 'LARGE_MICROZAP']);
    expect(unknownFeatureBits(KNOWN_FEATURES)).toBe(0);
    expect(unknownFeatureBits(0x4 | (1 << 30))).toBe(1 << 30);
    expect(unknownFeatureBits(1 << 18)).toBe(1 << 18); // reserved (Delphix)
    expect(unknownFeatureBits(2 ** 40 + 4)).toBe(2 ** 40);
  });
});

describe('detectByteOrder', () => {
  it('recognises the magic in both byte orders', () => {
    expect(detectByteOrder(minimalFullStream(true))).toBe(true);
    expect(detectByteOrder(minimalFullStream(false))).toBe(false);
    expect(detectByteOrder(new Uint8Array(RECORD_SIZE))).toBeUndefined();
    expect(Array.from(minimalFullStream().subarray(8, 16))).toEqual([0xac, 0xcb, 0xba, 0xf5, 2, 0, 0, 0]);
  });
});

describe('payloadSize', () => {
  for (const le of [true, false]) {
    const order = le ? 'LE' : 'BE';
    it(`computes every record type's payload (${order})`, () => {
      expect(payloadSize(header(DrrType.BEGIN, le, { 4: [1028, 'u32'] }), le)).toBe(1028);
      expect(payloadSize(header(DrrType.OBJECT, le, { 28: [13, 'u32'] }), le)).toBe(16); // roundup8(bonuslen)
      expect(payloadSize(header(DrrType.OBJECT, le, { 28: [13, 'u32'], 36: [320, 'u32'] }), le)).toBe(320); // raw
      expect(payloadSize(header(DrrType.WRITE, le, { 32: [131072, 'u64'] }), le)).toBe(131072);
      expect(payloadSize(header(DrrType.WRITE, le, { 32: [131072, 'u64'], 50: [15, 'u8'], 96: [4608, 'u64'] }), le)).toBe(4608);
      expect(payloadSize(header(DrrType.SPILL, le, { 16: [512, 'u64'] }), le)).toBe(512);
      expect(payloadSize(header(DrrType.SPILL, le, { 16: [512, 'u64'], 40: [96, 'u64'] }), le)).toBe(96);
      expect(payloadSize(header(DrrType.WRITE_EMBEDDED, le, { 52: [37, 'u32'] }), le)).toBe(40);
      for (const t of [DrrType.FREEOBJECTS, DrrType.FREE, DrrType.END, DrrType.WRITE_BYREF, DrrType.OBJECT_RANGE, DrrType.REDACT]) {
        expect(payloadSize(header(t, le, { 4: [999, 'u32'], 32: [4096, 'u64'] }), le)).toBe(0);
      }
    });
  }
});

describe('parseBegin', () => {
  it('decodes the BEGIN of the minimal stream in both byte orders', () => {
    for (const le of [true, false]) {
      expect(parseBegin(minimalFullStream(le).subarray(0, RECORD_SIZE), 0)).toEqual({
        littleEndian: le,
        headerType: 1,
        featureFlags: Feature.SA_SPILL,
        creationTime: 0x6a000000,
        objsetType: 2,
        flags: 0xc,
        toguid: 0x1111222233334444n,
        fromguid: 0n,
        toname: 'pool/fs@a',
        payloadLength: 0,
      });
    }
  });

  it('splits versioninfo into header type and features, including bits above 31', () => {
    const rec = minimalFullStream().slice(0, RECORD_SIZE);
    new DataView(rec.buffer).setBigUint64(16, (0x1420004n << 2n) | 2n | (1n << 40n), true);
    const begin = parseBegin(rec, 0);
    expect(begin.headerType).toBe(2);
    expect(begin.featureFlags).toBe(0x1420004 + 2 ** 38);
  });

  it('throws StreamFormatError for a bad magic', () => {
    expect(() => parseBegin(new Uint8Array(RECORD_SIZE), 100)).toThrow(StreamFormatError);
  });
});
