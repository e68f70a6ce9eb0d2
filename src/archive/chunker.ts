import type { Readable } from 'node:stream';
import { OperationalError } from '../util/errors.js';
import type { BufferPool } from '../util/semaphore.js';

export interface RawChunk {
  index: number;
  /** Shared memory so worker threads read the chunk in place. */
  buffer: SharedArrayBuffer;
  length: number;
}

/** The input produced nothing for too long: a hung `zfs send` is an error, not a hang. */
export class StalledInputError extends OperationalError {
  override name = 'StalledInputError';
}

/**
 * Cuts a byte stream into fixed-size chunks in reusable shared buffers. Waiting for a free
 * buffer is the backpressure: the input is not read while every buffer is in flight.
 * The last chunk may be shorter; an empty input yields no chunk. Only time spent waiting
 * for input counts towards `stallMs`.
 */
export async function* readChunks(
  input: Readable,
  buffers: BufferPool<SharedArrayBuffer>,
  chunkSize: number,
  stallMs = 0,
): AsyncGenerator<RawChunk> {
  const pieces = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let index = 0;
  let current: SharedArrayBuffer | undefined;
  let view: Uint8Array | undefined;
  let filled = 0;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    if (stallMs > 0) {
      timer = setTimeout(() => input.destroy(new StalledInputError(`the input produced no data for ${Math.round(stallMs / 1000)} s (stalled zfs send?)`)), stallMs);
    }
    let next: IteratorResult<Buffer | string>;
    try {
      next = await pieces.next();
    } finally {
      clearTimeout(timer);
    }
    if (next.done) break;
    const bytes = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
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
