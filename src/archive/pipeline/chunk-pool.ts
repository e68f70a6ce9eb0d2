import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ErrorOptions, fromWire, OperationalError, type WireError } from '../../util/errors.js';
import { workerUrl } from '../../util/worker-url.js';

export type ChunkJob =
  | {
      op: 'compress';
      id: number;
      /** Shared memory holding the raw chunk: workers read it in place, no copy. */
      buffer: SharedArrayBuffer;
      offset: number;
      length: number;
      level: number;
      /** Shared memory the frame is written into (at least zstd's compressBound of length). */
      out: SharedArrayBuffer;
      /** Skip compressing when the raw bytes have this SHA-256 (already stored by an interrupted run). */
      skipIfRawSha256?: string;
      /** Also hash the frame's parts as the backend will upload them (Backend.partUploadBytes). */
      partBytes?: number;
    }
  | {
      op: 'decompress';
      id: number;
      /** Shared memory holding the stored object (at storedOffset): hashed and read in place. */
      stored: SharedArrayBuffer;
      storedOffset: number;
      storedLength: number;
      expectStoredSha256: string;
      /**
       * Shared memory the raw bytes are written into, from its start. May be `stored` itself
       * (zstd's in-place decompression): then the stored bytes must end at least zstd's
       * decompression margin after the end of the raw bytes.
       */
      raw: SharedArrayBuffer;
      /** A frame declaring more content than this is refused before decompressing. */
      maxRawSize: number;
    };

type JobInput = ChunkJob extends infer J ? (J extends ChunkJob ? Omit<J, 'id'> : never) : never;

export interface ChunkReply {
  id: number;
  /** compress: frame bytes written into `out`; decompress: raw bytes written into `raw`. */
  length: number;
  rawSha256: string;
  storedSha256: string;
  level: number;
  partSha256s?: string[];
}

export interface CompressResult {
  /** Bytes of the frame written at the start of `out`; -1 when skipped (raw SHA-256 matched). */
  length: number;
  rawSha256: string;
  storedSha256: string;
  level: number;
  /** With `partBytes` and a frame of several parts: each part's SHA-256 (PutOptions.partSha256s). */
  partSha256s?: string[];
}

export type DecompressJob = Omit<Extract<ChunkJob, { op: 'decompress' }>, 'id' | 'op'>;

export interface DecompressResult {
  /** Raw bytes written at the start of the job's `raw`; 0 when the stored SHA-256 did not match. */
  rawLength: number;
  rawSha256: string;
  storedSha256: string;
}

/**
 * A chunk job that failed: `frame-invalid` — the stored bytes are not a zstd frame of at most
 * the expected size (decompress); `compress-failed` — zstd could not compress the chunk;
 * `pool-failed` — the pool is closed or a worker died. Built in the worker, rebuilt here.
 */
export type ChunkJobKind = 'frame-invalid' | 'compress-failed' | 'pool-failed';

export class ChunkJobError extends OperationalError {
  override name = 'ChunkJobError';
  declare readonly kind: ChunkJobKind;
  constructor(kind: ChunkJobKind, message: string, options: Omit<ErrorOptions, 'kind'> = {}) {
    super(message, { ...options, kind });
  }
}

/** A worker's failure as it crossed the thread boundary, rebuilt with its class. */
function rebuild(wire: WireError): Error {
  return wire.name === 'ChunkJobError' ? new ChunkJobError(wire.kind as ChunkJobKind, wire.message, wire.context ? { context: wire.context } : {}) : fromWire(wire);
}

interface Pending {
  resolve(reply: ChunkReply): void;
  reject(err: Error): void;
}

/** A fixed pool of chunk workers (zstd + SHA-256), one per core by default. */
export class ChunkPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: { job: JobInput; pending: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly workers: Worker[] = [];
  private nextId = 0;
  private closed = false;

  constructor(readonly size = availableParallelism()) {
    const url = workerUrl(import.meta.url, './chunk-worker.js');
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url);
      worker.on('message', (msg: ChunkReply & { error?: WireError }) => this.onResult(worker, msg));
      worker.on('error', (err) => this.failAll(new ChunkJobError('pool-failed', `a chunk worker failed: ${err.message}`, { cause: err })));
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  async compress(job: Omit<Extract<ChunkJob, { op: 'compress' }>, 'id' | 'op'>): Promise<CompressResult> {
    const r = await this.submit({ op: 'compress', ...job });
    return { length: r.length, rawSha256: r.rawSha256, storedSha256: r.storedSha256, level: r.level, ...(r.partSha256s ? { partSha256s: r.partSha256s } : {}) };
  }

  /**
   * Checks the stored SHA-256 (a mismatch returns at once, nothing decompressed, carrying the
   * SHA-256 found) and decompresses shared memory into shared memory; the caller checks the raw
   * SHA-256 it gets back. Both buffers must stay untouched until this settles.
   */
  async decompress(job: DecompressJob): Promise<DecompressResult> {
    const r = await this.submit({ op: 'decompress', ...job });
    return { rawLength: r.length, rawSha256: r.rawSha256, storedSha256: r.storedSha256 };
  }

  private submit(job: JobInput): Promise<ChunkReply> {
    if (this.closed) return Promise.reject(new ChunkJobError('pool-failed', 'chunk pool is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ job, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const worker = this.idle.pop()!;
      const { job, pending } = this.waiting.shift()!;
      const id = this.nextId++;
      this.pending.set(id, pending);
      worker.postMessage({ ...job, id } as ChunkJob);
    }
  }

  private onResult(worker: Worker, msg: ChunkReply & { error?: WireError }): void {
    const pending = this.pending.get(msg.id);
    this.pending.delete(msg.id);
    this.idle.push(worker);
    if (pending) {
      if (msg.error !== undefined) pending.reject(rebuild(msg.error));
      else pending.resolve(msg);
    }
    this.dispatch();
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    for (const w of this.waiting) w.pending.reject(err);
    this.pending.clear();
    this.waiting.length = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** zstd's worst-case frame size for `rawSize` bytes: the size of a compress output buffer. */
export function frameBound(rawSize: number): number {
  return zstd.compressBound(rawSize);
}
