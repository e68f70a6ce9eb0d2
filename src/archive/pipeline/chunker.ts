import { OperationalError } from '../../util/errors.js';
import type { ByteSource } from '../../util/byte-source.js';
import type { SharedBufferPool } from './shared-buffer-pool.js';

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
 * Cuts a byte stream into fixed-size chunks in reusable shared buffers, filled in place by the
 * source. Waiting for a free buffer is the backpressure: the input is not read while every
 * buffer is in flight. The last chunk may be shorter; an empty input yields no chunk. Only
 * time spent waiting for input counts towards `stallMs`.
 */
export async function* readChunks(source: ByteSource, buffers: SharedBufferPool, chunkSize: number, stallMs = 0): AsyncGenerator<RawChunk> {
  for (let index = 0; ; index++) {
    const buffer = await buffers.acquire();
    let length: number;
    try {
      length = await withStallWatch(source, stallMs, () => source.fill(new Uint8Array(buffer, 0, chunkSize)));
    } catch (err) {
      buffers.release(buffer);
      throw err;
    }
    if (length === 0) {
      buffers.release(buffer);
      return;
    }
    yield { index, buffer, length };
    if (length < chunkSize) return;
  }
}

async function withStallWatch<T>(source: ByteSource, stallMs: number, work: () => Promise<T>): Promise<T> {
  if (stallMs <= 0) return work();
  const since = performance.now();
  const timer = setInterval(
    () => {
      if (performance.now() - Math.max(since, source.lastDataAt) >= stallMs) {
        source.destroy(new StalledInputError(`the input produced no data for ${Math.round(stallMs / 1000)} s (stalled zfs send?)`));
      }
    },
    Math.min(1000, Math.max(10, stallMs / 4)),
  );
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
