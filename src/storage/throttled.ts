import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, ByteRange, ListOptions, LoadConsumer, LoadOptions, ObjectInfo, PutOptions, PutResult } from './backend.js';

/**
 * An upload bandwidth limit (`--bwlimit`): each chunk put (`PutOptions.chunkData`) waits for its
 * share of time at the given rate, so the average rate holds over a stream; a single object still
 * goes at full speed. Other puts (journal, manifest, lease: small, and the resume state of a run
 * that may be interrupted any moment) go at once and take nothing from the chunks' share.
 */
export class ThrottledBackend implements Backend {
  private nextFree = 0;

  constructor(
    readonly inner: Backend,
    private readonly bytesPerSecond: number,
  ) {}

  get location(): string {
    return this.inner.location;
  }
  get connections(): number {
    return this.inner.connections;
  }
  get rangedReadBytes(): number | undefined {
    return this.inner.rangedReadBytes;
  }
  get partUploadBytes(): number | undefined {
    return this.inner.partUploadBytes;
  }

  get deletionAsksPermission(): boolean | undefined {
    return this.inner.deletionAsksPermission;
  }

  // biome-ignore lint/suspicious/noConfusingVoidType: a backend that says nothing of what it stored (local, SFTP) keeps returning Promise<void>
  async put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<PutResult | void> {
    if (!options?.chunkData) return this.inner.put(key, body, size, options);
    const bytes = size ?? (Buffer.isBuffer(body) ? body.length : 0);
    const now = Date.now();
    const start = Math.max(now, this.nextFree);
    const share = (bytes / this.bytesPerSecond) * 1000;
    this.nextFree = start + share;
    if (start > now) {
      try {
        await sleep(start - now, undefined, options.signal ? { signal: options.signal } : {});
      } catch (err) {
        // Given up before it started: its share of time goes back to the puts still waiting.
        this.nextFree -= share;
        throw options.signal?.aborted ? options.signal.reason : err;
      }
    }
    options.signal?.throwIfAborted();
    return this.inner.put(key, body, size, options);
  }

  get(key: string, range?: ByteRange): Promise<Readable> {
    return this.inner.get(key, range);
  }
  /** Reads are not limited (`--bwlimit` is about uploads): the inner read, restartable and cancellable as it is. */
  load(key: string, consume: LoadConsumer, options?: LoadOptions): Promise<void> {
    return this.inner.load(key, consume, options);
  }
  getBuffer(key: string): Promise<Buffer> {
    return this.inner.getBuffer(key);
  }
  head(key: string): Promise<ObjectInfo> {
    return this.inner.head(key);
  }
  list(prefix: string, onObject: (info: ObjectInfo) => void, options?: ListOptions): Promise<void> {
    return this.inner.list(prefix, onObject, options);
  }
  delete(keys: string[]): Promise<void> {
    return this.inner.delete(keys);
  }
  check(): Promise<void> {
    return this.inner.check();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  get cleanupIncompleteUploads(): Backend['cleanupIncompleteUploads'] {
    return this.inner.cleanupIncompleteUploads?.bind(this.inner);
  }
  get objectLock(): Backend['objectLock'] {
    return this.inner.objectLock;
  }
}
