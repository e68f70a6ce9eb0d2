import { describe, expect, it } from 'vitest';
import { Fletcher4, type Fletcher4Words } from '../../src/stream/fletcher4.js';

const MASK = (1n << 64n) - 1n;

/** Straight from docs/stream-format.md, "Fletcher-4": one BigInt step per 32-bit word, trailing 1–3 bytes ignored. */
function referenceFletcher4(buf: Uint8Array, littleEndian: boolean): Fletcher4Words {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let a = 0n,
    b = 0n,
    c = 0n,
    d = 0n;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    a = (a + BigInt(view.getUint32(i, littleEndian))) & MASK;
    b = (b + a) & MASK;
    c = (c + b) & MASK;
    d = (d + c) & MASK;
  }
  return [a, b, c, d];
}

/** Small deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function randomBytes(length: number, rand: () => number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

describe('Fletcher4', () => {
  it('matches the documented example: LE words [1, 2] → (3, 4, 5, 6)', () => {
    expect(Fletcher4.of(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]))).toEqual([3n, 4n, 5n, 6n]);
    expect(Fletcher4.of(new Uint8Array([0, 0, 0, 1, 0, 0, 0, 2]), false)).toEqual([3n, 4n, 5n, 6n]);
  });

  it('starts at zero and ignores 1–3 trailing bytes of a logical buffer', () => {
    expect(Fletcher4.of(new Uint8Array(0))).toEqual([0n, 0n, 0n, 0n]);
    expect(Fletcher4.of(new Uint8Array([9, 9, 9]))).toEqual([0n, 0n, 0n, 0n]);
    expect(Fletcher4.of(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 7, 7, 7]))).toEqual([3n, 4n, 5n, 6n]);
  });

  it('wraps modulo 2^64', () => {
    const ones = new Uint8Array(4096).fill(0xff);
    expect(Fletcher4.of(ones)).toEqual(referenceFletcher4(ones, true));
    const [, , , d] = Fletcher4.of(ones);
    expect(d).toBeLessThan(1n << 64n); // it overflowed many times on the way
  });

  it('agrees with the BigInt reference on random buffers of random lengths, both byte orders', () => {
    const rand = prng(42);
    for (let round = 0; round < 60; round++) {
      const length = Math.floor(rand() ** 3 * 300_000); // mostly small, some large
      const buf = randomBytes(length, rand);
      for (const littleEndian of [true, false]) {
        expect(Fletcher4.of(buf, littleEndian), `length ${length}, LE ${littleEndian}`).toEqual(referenceFletcher4(buf, littleEndian));
      }
    }
  });

  it('gives the same result whatever the split points, carrying partial words between updates', () => {
    const rand = prng(7);
    for (let round = 0; round < 40; round++) {
      const buf = randomBytes(Math.floor(rand() * 20_000), rand);
      for (const littleEndian of [true, false]) {
        const f = new Fletcher4(littleEndian);
        let pos = 0;
        while (pos < buf.length) {
          const size = rand() < 0.3 ? Math.floor(rand() * 4) : Math.floor(rand() * 3000); // 0..3-byte pieces too
          f.update(buf.subarray(pos, pos + size));
          pos += size;
        }
        expect(f.pendingBytes).toBe(buf.length % 4);
        expect(f.endBuffer().digest()).toEqual(referenceFletcher4(buf, littleEndian));
      }
    }
  });

  it('handles input larger than its 1 MiB staging window, at unaligned offsets', () => {
    const rand = prng(99);
    const backing = randomBytes(3 * 1024 * 1024 + 11, rand);
    const buf = backing.subarray(3); // unaligned start, length not a multiple of 4
    for (const littleEndian of [true, false]) {
      expect(Fletcher4.of(buf, littleEndian)).toEqual(referenceFletcher4(buf, littleEndian));
    }
  });

  it('continues across logical buffers, dropping only the trailing bytes of each (endBuffer)', () => {
    const first = new Uint8Array([1, 0, 0, 0, 0xaa, 0xbb]); // 2 stray bytes: ignored by ZFS
    const second = new Uint8Array([2, 0, 0, 0]);
    const f = new Fletcher4().update(first).endBuffer().update(second).endBuffer();
    expect(f.digest()).toEqual([3n, 4n, 5n, 6n]);
  });

  it('keeps independent states in separate instances (they share one WebAssembly kernel)', () => {
    const rand = prng(5);
    const x = randomBytes(10_001, rand);
    const y = randomBytes(7_777, rand);
    const fx = new Fletcher4(true);
    const fy = new Fletcher4(false);
    for (let i = 0; i < 10_001; i += 1000) {
      fx.update(x.subarray(i, i + 1000));
      fy.update(y.subarray(i, i + 1000));
    }
    expect(fx.endBuffer().digest()).toEqual(referenceFletcher4(x, true));
    expect(fy.endBuffer().digest()).toEqual(referenceFletcher4(y, false));
  });

  it('reset() returns to zero and can switch byte order', () => {
    const buf = new Uint8Array([0, 0, 0, 1, 0, 0, 0, 2]);
    const f = new Fletcher4(true).update(buf);
    f.reset(false).update(buf);
    expect(f.littleEndian).toBe(false);
    expect(f.digest()).toEqual([3n, 4n, 5n, 6n]);
  });

  it('writes and compares checksums as 4 × u64 in the stream byte order', () => {
    for (const littleEndian of [true, false]) {
      const f = new Fletcher4(littleEndian).update(randomBytes(1000, prng(3)));
      const [a, b, c, d] = f.digest();
      const stored = new Uint8Array(40);
      const view = new DataView(stored.buffer);
      for (const [i, word] of [a, b, c, d].entries()) view.setBigUint64(4 + i * 8, word, littleEndian);
      expect(f.matches(stored, 4)).toBe(true);
      const written = new Uint8Array(40);
      f.writeTo(written, 4);
      expect(written).toEqual(stored);
      stored[4 + 31]! ^= 1;
      expect(f.matches(stored, 4)).toBe(false);
    }
  });
});
