import { Worker } from 'node:worker_threads';
import type { StreamSummary } from '../../stream/validator.js';
import { fromWire, type WireError } from '../../util/errors.js';
import { workerUrl } from '../../util/worker-url.js';

export type StreamCheckRequest = { type: 'chunk'; seq: number; buffer: SharedArrayBuffer; offset: number; length: number } | { type: 'finish' };

export type StreamCheckReply = { type: 'chunk-done'; seq: number } | { type: 'finished'; summary: StreamSummary; sha256: string } | { type: 'error'; error: WireError };

export interface StreamCheckResult {
  summary: StreamSummary;
  sha256: string;
}

/**
 * Runs the stream validator and whole-stream hash in a worker. Chunks are fed in order;
 * each `feed` resolves when the worker is done reading that chunk's memory. The first
 * problem rejects every pending and later call with the same StreamFormatError.
 */
export class StreamCheck {
  private readonly worker: Worker;
  private readonly chunkWaiters = new Map<number, { resolve(): void; reject(err: Error): void }>();
  private finishWaiter?: { resolve(r: StreamCheckResult): void; reject(err: Error): void };
  private seq = 0;
  private error?: Error;

  constructor() {
    this.worker = new Worker(workerUrl(import.meta.url, './stream-check-worker.js'));
    this.worker.on('message', (msg: StreamCheckReply) => this.onReply(msg));
    this.worker.on('error', (err) => this.fail(err));
  }

  /** The first problem found, as soon as it is known (for aborting early). */
  get failure(): Error | undefined {
    return this.error;
  }

  feed(buffer: SharedArrayBuffer, offset: number, length: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      this.chunkWaiters.set(seq, { resolve, reject });
      this.worker.postMessage({ type: 'chunk', seq, buffer, offset, length } satisfies StreamCheckRequest);
    });
  }

  finish(): Promise<StreamCheckResult> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.finishWaiter = { resolve, reject };
      this.worker.postMessage({ type: 'finish' } satisfies StreamCheckRequest);
    });
  }

  private onReply(msg: StreamCheckReply): void {
    if (msg.type === 'chunk-done') {
      this.chunkWaiters.get(msg.seq)?.resolve();
      this.chunkWaiters.delete(msg.seq);
    } else if (msg.type === 'finished') {
      this.finishWaiter?.resolve({ summary: msg.summary, sha256: msg.sha256 });
    } else {
      this.fail(fromWire(msg.error));
    }
  }

  private fail(err: Error): void {
    this.error ??= err;
    for (const w of this.chunkWaiters.values()) w.reject(this.error);
    this.chunkWaiters.clear();
    this.finishWaiter?.reject(this.error);
    this.finishWaiter = undefined;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
