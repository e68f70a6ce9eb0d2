import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { workerUrl } from '../util/worker-url.js';

export interface ChunkJob {
  id: number;
  /** Shared memory holding the raw chunk: workers read it in place, no copy. */
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
  level: number;
}

export interface ChunkResult {
  id: number;
  data: ArrayBuffer;
  rawSha256: string;
  storedSha256: string;
  level: number;
}

export interface CompressedChunk {
  stored: Buffer;
  rawSha256: string;
  storedSha256: string;
  level: number;
}

interface Pending {
  resolve(result: CompressedChunk): void;
  reject(err: Error): void;
}

/** A fixed pool of chunk workers (zstd + SHA-256), one per core by default. */
export class ChunkPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: { job: Omit<ChunkJob, 'id'>; pending: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly workers: Worker[] = [];
  private nextId = 0;
  private closed = false;

  constructor(readonly size = availableParallelism()) {
    const url = workerUrl(import.meta.url, './chunk-worker.js');
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url);
      worker.on('message', (msg: ChunkResult & { error?: string }) => this.onResult(worker, msg));
      worker.on('error', (err) => this.failAll(err));
      worker.unref();
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  compress(job: Omit<ChunkJob, 'id'>): Promise<CompressedChunk> {
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
      worker.postMessage({ ...job, id } satisfies ChunkJob);
    }
  }

  private onResult(worker: Worker, msg: ChunkResult & { error?: string }): void {
    const pending = this.pending.get(msg.id);
    this.pending.delete(msg.id);
    this.idle.push(worker);
    if (pending) {
      if (msg.error !== undefined) pending.reject(new Error(`compressing chunk failed: ${msg.error}`));
      else pending.resolve({ stored: Buffer.from(msg.data), rawSha256: msg.rawSha256, storedSha256: msg.storedSha256, level: msg.level });
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
