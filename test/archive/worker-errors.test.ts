import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkJobError, ChunkPool } from '../../src/archive/pipeline/chunk-pool.js';
import { StreamCheck } from '../../src/archive/pipeline/stream-check.js';
import { StreamFormatError } from '../../src/util/errors.js';
import { buildStream, FULL } from '../support/synthetic-stream.js';

/** Errors found in a worker thread reach the main thread with their class, kind and fields. */

function shared(bytes: Uint8Array): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(Math.max(1, bytes.length));
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

async function checkError(bytes: Uint8Array): Promise<unknown> {
  const check = new StreamCheck();
  try {
    await check.feed(shared(bytes), 0, bytes.length);
    await check.finish();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await check.close();
  }
}

describe('errors across the worker boundary', () => {
  let pool: ChunkPool;
  beforeAll(() => {
    pool = new ChunkPool(1);
  });
  afterAll(async () => {
    await pool.close();
  });

  it('a truncated stream: StreamFormatError of kind truncated, with its offset', async () => {
    const { bytes } = buildStream({ substreams: [FULL] });
    const err = await checkError(bytes.subarray(0, bytes.length - 100));
    expect(err).toBeInstanceOf(StreamFormatError);
    expect((err as StreamFormatError).kind).toBe('truncated');
    expect((err as StreamFormatError).offset).toBe(bytes.length - 100);
  });

  it('a stream with trailing bytes: kind corrupt; a text file: kind bad-magic at offset 0', async () => {
    const { bytes } = buildStream({ substreams: [FULL] });
    const trailing = new Uint8Array(bytes.length + 8);
    trailing.set(bytes);
    expect(await checkError(trailing)).toMatchObject({ name: 'StreamFormatError', kind: 'corrupt' });
    const text = new TextEncoder().encode('not a stream, just some text that is long enough');
    expect(await checkError(text)).toMatchObject({ name: 'StreamFormatError', kind: 'bad-magic', offset: 0 });
  });

  it('bytes that are no zstd frame: ChunkJobError of kind frame-invalid', async () => {
    const garbage = randomBytes(5000);
    const { createHash } = await import('node:crypto');
    const buffer = shared(garbage);
    const err = await pool
      .decompress({
        stored: buffer,
        storedOffset: 0,
        storedLength: garbage.length,
        expectStoredSha256: createHash('sha256').update(garbage).digest('hex'),
        raw: new SharedArrayBuffer(1 << 20),
        maxRawSize: 1 << 20,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ChunkJobError);
    expect((err as ChunkJobError).kind).toBe('frame-invalid');
  });

  it('a closed pool: ChunkJobError of kind pool-failed', async () => {
    const closed = new ChunkPool(1);
    await closed.close();
    const err = await closed.compress({ buffer: shared(new Uint8Array(4)), offset: 0, length: 4, level: 3, out: new SharedArrayBuffer(1024) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChunkJobError);
    expect((err as ChunkJobError).kind).toBe('pool-failed');
  });
});
