import type { ByteSource } from './byte-source.js';

/**
 * One input read once for several readers (`run` with several targets that need the same
 * stream: one `zfs send` feeds every target's writer). Each branch is a ByteSource of its own.
 *
 * Backpressure: the input is read only while every live branch has less than `windowBytes`
 * queued, so the slowest branch sets the pace of all (memory stays bounded by the window). A
 * branch that is destroyed (its target failed, or holds the stream already) drops out at once:
 * its queue is freed and it holds no one back; when every branch is gone, the input is destroyed.
 * Pieces are shared between the branches' queues (read-only), never copied per branch.
 */
export function teeSource(source: ByteSource, count: number, options: { pieceBytes?: number; windowBytes?: number } = {}): ByteSource[] {
  const tee = new Tee(source, options.pieceBytes ?? 1024 * 1024, options.windowBytes ?? 16 * 1024 * 1024);
  return Array.from({ length: count }, () => tee.branch());
}

class Tee {
  readonly branches: Branch[] = [];
  private reading = false;
  ended = false;
  error: Error | undefined;
  private waiters: (() => void)[] = [];

  constructor(
    readonly source: ByteSource,
    private readonly pieceBytes: number,
    private readonly windowBytes: number,
  ) {}

  branch(): Branch {
    const b = new Branch(this);
    this.branches.push(b);
    return b;
  }

  private live(): Branch[] {
    return this.branches.filter((b) => !b.closed);
  }

  /** A sibling's queue is full: waiting is backpressure, not a silent input. */
  get blocked(): boolean {
    return this.live().some((b) => b.queued >= this.windowBytes);
  }

  /** Resolves at the next change (data, end, error, room in the window); starts a read when one may start. */
  changed(): Promise<void> {
    const p = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.pump();
    return p;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Reads the next piece when no read is running, the input goes on and every live branch has room. */
  pump(): void {
    if (this.reading || this.ended || this.error || this.waiters.length === 0) return;
    const live = this.live();
    if (live.length === 0 || this.blocked) return;
    this.reading = true;
    const piece = Buffer.allocUnsafe(this.pieceBytes);
    this.source.fill(piece).then(
      (n) => {
        this.reading = false;
        if (n > 0) for (const b of this.live()) b.push(piece.subarray(0, n));
        if (n < piece.length) this.ended = true;
        this.wake();
      },
      (err: unknown) => {
        this.reading = false;
        this.error = err instanceof Error ? err : new Error(String(err));
        this.wake();
      },
    );
  }

  /** A branch consumed or left: the window may have room again, and a branch gone may be the last. */
  released(): void {
    if (this.live().length === 0) {
      this.source.destroy();
      this.wake();
      return;
    }
    if (this.waiters.length > 0) this.wake();
  }
}

class Branch implements ByteSource {
  private readonly queue: Buffer[] = [];
  queued = 0;
  closed = false;
  private error: Error | undefined;

  constructor(private readonly tee: Tee) {}

  get lastDataAt(): number {
    return this.tee.blocked ? performance.now() : this.tee.source.lastDataAt;
  }

  get totalBytes(): number | undefined {
    return this.tee.source.totalBytes;
  }

  push(piece: Buffer): void {
    this.queue.push(piece);
    this.queued += piece.length;
  }

  async fill(target: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < target.length) {
      if (this.error) throw this.error;
      const head = this.queue[0];
      if (!head) {
        if (this.tee.error) throw this.tee.error;
        if (this.tee.ended) break;
        await this.tee.changed();
        continue;
      }
      const n = Math.min(head.length, target.length - filled);
      target.set(head.subarray(0, n), filled);
      filled += n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
      this.tee.released();
    }
    return filled;
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.error = err ?? new Error('input closed');
    this.queue.length = 0;
    this.queued = 0;
    this.tee.released();
  }
}
