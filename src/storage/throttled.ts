import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, ByteRange, ListOptions, LoadConsumer, LoadOptions, ObjectInfo, PutOptions } from './backend.js';

/**
 * An upload bandwidth limit (`--bwlimit`): each put waits for its share of time at the given
 * rate, so the average rate holds over a stream; a single object still goes at full speed.
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

  async put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<void> {
    const bytes = size ?? (Buffer.isBuffer(body) ? body.length : 0);
    const now = Date.now();
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes / this.bytesPerSecond) * 1000;
    if (start > now) await sleep(start - now);
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
}
