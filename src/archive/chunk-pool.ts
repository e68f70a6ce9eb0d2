import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { workerUrl } from '../util/worker-url.js';

export type ChunkJob =
  | {
      op: 'compress';
      id: number;
      /** Shared memory holding the raw chunk: workers read it in place, no copy. */
      buffer: SharedArrayBuffer;
      offset: number;
      length: number;
      level: number;
    }
  | {
      op: 'decompress';
      id: number;
      /** The stored object, transferred to the worker. */
      data: ArrayBuffer;
      expectStoredSha256: string;
    };

type JobInput = ChunkJob extends infer J ? (J extends ChunkJob ? Omit<J, 'id'> : never) : never;

export interface ChunkReply {
  id: number;
  data: ArrayBuffer;
  rawSha256: string;
  storedSha256: string;
  level: number;
}

export interface ChunkOutput {
  /** Compressed bytes (compress) or raw bytes (decompress). */
  data: Buffer;
  rawSha256: string;
  storedSha256: string;
  level: number;
}

interface Pending {
  resolve(result: ChunkOutput): void;
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
      worker.on('message', (msg: ChunkReply & { error?: string }) => this.onResult(worker, msg));
      worker.on('error', (err) => this.failAll(err));
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  compress(job: Omit<Extract<ChunkJob, { op: 'compress' }>, 'id' | 'op'>): Promise<ChunkOutput> {
    return this.submit({ op: 'compress', ...job });
  }

  /** Checks the stored SHA-256, then decompresses; the caller checks the raw SHA-256 it gets back. */
  decompress(stored: Buffer, expectStoredSha256: string): Promise<ChunkOutput> {
    const own = stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength;
    const data = (own ? stored.buffer : stored.buffer.slice(stored.byteOffset, stored.byteOffset + stored.byteLength)) as ArrayBuffer;
    return this.submit({ op: 'decompress', data, expectStoredSha256 });
  }

  private submit(job: JobInput): Promise<ChunkOutput> {
    if (this.closed) return Promise.reject(new Error('chunk pool is closed'));
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
      const message = { ...job, id } as ChunkJob;
      worker.postMessage(message, message.op === 'decompress' ? [message.data] : []);
    }
  }

  private onResult(worker: Worker, msg: ChunkReply & { error?: string }): void {
    const pending = this.pending.get(msg.id);
    this.pending.delete(msg.id);
    this.idle.push(worker);
    if (pending) {
      if (msg.error !== undefined) pending.reject(new Error(msg.error));
      else pending.resolve({ data: Buffer.from(msg.data), rawSha256: msg.rawSha256, storedSha256: msg.storedSha256, level: msg.level });
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
