import type { Readable } from 'node:stream';
import type { BufferPool } from '../util/semaphore.js';

export interface RawChunk {
  index: number;
  /** Shared memory so worker threads read the chunk in place. */
  buffer: SharedArrayBuffer;
  length: number;
}

/**
 * Cuts a byte stream into fixed-size chunks in reusable shared buffers. Waiting for a free
 * buffer is the backpressure: the input is not read while every buffer is in flight.
 * The last chunk may be shorter; an empty input yields no chunk.
 */
export async function* readChunks(
  input: Readable,
  buffers: BufferPool<SharedArrayBuffer>,
  chunkSize: number,
): AsyncGenerator<RawChunk> {
  let index = 0;
  let current: SharedArrayBuffer | undefined;
  let view: Uint8Array | undefined;
  let filled = 0;
  for await (const piece of input as AsyncIterable<Buffer | string>) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
    let pos = 0;
    while (pos < bytes.length) {
      if (!current) {
        current = await buffers.take();
        view = new Uint8Array(current, 0, chunkSize);
        filled = 0;
      }
      const n = Math.min(chunkSize - filled, bytes.length - pos);
      view!.set(bytes.subarray(pos, pos + n), filled);
      filled += n;
      pos += n;
      if (filled === chunkSize) {
        yield { index: index++, buffer: current, length: filled };
        current = undefined;
      }
    }
  }
  if (current) {
    if (filled > 0) yield { index: index++, buffer: current, length: filled };
    else buffers.give(current);
  }
}
