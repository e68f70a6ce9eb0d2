import type { Backend } from '../../storage/backend.js';
import { evenParts, isNotFound, MAX_PARTS_PER_OBJECT } from '../../storage/backend.js';
import { UnsafeEntryError } from '../../storage/confined.js';
import { copyInto } from '../../util/bytes.js';
import { OperationalError } from '../../util/errors.js';
import { ChunkJobError, type ChunkPool } from './chunk-pool.js';
import type { ManifestChunk } from '../format/manifest.js';
import { SharedBufferPool } from './shared-buffer-pool.js';

export type ChunkProblem = 'chunk-missing' | 'chunk-size' | 'chunk-corrupt' | 'chunk-undecodable' | 'chunk-raw-mismatch';

/** A chunk object is missing or its bytes are not the ones archived. */
export class ChunkIntegrityError extends OperationalError {
  override name = 'ChunkIntegrityError';
  declare readonly kind: ChunkProblem;
  constructor(
    readonly object: string,
    kind: ChunkProblem,
    readonly problem: string,
    readonly expected?: string,
    readonly found?: string,
  ) {
    super(`${object}: ${problem}; nothing of this chunk was passed on`, { kind, context: { object } });
  }
}

/** A chunk of some stream: its manifest entry and the stream's key prefix (`<dataset path>/<stream id>/`). */
export interface ChunkRef {
  prefix: string;
  chunk: ManifestChunk;
}

/**
 * A chunk whose every check passed, its raw bytes lent from a reused buffer: call `release`
 * once nothing reads `raw` any more (for a Writable: its write callback has fired), and not
 * before, or the next chunk overwrites bytes still on their way.
 */
export interface CheckedChunk {
  ref: ChunkRef;
  raw: Buffer;
  release(): void;
}

export type FetchOutcome = CheckedChunk | { ref: ChunkRef; error: Error };

export interface ChunkFetcherOptions {
  backend: Backend;
  pool: ChunkPool;
  /** Chunks fetched and checked ahead of the one the consumer holds. */
  parallel: number;
  /** Bytes of chunk buffers at most (but always two buffers, so fetching overlaps consuming). */
  memoryBytes?: number;
}

/**
 * Cap on the chunk buffers of a restore or verify. With 64 MiB chunks it allows two (peak RSS
 * ≈ 250 MiB; a third bought no measurable speed on two cores); with the default 16 MiB chunks
 * the `parallel + 1` bound comes first.
 */
export const DEFAULT_MEMORY_BYTES = 160 * 1024 * 1024;

const ZSTD_BLOCK_MAX = 128 * 1024;

/**
 * zstd's ZSTD_DECOMPRESSION_MARGIN for a frame of `rawSize` content: how far the stored bytes
 * must end beyond the raw bytes for in-place decompression. Frames with a window under
 * 128 KiB hold a single block, so 128 KiB blocks bound every frame.
 */
export function inPlaceMargin(rawSize: number): number {
  return 18 + 4 + 3 * Math.ceil(rawSize / ZSTD_BLOCK_MAX) + ZSTD_BLOCK_MAX;
}

/**
 * The one read path of restore and deep verify: downloads chunk objects ahead of the consumer
 * straight into reused shared buffers, has a worker check the stored SHA-256, decompress and
 * check the raw SHA-256, and hands the chunks out in order, each only after all its checks
 * passed.
 *
 * One buffer serves a chunk from download to release: the stored bytes land at its end and
 * zstd decompresses them in place to its start. Two buffers per chunk (stored, raw) would
 * double the memory for the same prefetch depth. Memory is (buffers × largest chunk) whatever
 * the stream size; buffers = parallel + 1 (the one the consumer holds), within memoryBytes.
 */
export class ChunkFetcher {
  private readonly buffers = new SharedBufferPool();

  constructor(private readonly o: ChunkFetcherOptions) {}

  /** Chunk buffers allocated so far, and their size: for tests of the memory bound. */
  get buffersAllocated(): { count: number; bytes: number } {
    return { count: this.buffers.allocated, bytes: this.buffers.bufferBytes };
  }

  /**
   * The chunks of `refs`, fetched and checked, in that order; a failed chunk is an outcome
   * with its error, and the chunks after it are still delivered. Stopping early (break, throw)
   * cancels the prefetch.
   */
  async *inOrder(refs: readonly ChunkRef[]): AsyncGenerator<FetchOutcome> {
    const bytes = refs.reduce((n, r) => Math.max(n, r.chunk.storedSize, r.chunk.rawSize + inPlaceMargin(r.chunk.rawSize)), 0);
    const affordable = Math.floor((this.o.memoryBytes ?? DEFAULT_MEMORY_BYTES) / Math.max(1, bytes));
    this.buffers.configure(bytes, Math.max(2, Math.min(Math.max(1, this.o.parallel) + 1, affordable)));
    const cancel = new AbortController();
    const outcomes: (Promise<FetchOutcome> | undefined)[] = [];
    let next = 0;
    try {
      for (; next < refs.length; next++) {
        // Chunks take buffers first come, first served, so in order: the consumer, waiting for
        // an earlier chunk, never waits on buffers held by later ones.
        while (outcomes.length < Math.min(refs.length, next + this.buffers.limit)) outcomes.push(this.fetch(refs[outcomes.length]!, cancel.signal));
        const outcome = await outcomes[next]!;
        outcomes[next] = undefined;
        yield outcome;
      }
    } finally {
      cancel.abort();
      // Chunks fetched ahead that nobody will read: their buffers go back to the pool.
      for (const pending of outcomes) void pending?.then((o) => ('release' in o ? o.release() : undefined));
    }
  }

  private async fetch(ref: ChunkRef, cancelled: AbortSignal): Promise<FetchOutcome> {
    const { chunk } = ref;
    const key = ref.prefix + chunk.key;
    const object = `${this.o.backend.location}/${key}`;
    let buffer: SharedArrayBuffer | undefined = await this.buffers.acquire();
    try {
      cancelled.throwIfAborted();
      // Stored bytes at the very end: the farther they end beyond the raw bytes, the safer in place.
      const storedOffset = buffer.byteLength - chunk.storedSize;
      await readObject(this.o.backend, key, object, new Uint8Array(buffer, storedOffset, chunk.storedSize), cancelled);
      let out;
      try {
        out = await this.o.pool.decompress({ stored: buffer, storedOffset, storedLength: chunk.storedSize, expectStoredSha256: chunk.storedSha256, raw: buffer, maxRawSize: chunk.rawSize });
      } catch (err) {
        // Only bytes that are no usable frame are the chunk's fault; a closed pool or dead worker is not.
        if (!(err instanceof ChunkJobError && err.kind === 'frame-invalid')) throw err;
        throw new ChunkIntegrityError(object, 'chunk-undecodable', `cannot be decompressed (${err.message})`);
      }
      if (out.storedSha256 !== chunk.storedSha256) {
        throw new ChunkIntegrityError(object, 'chunk-corrupt', `SHA-256 is ${out.storedSha256}, the manifest says ${chunk.storedSha256}`, chunk.storedSha256, out.storedSha256);
      }
      if (out.rawSha256 !== chunk.rawSha256 || out.rawLength !== chunk.rawSize) {
        throw new ChunkIntegrityError(
          object,
          'chunk-raw-mismatch',
          `decompressed bytes do not match the manifest (SHA-256 ${out.rawSha256}, expected ${chunk.rawSha256})`,
          chunk.rawSha256,
          out.rawSha256,
        );
      }
      const lent = buffer;
      buffer = undefined;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.buffers.release(lent);
      };
      return { ref, raw: Buffer.from(lent, 0, out.rawLength), release };
    } catch (err) {
      return { ref, error: err as Error };
    } finally {
      if (buffer) this.buffers.release(buffer);
    }
  }
}

/**
 * How a chunk of `size` bytes is read: one request, or (where the backend says a long link
 * limits each request, `rangedReadBytes`) up to MAX_PARTS_PER_OBJECT ranges in parallel, each
 * landing in its own part of the same buffer, so requests in flight cost no extra memory.
 * The last range is open-ended, so an object longer than the manifest says is still noticed.
 */
export function chunkRanges(size: number, rangedReadBytes: number | undefined): { offset: number; length?: number }[] {
  const parts = evenParts(size, rangedReadBytes, MAX_PARTS_PER_OBJECT);
  return parts.map((part, i) => (i === parts.length - 1 ? { offset: part.offset } : part));
}

/**
 * Reads a whole object into `into` (exactly its length, the manifest's size), piece by piece as
 * it arrives: no whole-object concatenation. Retrying is the backend's: its retrying wrapper
 * restarts a read that breaks midway at the first missing byte, within `--retries` and
 * `--retry-time` (storage/retrying.ts), so there is no loop here.
 */
async function readObject(backend: Backend, key: string, object: string, into: Uint8Array, cancelled: AbortSignal): Promise<void> {
  const expected = into.length;
  const tooBig = async (): Promise<never> => {
    // Never write past the buffer; ask for the real size only to name it.
    const size = await backend.head(key).then(
      (info) => String(info.size),
      () => `more than ${expected}`,
    );
    throw new ChunkIntegrityError(object, 'chunk-size', `size ${size} bytes, the manifest says ${expected}`, String(expected), size);
  };
  const tooSmall = (size: number): ChunkIntegrityError => new ChunkIntegrityError(object, 'chunk-size', `size ${size} bytes, the manifest says ${expected}`, String(expected), String(size));
  // One failed range ends the others: their bytes are of no use any more.
  const stop = new AbortController();
  const onCancel = (): void => stop.abort(cancelled.reason);
  cancelled.addEventListener('abort', onCancel, { once: true });
  const readRange = async ({ offset, length }: { offset: number; length?: number }): Promise<number> => {
    const end = length === undefined ? expected : offset + length;
    let filled = offset;
    await backend.load(
      key,
      async (piece) => {
        if (filled + piece.length > end) await tooBig();
        copyInto(into, piece, filled);
        filled += piece.length;
      },
      { signal: stop.signal, ...(offset > 0 ? { offset } : {}), ...(length !== undefined ? { length } : {}) },
    );
    return filled;
  };
  try {
    const ranges = chunkRanges(expected, backend.rangedReadBytes);
    const ends = await Promise.all(
      ranges.map((range) =>
        readRange(range).catch((err: unknown) => {
          if (!stop.signal.aborted) stop.abort(err);
          throw err;
        }),
      ),
    );
    // A short object: the first range that did not reach its end says where the object ends.
    ends.forEach((filled, i) => {
      const range = ranges[i]!;
      const end = range.length === undefined ? expected : range.offset + range.length;
      if (filled !== end) throw tooSmall(filled);
    });
  } catch (err) {
    if (isNotFound(err)) throw new ChunkIntegrityError(object, 'chunk-missing', 'chunk object is missing');
    // A link or special file where the chunk should be (storage/confined.ts): no chunk is there.
    if (err instanceof UnsafeEntryError) throw new ChunkIntegrityError(object, 'chunk-missing', `no chunk object: ${err.entry} is a ${err.entryType}, never followed or read`);
    throw err;
  } finally {
    cancelled.removeEventListener('abort', onCancel);
  }
}
