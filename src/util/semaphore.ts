/** Counting semaphore: bounds how many things are in flight at once. */
export class Semaphore {
  private readonly queue: (() => void)[] = [];
  constructor(private available: number) {}

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.available++;
  }
}

/** A fixed set of reusable buffers; `take` waits until one is returned. */
export class BufferPool<T> {
  private readonly free: T[];
  private readonly waiters: ((item: T) => void)[] = [];
  constructor(items: T[]) {
    this.free = [...items];
  }

  take(): Promise<T> {
    const item = this.free.pop();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  give(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.free.push(item);
  }
}
