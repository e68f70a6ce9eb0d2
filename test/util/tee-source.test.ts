/** util/tee-source.ts: one input read once for several readers, with backpressure (issue 19). */
import { describe, expect, it } from 'vitest';
import type { ByteSource } from '../../src/util/byte-source.js';
import { teeSource } from '../../src/util/tee-source.js';

/** An input of `total` counting bytes, recording how far it was read. */
function counting(total: number): ByteSource & { read: number; destroyed: boolean } {
  const src = {
    read: 0,
    destroyed: false,
    lastDataAt: performance.now(),
    async fill(target: Uint8Array): Promise<number> {
      const n = Math.min(target.length, total - src.read);
      for (let i = 0; i < n; i++) target[i] = (src.read + i) & 0xff;
      src.read += n;
      return n;
    },
    destroy() {
      src.destroyed = true;
    },
  };
  return src;
}

async function drain(b: ByteSource, size = 1000): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const buf = new Uint8Array(size);
    const n = await b.fill(buf);
    parts.push(Buffer.from(buf.subarray(0, n)));
    if (n < size) return Buffer.concat(parts);
  }
}

describe('teeSource', () => {
  it('gives every branch the whole input, read once', async () => {
    const src = counting(100_000);
    const [a, b] = teeSource(src, 2, { pieceBytes: 4096, windowBytes: 16_384 });
    const [x, y] = await Promise.all([drain(a!, 1000), drain(b!, 7000)]);
    expect(x.length).toBe(100_000);
    expect(x.equals(y)).toBe(true);
    expect(src.read).toBe(100_000);
  });

  it('the slowest branch sets the pace: the input is read no further than its window ahead', async () => {
    const src = counting(1_000_000);
    const [fast, slow] = teeSource(src, 2, { pieceBytes: 4096, windowBytes: 16_384 });
    const done = drain(fast!);
    await new Promise((r) => setTimeout(r, 50));
    expect(src.read).toBeLessThanOrEqual(16_384 + 4096);
    // While it waits for its sibling, the fast branch does not look stalled.
    expect(performance.now() - fast!.lastDataAt).toBeLessThan(5);
    await drain(slow!);
    expect((await done).length).toBe(1_000_000);
  });

  it('a destroyed branch holds no one back, and the last one destroys the input', async () => {
    const src = counting(1_000_000);
    const [a, b] = teeSource(src, 2, { pieceBytes: 4096, windowBytes: 16_384 });
    b!.destroy(new Error('target failed'));
    await expect(b!.fill(new Uint8Array(10))).rejects.toThrow('target failed');
    expect((await drain(a!)).length).toBe(1_000_000);
    a!.destroy();
    expect(src.destroyed).toBe(true);
  });
});
