import { closeSync, fstatSync, read, statSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Socket, type SocketConstructorOpts } from 'node:net';
import type { Readable } from 'node:stream';
import { copyInto } from './bytes.js';

/**
 * Where the bytes of a send stream come from, filling chunk buffers in place. A pipe or a file
 * is read straight into the (shared) chunk buffer: no 64 KiB Buffer per read, no copy, no
 * garbage — on the main thread that was ≈ 1 s of CPU per GiB (read, copy, GC) in the profile.
 * Any other Readable (e.g. the stdout of a spawned `zfs send`) is copied piece by piece.
 */
export interface ByteSource {
  /** Fills `target` from its start; resolves with the bytes written, fewer than its length only at the end of the input. */
  fill(target: Uint8Array): Promise<number>;
  /** performance.now() of the last bytes received (stall detection). */
  readonly lastDataAt: number;
  /** Stops reading; a pending or later `fill` rejects with `err` (when given). */
  destroy(err?: Error): void;
  /** The input's size when it is a regular file (`put --input FILE`, stdin redirected from one), for the progress line. */
  readonly totalBytes?: number;
}

/** Standard input as the fastest source it allows (a pipe, a file, or a plain stream). */
export function stdinSource(): ByteSource {
  const stat = fstatSync(0);
  if (stat.isFIFO() || stat.isSocket()) return new PipeSource(0);
  if (stat.isFile()) return new FileSource(Promise.resolve(0), stat.size);
  return new ReadableSource(process.stdin);
}

export function fileSource(path: string): ByteSource {
  const stat = statSync(path, { throwIfNoEntry: false });
  return new FileSource(open(path, 'r'), stat?.isFile() ? stat.size : undefined);
}

/** A pipe or socket file descriptor (e.g. a named pipe that a child writes into). */
export function pipeSource(fd: number): ByteSource {
  return new PipeSource(fd);
}

export function readableSource(input: Readable): ByteSource {
  return new ReadableSource(input);
}

class ReadableSource implements ByteSource {
  lastDataAt = performance.now();
  private readonly pieces: AsyncIterator<Buffer | string>;
  private rest: Buffer | undefined;

  constructor(private readonly input: Readable) {
    this.pieces = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  }

  async fill(target: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < target.length) {
      if (!this.rest) {
        const next = await this.pieces.next();
        if (next.done) break;
        this.rest = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        this.lastDataAt = performance.now();
      }
      const n = Math.min(target.length - filled, this.rest.length);
      copyInto(target, this.rest.subarray(0, n), filled);
      filled += n;
      this.rest = n < this.rest.length ? this.rest.subarray(n) : undefined;
    }
    return filled;
  }

  destroy(err?: Error): void {
    this.input.destroy(err);
  }
}

/** A file (or stdin redirected from one): positionless reads, so stdin keeps its offset semantics. */
class FileSource implements ByteSource {
  lastDataAt = performance.now();
  private error: Error | undefined;

  constructor(
    private readonly handle: Promise<FileHandle | number>,
    readonly totalBytes?: number,
  ) {}

  async fill(target: Uint8Array): Promise<number> {
    const handle = await this.handle;
    let filled = 0;
    while (filled < target.length) {
      if (this.error) throw this.error;
      const n = typeof handle === 'number' ? await readFd(handle, target, filled) : (await handle.read(target, filled, target.length - filled, null)).bytesRead;
      if (n === 0) break;
      filled += n;
      this.lastDataAt = performance.now();
    }
    return filled;
  }

  destroy(err?: Error): void {
    this.error ??= err ?? new Error('input closed');
    void this.handle.then((h) => (typeof h === 'number' ? undefined : h.close())).catch(() => undefined);
  }
}

function readFd(fd: number, target: Uint8Array, offset: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, target, offset, target.length - offset, null, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * A pipe read by libuv straight into the caller's buffer (net.Socket `onread`). A pipe may be
 * non-blocking, which rules out fs.read. Between fills the socket is paused: backpressure.
 */
class PipeSource implements ByteSource {
  lastDataAt = performance.now();
  private socket: Socket | undefined;
  private target: Uint8Array | undefined;
  private filled = 0;
  /** Bytes read while no fill had room (at most one read's worth), delivered first next time. */
  private overflow: Buffer[] = [];
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private pending: { resolve(n: number): void; reject(err: Error): void } | undefined;
  private ended = false;
  private closed = false;
  private error: Error | undefined;

  constructor(private readonly fd: number) {}

  fill(target: Uint8Array): Promise<number> {
    if (this.error) return Promise.reject(this.error);
    this.target = target;
    this.filled = 0;
    while (this.overflow.length > 0 && this.filled < target.length) this.take(this.overflow.shift()!);
    if (this.filled === target.length || this.ended) return Promise.resolve(this.finishFill());
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      if (this.socket) this.socket.resume();
      else this.socket = this.open();
    });
  }

  private open(): Socket {
    // `onread` works in the constructor too (Node ≥ 12), but @types/node only declares it for connect().
    const socket = new Socket({
      fd: this.fd,
      readable: true,
      writable: false,
      onread: {
        // Called before each read: the rest of the chunk buffer, or scratch when it is full.
        buffer: () => (this.target && this.filled < this.target.length ? this.target.subarray(this.filled) : this.scratch),
        callback: (n: number, buf: Uint8Array) => this.onRead(n, buf),
      },
    } as SocketConstructorOpts);
    socket.on('end', () => {
      this.ended = true;
      this.settle();
    });
    socket.on('error', (err) => this.fail(err));
    return socket;
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    this.lastDataAt = performance.now();
    if (buf === this.scratch) this.take(Buffer.from(this.scratch.subarray(0, n)));
    else this.filled += n;
    if (!this.target || this.filled === this.target.length) {
      this.settle();
      return false; // pause until the next fill
    }
    return true;
  }

  /** Copies bytes that arrived outside the chunk buffer; what does not fit waits. */
  private take(bytes: Buffer): void {
    const room = this.target ? this.target.length - this.filled : 0;
    const n = Math.min(room, bytes.length);
    if (n > 0) {
      copyInto(this.target!, bytes.subarray(0, n), this.filled);
      this.filled += n;
    }
    if (n < bytes.length) this.overflow.unshift(bytes.subarray(n));
  }

  private finishFill(): number {
    const n = this.filled;
    this.target = undefined;
    this.filled = 0;
    return n;
  }

  private settle(): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    pending.resolve(this.finishFill());
  }

  private fail(err: Error): void {
    this.error ??= err;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(this.error);
  }

  destroy(err?: Error): void {
    this.fail(err ?? new Error('input closed'));
    if (this.socket) this.socket.destroy();
    else if (!this.closed) closeSync(this.fd); // never read: the descriptor is still ours to close
    this.closed = true;
  }
}
