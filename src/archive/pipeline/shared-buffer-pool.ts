/**
 * A bounded set of reusable SharedArrayBuffers of one size. Chunk buffers are tens of MiB:
 * allocating one per chunk costs page faults and GC time comparable to the hashing, and lets
 * memory grow with the prefetch depth; reusing a few keeps both flat whatever the stream size.
 * Buffers are created lazily, so a stream of one small chunk never allocates the whole set.
 */
export class SharedBufferPool {
  private readonly free: SharedArrayBuffer[] = [];
  private readonly waiting: ((buffer: SharedArrayBuffer) => void)[] = [];
  private created = 0;
  private bytes = 0;
  private max = 1;

  /** Optionally configured at once (see `configure`); buffers are still created on demand. */
  constructor(bytes = 0, limit = 1) {
    this.configure(bytes, limit);
  }

  /** Size of the buffers handed out. */
  get bufferBytes(): number {
    return this.bytes;
  }

  /** Most buffers in existence at once. */
  get limit(): number {
    return this.max;
  }

  /** Buffers in existence (free or lent out). */
  get allocated(): number {
    return this.created;
  }

  /**
   * From now on: buffers hold at least `bytes`, and at most `limit` exist. Buffers too small
   * or too many are dropped: the free ones now, the lent ones when they come back.
   */
  configure(bytes: number, limit: number): void {
    if (!(limit >= 1)) throw new RangeError(`a buffer pool needs at least one buffer, got ${limit}`);
    this.max = limit;
    if (bytes > this.bytes) {
      this.bytes = bytes;
      this.created -= this.free.length;
      this.free.length = 0;
    }
    while (this.created > this.max && this.free.length > 0) {
      this.free.pop();
      this.created--;
    }
    while (this.waiting.length > 0 && this.created < this.max) {
      this.created++;
      this.waiting.shift()!(new SharedArrayBuffer(this.bytes));
    }
  }

  /** A buffer, as soon as one is free; callers are served first come, first served. */
  acquire(): Promise<SharedArrayBuffer> {
    const buffer = this.free.pop();
    if (buffer) return Promise.resolve(buffer);
    if (this.created < this.limit) {
      this.created++;
      return Promise.resolve(new SharedArrayBuffer(this.bytes));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives a buffer back. Only once nothing reads or writes it any more: it is reused at once. */
  release(buffer: SharedArrayBuffer): void {
    let reusable: SharedArrayBuffer | undefined = buffer;
    if (buffer.byteLength < this.bytes || this.created > this.max) {
      this.created--;
      reusable = undefined;
    }
    const next = this.waiting.shift();
    if (!next) {
      if (reusable) this.free.push(reusable);
      return;
    }
    if (!reusable) {
      if (this.created >= this.max) {
        this.waiting.unshift(next);
        return;
      }
      this.created++;
      reusable = new SharedArrayBuffer(this.bytes);
    }
    next(reusable);
  }
}
