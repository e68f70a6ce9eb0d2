/**
 * The validator on real `zfs send` output (test/fixtures/streams, see its README for origins).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Fletcher4 } from '../../src/stream/fletcher4.js';
import { DrrType, drrTypeName, payloadSize, readU32, RECORD_SIZE } from '../../src/stream/records.js';
import { peekStreamStart, StreamValidator, type StreamSummary } from '../../src/stream/validator.js';

const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/streams/', import.meta.url));

function loadFixture(name: string): Uint8Array {
  const path = FIXTURE_DIR + name;
  if (name.endsWith('.bz2')) return new Uint8Array(execFileSync('bzip2', ['-dc', path], { maxBuffer: 256 << 20 }));
  return new Uint8Array(readFileSync(path));
}

function validate(bytes: Uint8Array, pieces?: () => number): StreamSummary {
  const v = new StreamValidator();
  if (!pieces) v.push(bytes);
  else
    for (let pos = 0; pos < bytes.length; ) {
      const size = pieces();
      v.push(bytes.subarray(pos, pos + size));
      pos += size;
    }
  expect(v.bytesSeen).toBe(bytes.length);
  return v.finish();
}

function prng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

/** Record types per substream, by a walk independent of the validator's state machine. */
function recordTypes(bytes: Uint8Array): Set<string> {
  const seen = new Set<string>();
  for (let pos = 0; pos < bytes.length; ) {
    const type = readU32(bytes, pos, true);
    seen.add(drrTypeName(type));
    pos += RECORD_SIZE + payloadSize(bytes.subarray(pos, pos + RECORD_SIZE), true);
  }
  return seen;
}

const names = readdirSync(FIXTURE_DIR)
  .filter((n) => !n.endsWith('.md'))
  .sort();
const fixtures = new Map(names.map((n) => [n, loadFixture(n)]));
const summaries = new Map<string, StreamSummary>();
/** Validated on first use, inside a test, so a failure is reported against that test. */
function summary(name: string): StreamSummary {
  if (!summaries.has(name)) summaries.set(name, validate(fixtures.get(name)!));
  return summaries.get(name)!;
}
const only = (name: string) => {
  const s = summary(name);
  expect(s.substreams).toHaveLength(1);
  return s.substreams[0]!;
};

describe('real fixture streams', () => {
  it('has all eight fixtures', () => {
    expect(names).toHaveLength(8);
  });

  for (const name of names) {
    it(`${name}: valid, consumed to its last byte, same summary in random-sized pieces`, () => {
      const bytes = fixtures.get(name)!;
      const whole = summary(name);
      expect(whole.totalBytes).toBe(bytes.length);
      expect(whole.littleEndian).toBe(true);
      const rand = prng(bytes.length);
      expect(validate(bytes, () => 1 + Math.floor(rand() * 5000))).toEqual(whole);
      expect(validate(bytes, () => 1 + Math.floor(rand() ** 4 * 100_000))).toEqual(whole);
      expect(structuredClone(whole)).toEqual(whole);
      const start = peekStreamStart(bytes)!;
      expect(start.compound).toBe(whole.compound);
      expect(start.first.toguid).toBe(whole.substreams[0]!.toguid);
      expect(start.first.raw).toBe(whole.substreams[0]!.raw);
    });
  }

  it('gives the same summary when fed one byte at a time', () => {
    const bytes = fixtures.get('zse-tiny-incremental.zfs')!;
    expect(validate(bytes, () => 1)).toEqual(summary('zse-tiny-incremental.zfs'));
  });

  it('zse-tiny-full / zse-tiny-incremental: a plain full stream and its -i incremental', () => {
    const full = only('zse-tiny-full.zfs');
    const incr = only('zse-tiny-incremental.zfs');
    expect(full).toMatchObject({
      toname: 'labpool/zfs-send-tiny@base',
      toguid: 0xfd55e3f3116cd177n,
      fromguid: 0n,
      objsetType: 2,
      beginFlags: 0xc,
      featureFlags: 0x4,
      features: ['SA_SPILL'],
      raw: false,
      clone: false,
      records: 41,
      bytes: 52072,
      nvlistBytes: 0,
    });
    expect(incr.toname).toBe('labpool/zfs-send-tiny@incremental');
    expect(incr.fromguid).toBe(full.toguid);
    expect(incr.raw).toBe(false);
    expect(summary('zse-tiny-full.zfs').compound).toBe(false);
  });

  it('END checksums equal an independent fletcher-4 of the substream', () => {
    for (const name of ['zse-tiny-full.zfs', 'zse-encrypted-raw-s1.zfs']) {
      const bytes = fixtures.get(name)!;
      const beforeEnd = bytes.subarray(0, bytes.length - RECORD_SIZE);
      expect(only(name).endChecksum).toEqual(Fletcher4.of(beforeEnd));
    }
  });

  it('raw fixtures are RAW, with a crypt_keydata nvlist', () => {
    for (const name of ['zse-encrypted-raw-s1.zfs', 'zse-advanced-raw-full.zfs', 'zse-advanced-raw-incremental.zfs', 'openzfs-decompress-crypt.zsend.bz2']) {
      const sub = only(name);
      expect(sub.raw, name).toBe(true);
      expect(sub.features, name).toContain('RAW');
      expect(sub.nvlistBytes, name).toBeGreaterThanOrEqual(1028);
    }
    expect(only('zse-encrypted-raw-s1.zfs').featureFlags).toBe(0x1420004);
    expect(only('openzfs-decompress-crypt.zsend.bz2').nvlistBytes).toBe(1536);
    const full = only('zse-advanced-raw-full.zfs');
    const incr = only('zse-advanced-raw-incremental.zfs');
    expect(full.featureFlags).toBe(0x3420004);
    expect(full.features).toContain('ZSTD');
    expect(incr.fromguid).toBe(full.toguid);
    expect(incr.toname).toBe('labpool/zfse-raw-advanced@s2');
  });

  it('all-drr-types-base: a full --redact stream with REDACT, SPILL and WRITE_EMBEDDED records', () => {
    const base = only('openzfs-little-endian-all-drr-types-base-NATIVE.zsend.bz2');
    expect(base).toMatchObject({ toname: 'test/source@baseline', fromguid: 0n, featureFlags: 0x630004, raw: false, nvlistBytes: 56 });
    expect(base.features).toEqual(['SA_SPILL', 'EMBED_DATA', 'LZ4', 'REDACTED', 'COMPRESSED']);
    const types = recordTypes(fixtures.get('openzfs-little-endian-all-drr-types-base-NATIVE.zsend.bz2')!);
    for (const t of ['BEGIN', 'OBJECT', 'FREEOBJECTS', 'WRITE', 'FREE', 'END', 'SPILL', 'WRITE_EMBEDDED', 'REDACT']) {
      expect(types, t).toContain(t);
    }
  });

  it('all-drr-types-incr: a -Rcew -i compound stream mixing a non-raw clone incremental and a raw child', () => {
    const s = summary('openzfs-little-endian-all-drr-types-incr-NATIVE.zsend.bz2');
    expect(s.compound).toBe(true);
    expect(s.header).toEqual({ toname: 'test/redacted@clean', featureFlags: 0, nvlistBytes: 988 });
    expect(s.substreams.map((x) => [x.toname, x.raw, x.clone, x.beginFlags])).toEqual([
      ['test/redacted@clean', false, true, 0xd],
      ['test/redacted/encrypted@clean', true, false, 0xc],
    ]);
    const [parent, child] = s.substreams;
    const base = only('openzfs-little-endian-all-drr-types-base-NATIVE.zsend.bz2');
    expect(parent!.fromguid).toBe(base.toguid); // incremental from the base stream's snapshot
    expect(parent!.featureFlags).toBe(0x430004);
    expect(child!.fromguid).toBe(0n);
    expect(child!.featureFlags).toBe(0x1420004);
    // Header BEGIN + nvlist + header END + substreams + conclusion END = the whole file.
    expect(RECORD_SIZE + 988 + RECORD_SIZE + parent!.bytes + child!.bytes + RECORD_SIZE).toBe(s.totalBytes);
    const start = peekStreamStart(fixtures.get('openzfs-little-endian-all-drr-types-incr-NATIVE.zsend.bz2')!)!;
    expect(start.toname).toBe('test/redacted@clean');
    expect(start.first.toname).toBe('test/redacted@clean');
    expect(start.first.fromguid).toBe(base.toguid);
    expect(recordTypes(fixtures.get('openzfs-little-endian-all-drr-types-incr-NATIVE.zsend.bz2')!)).toContain(drrTypeName(DrrType.OBJECT_RANGE));
  });
});
