import { describe, expect, it } from 'vitest';
import { Fletcher4 } from '../../src/stream/fletcher4.js';
import { DrrType, Feature, RECORD_SIZE } from '../../src/stream/records.js';
import { peekStreamStart, StreamValidator, type StreamSummary } from '../../src/stream/validator.js';
import { StreamFormatError } from '../../src/util/errors.js';
import { buildStream, compoundSpec, FULL, INCR_AB, INCR_BC, minimalFullStream, patternBytes, rawSpec, RAW_FEATURES, type StreamSpec, writeRecords, xdrNvlist } from '../support/synthetic-stream.js';

function validate(bytes: Uint8Array, pieceSize?: number): StreamSummary {
  const v = new StreamValidator();
  if (pieceSize === undefined) v.push(bytes);
  else for (let pos = 0; pos < bytes.length; pos += pieceSize) v.push(bytes.subarray(pos, pos + pieceSize));
  return v.finish();
}

/** Validate (whole, then in 7-byte pieces: same verdict) and return the StreamFormatError. */
function rejection(bytes: Uint8Array, options?: { allowUnknownFeatures?: boolean }): StreamFormatError {
  const errors = [undefined, 7].map((pieceSize) => {
    const v = new StreamValidator(options);
    try {
      if (pieceSize === undefined) v.push(bytes);
      else for (let pos = 0; pos < bytes.length; pos += pieceSize) v.push(bytes.subarray(pos, pos + pieceSize));
      v.finish();
    } catch (err) {
      expect(err).toBeInstanceOf(StreamFormatError);
      return err as StreamFormatError;
    }
    throw new Error('stream was accepted');
  });
  expect(errors[1]!.message).toBe(errors[0]!.message);
  return errors[0]!;
}

const build = (spec: StreamSpec): Uint8Array => buildStream(spec).bytes;
const full = (littleEndian = true): Uint8Array => build({ littleEndian, substreams: [FULL] });

function patchU32(bytes: Uint8Array, offset: number, value: number, littleEndian = true): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(offset, value, littleEndian);
  return copy;
}

describe('StreamValidator on valid synthetic streams', () => {
  for (const littleEndian of [true, false]) {
    const order = littleEndian ? 'little-endian' : 'big-endian';

    it(`accepts the minimal and the recipe full stream (${order})`, () => {
      expect(validate(minimalFullStream(littleEndian)).substreams[0]!.records).toBe(2);
      const bytes = full(littleEndian);
      const s = validate(bytes);
      expect(s).toMatchObject({ littleEndian, compound: false, totalBytes: 2384 });
      expect(s.header).toBeUndefined();
      expect(s.substreams).toEqual([
        {
          toname: 'pool/fs@a',
          toguid: 0x1111222233334444n,
          fromguid: 0n,
          creationTime: 0x6a000000,
          objsetType: 2,
          beginFlags: 0xc,
          featureFlags: Feature.SA_SPILL,
          features: ['SA_SPILL'],
          raw: false,
          clone: false,
          records: 6,
          bytes: 2384,
          nvlistBytes: 0,
          endChecksum: Fletcher4.of(bytes.subarray(0, 2384 - RECORD_SIZE), littleEndian),
        },
      ]);
    });

    it(`accepts a -I compound stream and reports its chain (${order})`, () => {
      const s = validate(build(compoundSpec(littleEndian)));
      expect(s.compound).toBe(true);
      expect(s.littleEndian).toBe(littleEndian);
      expect(s.header).toEqual({ toname: 'pool/fs@c', featureFlags: 0, nvlistBytes: 0 });
      expect(s.substreams.map((x) => [x.toname, x.fromguid, x.toguid])).toEqual([
        ['pool/fs@b', FULL.toguid, INCR_AB.toguid],
        ['pool/fs@c', INCR_AB.toguid, INCR_BC.toguid],
      ]);
    });

    it(`accepts a raw stream with a crypt_keydata nvlist (${order})`, () => {
      const spec = rawSpec(littleEndian);
      spec.substreams[0]!.records = [{ kind: 'object', object: 1 }, ...writeRecords(3, patternBytes(4096))];
      const [sub] = validate(build(spec)).substreams;
      expect(sub).toMatchObject({ raw: true, featureFlags: 0x1420004, features: ['SA_SPILL', 'LZ4', 'COMPRESSED', 'RAW'] });
      expect(sub!.nvlistBytes % 8).toBe(0);
      expect(sub!.nvlistBytes).toBeGreaterThan(300);
    });
  }

  it('accepts an incremental stream', () => {
    const [sub] = validate(build({ substreams: [INCR_AB] })).substreams;
    expect(sub!.fromguid).toBe(FULL.toguid);
  });

  it('re-detects the byte order at every BEGIN of a compound stream', () => {
    const spec = compoundSpec(true);
    spec.substreams = [INCR_AB, { ...INCR_BC, littleEndian: false }];
    const s = validate(build(spec));
    expect(s.littleEndian).toBe(true);
    expect(s.substreams[1]!.toguid).toBe(INCR_BC.toguid);
  });

  it('accepts a -R style compound whose header carries an XDR nvlist, and a -p style one with a single full', () => {
    const nvlist = xdrNvlist({ tosnap: 'c', fss: {} });
    const s = validate(build({ ...compoundSpec(), compound: { toname: 'pool/fs@c', nvlist } }));
    expect(s.header!.nvlistBytes).toBe(nvlist.length);
    const single = validate(build({ compound: { toname: 'pool/fs@a', nvlist: xdrNvlist({ not_recursive: true }) }, substreams: [FULL] }));
    expect(single.substreams).toHaveLength(1);
  });

  it('accepts all-zero ("unchecked") trailing checksums: the END checksum still covers everything', () => {
    const bytes = build({ substreams: [FULL], zeroTrailingChecksums: true });
    expect(bytes.subarray(RECORD_SIZE + 280, RECORD_SIZE * 2).every((b) => b === 0)).toBe(true);
    expect(validate(bytes).substreams[0]!.records).toBe(6);
  });

  it('walks 16 MiB large-block WRITEs that straddle chunks of every size', () => {
    const block = patternBytes(16 << 20, 3);
    const bytes = build({ substreams: [{ ...FULL, features: Feature.SA_SPILL | Feature.LARGE_BLOCKS, records: writeRecords(3, block) }] });
    const whole = validate(bytes);
    expect(whole.totalBytes).toBe(3 * (RECORD_SIZE + (16 << 20)) + 2 * RECORD_SIZE);
    for (const piece of [1_000_003, 64 << 20, 4093]) expect(validate(bytes, piece)).toEqual(whole);
  });

  it('gives the same summary fed one byte at a time', () => {
    const bytes = build(compoundSpec());
    expect(validate(bytes, 1)).toEqual(validate(bytes));
  });

  it('counts bytesSeen and keeps reporting the first error', () => {
    const v = new StreamValidator();
    const bytes = full();
    v.push(bytes.subarray(0, 100));
    expect(v.bytesSeen).toBe(100);
    bytes[RECORD_SIZE + 20]! ^= 1;
    let first: unknown;
    try {
      v.push(bytes.subarray(100));
    } catch (err) {
      first = err;
    }
    expect(first).toBeInstanceOf(StreamFormatError);
    expect(() => v.push(new Uint8Array(1))).toThrow(first as Error);
    expect(() => v.finish()).toThrow(first as Error);
  });
});

describe('StreamValidator rejects (every documented refusal and more)', () => {
  it('a flipped payload byte: the next record checksum mismatches', () => {
    const { bytes, records } = buildStream({ substreams: [FULL], faults: { flipPayloadByte: true } });
    const err = rejection(bytes);
    expect(err.message).toMatch(/^checksum mismatch in FREEOBJECTS record \(substream pool\/fs@a\)/);
    expect(err.offset).toBe(records.find((r) => r.type === DrrType.FREEOBJECTS)!.offset);
  });

  it('a stream without its last 312 bytes (END missing)', () => {
    const err = rejection(build({ substreams: [FULL], faults: { dropLastBytes: RECORD_SIZE } }));
    expect(err.message).toMatch(/^stream ended without an END record: truncated \(substream pool\/fs@a\)/);
    expect(err.offset).toBe(2384 - RECORD_SIZE);
  });

  it('a wrong END checksum', () => {
    const err = rejection(build({ substreams: [FULL], faults: { wrongEndChecksum: true } }));
    expect(err.message).toMatch(/^END checksum mismatch \(substream pool\/fs@a\)/);
    expect(err.offset).toBe(2384 - RECORD_SIZE);
  });

  it('an unknown feature bit (1<<30), unless explicitly allowed', () => {
    const bytes = build({ substreams: [FULL], faults: { extraFeatureBits: 1 << 30 } });
    expect(rejection(bytes).message).toMatch(/unsupported feature flags 0x40000000 in BEGIN record of "pool\/fs@a"/);
    const v = new StreamValidator({ allowUnknownFeatures: true });
    v.push(bytes);
    expect(v.finish().substreams[0]!.featureFlags).toBe(Feature.SA_SPILL + 2 ** 30);
  });

  it('a bad magic, an empty input, random bytes and a text file', () => {
    expect(rejection(build({ substreams: [FULL], faults: { badMagic: true } })).message).toMatch(/bad magic number/);
    expect(rejection(new Uint8Array(0)).message).toMatch(/^empty input/);
    expect(rejection(patternBytes(100_000, 9)).message).toMatch(/^not a ZFS send stream: bad magic/);
    const text = new TextEncoder().encode('#!/bin/sh\necho "this is not a zfs send stream"\n'.repeat(20));
    expect(rejection(text).message).toMatch(/^not a ZFS send stream/);
    expect(rejection(new TextEncoder().encode('hello\n')).message).toMatch(/too short to be a ZFS send stream/);
    // Rejected as soon as the magic is visible, long before a whole record has arrived.
    expect(() => new StreamValidator().push(text.subarray(0, 16))).toThrow(/bad magic/);
  });

  it('a BEGIN inside a substream', () => {
    const err = rejection(build({ substreams: [FULL], faults: { beginInsideSubstream: true } }));
    expect(err.message).toMatch(/^BEGIN record inside a substream, the previous END is missing \(substream pool\/fs@a\)/);
    expect(err.offset).toBe(2384 - RECORD_SIZE);
  });

  it('a compound stream without its conclusion END, or cut anywhere before it', () => {
    const { bytes, records } = buildStream({ ...compoundSpec(), faults: { omitConclusion: true } });
    expect(rejection(bytes).message).toMatch(/^compound stream ended without its conclusion END record: truncated/);
    expect(rejection(bytes.subarray(0, RECORD_SIZE)).message).toMatch(/ended right after its header BEGIN/);
    const lastEnd = records.filter((r) => r.type === DrrType.END).at(-1)!.offset;
    expect(rejection(bytes.subarray(0, lastEnd)).message).toMatch(/^stream ended without an END record: truncated \(substream pool\/fs@c\)/);
  });

  it('trailing garbage or a second stream after a complete stream', () => {
    for (const garbage of [new Uint8Array([0]), patternBytes(5000)]) {
      const err = rejection(build({ substreams: [FULL], faults: { trailingGarbage: garbage } }));
      expect(err.message).toMatch(/^unexpected data after the end of the stream/);
      expect(err.offset).toBe(2384);
    }
    const twice = new Uint8Array([...full(), ...full()]);
    expect(rejection(twice).offset).toBe(2384);
    const afterCompound = new Uint8Array([...build(compoundSpec()), 1, 2, 3]);
    expect(rejection(afterCompound).message).toMatch(/after the end of the stream/);
  });

  it('truncation inside a payload, a header, or anywhere at all', () => {
    const { bytes, records } = buildStream({ substreams: [FULL] });
    const write = records.find((r) => r.type === DrrType.WRITE)!;
    const mid = write.offset + RECORD_SIZE + 100;
    const err = rejection(bytes.subarray(0, mid));
    expect(err.message).toMatch(/^stream ends inside a WRITE payload: truncated \(substream pool\/fs@a\)/);
    expect(err.offset).toBe(mid);
    expect(rejection(bytes.subarray(0, write.offset + 5)).message).toMatch(/^stream ends inside a record header \(5 of 312 bytes\): truncated/);
    expect(rejection(bytes.subarray(0, 200)).message).toMatch(/^stream ends inside its first BEGIN record: truncated/);
    for (const stream of [bytes, build(compoundSpec()), build(rawSpec(false))]) {
      for (let cut = 0; cut < stream.length; cut++) {
        expect(() => validate(stream.subarray(0, cut)), `cut at ${cut}`).toThrow(StreamFormatError);
      }
    }
  });

  it('says by its kind, not its words, whether a stream is truncated, not a stream at all, or corrupt', () => {
    const { bytes, records } = buildStream({ substreams: [FULL] });
    const kindAt = (cut: number): string => {
      try {
        validate(bytes.subarray(0, cut));
      } catch (err) {
        return (err as StreamFormatError).kind;
      }
      return 'accepted';
    };
    // Every cut past the first record's magic is a truncation (what a resume relies on).
    for (let cut = 16; cut < bytes.length; cut++) expect(kindAt(cut), `cut at ${cut}`).toBe('truncated');
    expect(rejection(new TextEncoder().encode('this is plainly a text file, long enough to be looked at')).kind).toBe('bad-magic');
    const trailing = new Uint8Array(bytes.length + 1);
    trailing.set(bytes);
    expect(rejection(trailing).kind).toBe('corrupt');
    const flipped = bytes.slice();
    flipped[records.find((r) => r.type === DrrType.WRITE)!.offset + RECORD_SIZE + 3]! ^= 1;
    expect(rejection(flipped).kind).toBe('corrupt');
  });

  it('any single flipped bit anywhere in a stream', () => {
    const spec = rawSpec();
    spec.substreams[0]!.records = [{ kind: 'object', object: 1, bonus: patternBytes(20) }, ...writeRecords(2, patternBytes(512))];
    for (const stream of [full(), full(false), build(compoundSpec()), build(spec)]) {
      for (let pos = 0; pos < stream.length; pos++) {
        for (const bit of [0x01, 0x80]) {
          const copy = stream.slice();
          copy[pos]! ^= bit;
          expect(() => validate(copy), `bit ${bit} of byte ${pos}`).toThrow(StreamFormatError);
        }
      }
    }
  });

  it('reports where a flipped byte was caught, for each kind of position', () => {
    const { bytes, records } = buildStream({ substreams: [FULL] });
    const at = (type: number) => records.find((r) => r.type === type)!.offset;
    const flipped = (pos: number) => {
      const copy = bytes.slice();
      copy[pos]! ^= 0x10;
      return rejection(copy);
    };
    const endOffset = at(DrrType.END);
    // A header field of a content record: its own trailing checksum.
    expect(flipped(at(DrrType.WRITE) + 24)).toMatchObject({ offset: at(DrrType.WRITE), message: expect.stringMatching(/^checksum mismatch in WRITE record/) });
    // The trailing checksum itself.
    expect(flipped(at(DrrType.OBJECT) + 290)).toMatchObject({ offset: at(DrrType.OBJECT), message: expect.stringMatching(/^checksum mismatch in OBJECT record/) });
    // A payload byte: the next record.
    expect(flipped(at(DrrType.WRITE) + RECORD_SIZE + 511).offset).toBe(at(DrrType.FREEOBJECTS));
    // The END checksum.
    expect(flipped(endOffset + 20)).toMatchObject({ offset: endOffset, message: expect.stringMatching(/^END checksum mismatch/) });
    // A BEGIN field (toguid): BEGIN has no checksum of its own, the next record's running one catches it…
    expect(flipped(44)).toMatchObject({ offset: RECORD_SIZE, message: expect.stringMatching(/^checksum mismatch in OBJECT record/) });
    // …or, in a BEGIN+END stream, the END checksum.
    const minimal = minimalFullStream();
    minimal[44]! ^= 0x10;
    expect(rejection(minimal)).toMatchObject({ offset: RECORD_SIZE, message: expect.stringMatching(/^END checksum mismatch/) });
    // The END's own toguid: its trailing checksum.
    expect(flipped(endOffset + 40)).toMatchObject({ offset: endOffset, message: expect.stringMatching(/^checksum mismatch in END record/) });
    // A type byte: an impossible record type, or one that now says BEGIN.
    const objectAsBegin = bytes.slice();
    objectAsBegin[at(DrrType.OBJECT)] = DrrType.BEGIN;
    expect(rejection(objectAsBegin).message).toMatch(/^BEGIN record inside a substream, without the BEGIN magic: corrupt record/);
    expect(flipped(at(DrrType.FREE) + 3)).toMatchObject({ offset: at(DrrType.FREE), message: expect.stringMatching(/^unknown record type/) });
    // The first record's magic and type.
    expect(flipped(9)).toMatchObject({ offset: 0, message: expect.stringMatching(/bad magic/) });
    expect(flipped(0)).toMatchObject({ offset: 0, message: expect.stringMatching(/the first record is unknown type 16, not BEGIN/) });
  });

  it('deduplicated streams, pointing at zstream redup', () => {
    const bytes = build({ substreams: [{ ...FULL, features: Feature.DEDUP | Feature.DEDUPPROPS | Feature.SA_SPILL }] });
    expect(rejection(bytes).message).toMatch(/deduplicated stream .*zstream redup/);
  });

  it('a toname without @, an unknown header type, an oversized nvlist', () => {
    expect(rejection(build({ substreams: [{ ...FULL, toname: 'pool/fs' }] })).message).toMatch(/does not name a snapshot \(no '@' in toname\)/);
    expect(rejection(patchU32(full(), 16, (Feature.SA_SPILL << 2) | 3)).message).toMatch(/unsupported stream header type 3/);
    const huge = patchU32(full(), 4, 64 * 1024 * 1024 + 8);
    const v = new StreamValidator();
    expect(() => v.push(huge.subarray(0, RECORD_SIZE))).toThrow(/carries a 67108872-byte nvlist, above the 64 MiB limit/);
  });

  it('an unknown record type, and a payload claimed beyond 16 MiB, even with correct checksums', () => {
    const custom = (type: number, size = 0) =>
      build({
        substreams: [
          {
            ...FULL,
            records: [
              {
                kind: 'custom',
                fill: (h, le) => {
                  h.setUint32(0, type, le);
                  h.setBigUint64(32, BigInt(size), le);
                },
              },
            ],
          },
        ],
      });
    expect(rejection(custom(11)).message).toMatch(/^unknown record type 11: corrupt stream \(substream pool\/fs@a\)/);
    expect(rejection(custom(DrrType.WRITE, 32 << 20)).message).toMatch(/^WRITE record claims a 33554432-byte payload, above the 16 MiB maximum/);
    expect(rejection(custom(DrrType.WRITE, 2 ** 60)).message).toMatch(/^WRITE record claims a \d+-byte payload/);
  });

  it('structural errors of compound streams', () => {
    const nested = buildStream(compoundSpec());
    const firstSub = nested.records.filter((r) => r.type === DrrType.BEGIN)[1]!.offset;
    expect(rejection(patchU32(nested.bytes, firstSub + 16, (Feature.SA_SPILL << 2) | 2)).message).toMatch(/^compound stream nested inside a compound stream/);
    expect(rejection(build({ ...compoundSpec(), substreams: [] })).message).toMatch(/^compound stream contains no substreams/);
    // Header END checksum, a content record in place of a BEGIN, a dirty conclusion.
    const headerEnd = nested.records[1]!.offset;
    expect(rejection(patchU32(nested.bytes, headerEnd + 8, 1)).message).toMatch(/^incorrect header checksum in the compound stream header END/);
    expect(rejection(patchU32(nested.bytes, headerEnd + 40, 1)).message).toMatch(/^unexpected non-zero bytes in the compound stream header END/);
    expect(rejection(patchU32(nested.bytes, firstSub, DrrType.FREE)).message).toMatch(/^expected a BEGIN record or the conclusion END in the compound stream, found FREE/);
    expect(rejection(patchU32(nested.bytes, nested.bytes.length - 100, 1)).message).toMatch(/^malformed conclusion END record/);
    const headerFollowedByBegin = patchU32(nested.bytes, headerEnd, DrrType.BEGIN);
    expect(rejection(headerFollowedByBegin).message).toMatch(/^compound stream header is followed by a BEGIN record instead of its END/);
  });
});

describe('peekStreamStart', () => {
  it('names a simple stream from its first record', () => {
    const bytes = build({ substreams: [INCR_AB] });
    expect(peekStreamStart(bytes.subarray(0, RECORD_SIZE - 1))).toBeUndefined();
    expect(peekStreamStart(bytes.subarray(0, RECORD_SIZE))).toEqual({
      compound: false,
      littleEndian: true,
      toname: 'pool/fs@b',
      first: { toname: 'pool/fs@b', toguid: INCR_AB.toguid, fromguid: FULL.toguid, creationTime: 0x6a000100, featureFlags: Feature.SA_SPILL, raw: false },
    });
    expect(peekStreamStart(build(rawSpec(false)))).toMatchObject({ littleEndian: false, first: { raw: true, featureFlags: RAW_FEATURES } });
  });

  it('names a compound stream after its header, its END and the first substream BEGIN', () => {
    const nvlist = xdrNvlist({ tosnap: 'c', fss: {} });
    const bytes = build({ ...compoundSpec(), compound: { toname: 'pool/fs@c', nvlist } });
    const needed = RECORD_SIZE + nvlist.length + 2 * RECORD_SIZE;
    expect(peekStreamStart(bytes.subarray(0, needed - 1))).toBeUndefined();
    expect(peekStreamStart(bytes.subarray(0, needed))).toEqual({
      compound: true,
      littleEndian: true,
      toname: 'pool/fs@c',
      first: { toname: 'pool/fs@b', toguid: INCR_AB.toguid, fromguid: FULL.toguid, creationTime: 0x6a000100, featureFlags: Feature.SA_SPILL, raw: false },
    });
  });

  it('throws StreamFormatError for a non-stream as soon as the magic is visible', () => {
    expect(peekStreamStart(new Uint8Array(10))).toBeUndefined();
    expect(() => peekStreamStart(new TextEncoder().encode('this is plainly a text file'))).toThrow(StreamFormatError);
    expect(() => peekStreamStart(build({ substreams: [FULL], faults: { badMagic: true } }))).toThrow(/bad magic/);
    expect(() => peekStreamStart(build({ ...compoundSpec(), substreams: [] }))).toThrow(/no substreams/);
  });
});
