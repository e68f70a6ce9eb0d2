import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { backoffDelay, isTransient, RETRY_DEFAULTS } from '../storage/retrying.js';
import { OperationalError } from '../util/errors.js';
import type { ChunkPool } from './chunk-pool.js';
import type { ManifestChunk } from './manifest.js';
import { SharedBufferPool } from './shared-buffer-pool.js';

export type ChunkProblem = 'chunk-missing' | 'chunk-size' | 'chunk-corrupt' | 'chunk-undecodable' | 'chunk-raw-mismatch';

/** A chunk object is missing or its bytes are not the ones archived. */
export class ChunkIntegrityError extends OperationalError {
  override name = 'ChunkIntegrityError';
  constructor(
    readonly object: string,
    readonly kind: ChunkProblem,
    readonly problem: string,
    readonly expected?: string,
    readonly found?: string,
  ) {
    super(`${object}: ${problem}; nothing of this chunk was passed on`);
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
  /** Chunk objects downloaded at once (each into its own stored-bytes buffer). */
  parallel: number;
  /**
   * Raw-bytes buffers: chunks decompressed and waiting, plus those the consumer still holds.
   * Two let the next chunk be decompressed while the consumer writes the current one.
   */
  rawBuffers?: number;
}

export const DEFAULT_RAW_BUFFERS = 2;

/**
 * The one read path of restore and deep verify: downloads chunk objects ahead of the consumer
 * (`parallel` at once) straight into reused shared buffers, has a worker check the stored
 * SHA-256, decompress shared → shared and check the raw SHA-256, and hands the chunks out in
 * order. Memory is (parallel × largest stored chunk) + (rawBuffers × largest raw chunk),
 * whatever the stream size. A chunk's bytes are handed out only after all its checks passed.
 */
export class ChunkFetcher {
  private readonly storedBuffers: SharedBufferPool;
  private readonly rawBuffers: SharedBufferPool;

  constructor(private readonly o: ChunkFetcherOptions) {
    this.storedBuffers = new SharedBufferPool(Math.max(1, o.parallel));
    this.rawBuffers = new SharedBufferPool(Math.max(1, o.rawBuffers ?? DEFAULT_RAW_BUFFERS));
  }

  /** Buffers allocated so far (stored, raw): for tests of the memory bound. */
  get buffersAllocated(): { stored: number; raw: number } {
    return { stored: this.storedBuffers.allocated, raw: this.rawBuffers.allocated };
  }

  /**
   * The chunks of `refs`, fetched and checked, in that order; a failed chunk is an outcome
   * with its error, and the chunks after it are still delivered. Stopping early (break, throw)
   * cancels the prefetch.
   */
  async *inOrder(refs: readonly ChunkRef[]): AsyncGenerator<FetchOutcome> {
    this.storedBuffers.ensureBytes(refs.reduce((n, r) => Math.max(n, r.chunk.storedSize), 0));
    this.rawBuffers.ensureBytes(refs.reduce((n, r) => Math.max(n, r.chunk.rawSize), 0));
    const cancel = new AbortController();
    const outcomes: (Promise<FetchOutcome> | undefined)[] = [];
    // Raw buffers are granted in chunk order: were a later chunk to take the last one, the
    // consumer, waiting for an earlier chunk, would never give one back.
    let rawTurn: Promise<void> = Promise.resolve();
    const start = (k: number): void => {
      if (k >= refs.length || k < outcomes.length) return;
      const wait = rawTurn;
      let pass!: () => void;
      rawTurn = new Promise((resolve) => (pass = resolve));
      outcomes.push(this.fetch(refs[k]!, { wait, pass }, cancel.signal));
    };
    const window = this.storedBuffers.limit + this.rawBuffers.limit;
    let next = 0;
    try {
      for (; next < refs.length; next++) {
        for (let ahead = next; ahead < next + window; ahead++) start(ahead);
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

  private async fetch(ref: ChunkRef, rawTurn: { wait: Promise<void>; pass(): void }, cancelled: AbortSignal): Promise<FetchOutcome> {
    const { chunk } = ref;
    const key = ref.prefix + chunk.key;
    const object = `${this.o.backend.location}/${key}`;
    const stored = await this.storedBuffers.acquire();
    let raw: SharedArrayBuffer | undefined;
    let turnPassed = false;
    try {
      await readObject(this.o.backend, key, object, new Uint8Array(stored, 0, chunk.storedSize), cancelled);
      await rawTurn.wait;
      if (cancelled.aborted) throw new Error('cancelled');
      raw = await this.rawBuffers.acquire();
      rawTurn.pass();
      turnPassed = true;
      let out;
      try {
        out = await this.o.pool.decompress({ stored, storedLength: chunk.storedSize, expectStoredSha256: chunk.storedSha256, raw, maxRawSize: chunk.rawSize });
      } catch (err) {
        throw new ChunkIntegrityError(object, 'chunk-undecodable', `cannot be decompressed (${(err as Error).message})`);
      }
      if (out.storedSha256 !== chunk.storedSha256) {
        throw new ChunkIntegrityError(object, 'chunk-corrupt', `SHA-256 is ${out.storedSha256}, the manifest says ${chunk.storedSha256}`, chunk.storedSha256, out.storedSha256);
      }
      if (out.rawSha256 !== chunk.rawSha256 || out.rawLength !== chunk.rawSize) {
        throw new ChunkIntegrityError(object, 'chunk-raw-mismatch', `decompressed bytes do not match the manifest (SHA-256 ${out.rawSha256}, expected ${chunk.rawSha256})`, chunk.rawSha256, out.rawSha256);
      }
      const lent = raw;
      raw = undefined;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.rawBuffers.release(lent);
      };
      return { ref, raw: Buffer.from(lent, 0, out.rawLength), release };
    } catch (err) {
      return { ref, error: err as Error };
    } finally {
      this.storedBuffers.release(stored);
      if (raw) this.rawBuffers.release(raw);
      if (!turnPassed) void rawTurn.wait.then(rawTurn.pass);
    }
  }
}

/**
 * Reads a whole object into `into` (exactly its length, the manifest's size), piece by piece
 * as it arrives: no whole-object concatenation. A transient failure midway resumes at the
 * first missing byte, with the retrying wrapper's backoff (it only retries opening a read).
 */
async function readObject(backend: Backend, key: string, object: string, into: Uint8Array, cancelled: AbortSignal): Promise<void> {
  const progress = { filled: 0 };
  for (let attempt = 1; ; attempt++) {
    try {
      return await readRest(backend, key, object, into, progress, cancelled);
    } catch (err) {
      if (!isTransient(err) || attempt >= RETRY_DEFAULTS.maxAttempts || cancelled.aborted) throw err;
      await sleep(backoffDelay(attempt, RETRY_DEFAULTS));
    }
  }
}

async function readRest(backend: Backend, key: string, object: string, into: Uint8Array, progress: { filled: number }, cancelled: AbortSignal): Promise<void> {
  const expected = into.length;
  let body: Readable;
  try {
    body = await backend.get(key, progress.filled > 0 ? { offset: progress.filled } : undefined);
  } catch (err) {
    if (isNotFound(err)) throw new ChunkIntegrityError(object, 'chunk-missing', 'chunk object is missing');
    throw err;
  }
  try {
    for await (const piece of body as AsyncIterable<Buffer>) {
      if (cancelled.aborted) throw new Error('cancelled');
      if (progress.filled + piece.length > expected) {
        // Never write past the buffer; ask for the real size only to name it.
        const size = await backend.head(key).then((info) => String(info.size), () => `more than ${expected}`);
        throw new ChunkIntegrityError(object, 'chunk-size', `size ${size} bytes, the manifest says ${expected}`, String(expected), size);
      }
      into.set(piece, progress.filled);
      progress.filled += piece.length;
    }
  } finally {
    body.destroy();
  }
  if (progress.filled !== expected) {
    const size = String(progress.filled);
    throw new ChunkIntegrityError(object, 'chunk-size', `size ${size} bytes, the manifest says ${expected}`, String(expected), size);
  }
}
