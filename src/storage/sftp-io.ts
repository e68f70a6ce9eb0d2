import { Readable } from 'node:stream';
import type { SftpSession } from './sftp-connect.js';

/**
 * Pipelined SFTP reads and writes. ssh2 sends one request at a time when given a large buffer
 * (it splits it into server-sized pieces, each sent after the previous one is acknowledged),
 * which makes throughput a function of the round-trip time. Here many pieces are in flight at
 * once, as OpenSSH's own sftp client does (64 requests of 32 KiB by default).
 */

/** Requests in flight per file. × the server's maximum (255 KiB for OpenSSH) ≈ 4 MiB. */
const WINDOW = 16;
/** Largest single request: OpenSSH accepts 255 KiB (limits@openssh.com); others 32 KiB. */
const MAX_PIECE = 256 * 1024;

/**
 * Writes a file through an open handle from position 0, keeping up to WINDOW requests in flight.
 * Small buffers (stream chunks) are gathered into full-size requests. Errors of a request are
 * rethrown by the next `write` or by `finish`.
 */
export class PipelinedWriter {
  private readonly piece: number;
  private position = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;

  constructor(
    private readonly session: SftpSession,
    private readonly handle: Buffer,
  ) {
    this.piece = Math.max(1024, Math.min(MAX_PIECE, session.maxWrite));
  }

  /** Bytes handed to `write` so far. */
  get written(): number {
    return this.position + this.gatheredBytes;
  }

  async write(data: Buffer): Promise<void> {
    this.throwIfFailed();
    if (this.gatheredBytes + data.length < this.piece) {
      this.gathered.push(data);
      this.gatheredBytes += data.length;
      return;
    }
    let rest = data;
    if (this.gatheredBytes > 0) {
      const fill = this.piece - this.gatheredBytes;
      await this.send(Buffer.concat([...this.gathered, rest.subarray(0, fill)]));
      this.gathered = [];
      this.gatheredBytes = 0;
      rest = rest.subarray(fill);
    }
    while (rest.length >= this.piece) {
      await this.send(rest.subarray(0, this.piece));
      rest = rest.subarray(this.piece);
    }
    if (rest.length > 0) {
      this.gathered.push(rest);
      this.gatheredBytes = rest.length;
    }
  }

  /** Sends what is gathered and waits for every request; throws the first failure. */
  async finish(): Promise<void> {
    if (this.gatheredBytes > 0) {
      const last = Buffer.concat(this.gathered);
      this.gathered = [];
      this.gatheredBytes = 0;
      await this.send(last);
    }
    await this.settle();
    this.throwIfFailed();
  }

  /** Waits for outstanding requests without throwing (before closing after a failure). */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
  }

  private async send(data: Buffer): Promise<void> {
    while (this.inFlight.size >= WINDOW) await Promise.race(this.inFlight);
    this.throwIfFailed();
    const position = this.position;
    this.position += data.length;
    const request: Promise<void> = this.session
      .call((sftp, done) => sftp.write(this.handle, data, 0, data.length, position, done))
      .then(
        () => undefined,
        (err: unknown) => {
          this.failure ??= { err };
        },
      )
      .finally(() => this.inFlight.delete(request));
    this.inFlight.add(request);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.err;
  }
}

/** Reads [position, position+length) fully, or less at end of file. */
async function readFully(session: SftpSession, handle: Buffer, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await session.call<number>((sftp, done) => sftp.read(handle, buf, got, length - got, position + got, (err, bytesRead) => done(err, bytesRead)));
    if (n === 0) break; // end of file
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * A Readable over [start, end) of an open file, with up to WINDOW reads in flight. `onClose`
 * runs once when the stream ends or is destroyed (it closes the handle and frees the session);
 * read failures are passed through `mapError` and destroy the stream.
 */
export function rangeReader(session: SftpSession, handle: Buffer, start: number, end: number, mapError: (err: unknown) => Error, onClose: () => Promise<void>): Readable {
  const piece = Math.max(1024, Math.min(MAX_PIECE, session.maxRead));
  const queue: Promise<Buffer>[] = [];
  let next = start;
  let pumping = false;
  let finished = false;
  const closeOnce = (() => {
    let closing: Promise<void> | undefined;
    return () => (closing ??= onClose().catch(() => undefined));
  })();

  const out = new Readable({
    read() {
      if (!pumping) void pump();
    },
    destroy(err, callback) {
      finished = true;
      closeOnce().then(() => callback(err));
    },
  });

  async function pump(): Promise<void> {
    pumping = true;
    try {
      for (;;) {
        while (queue.length < WINDOW && next < end) {
          const len = Math.min(piece, end - next);
          const request = readFully(session, handle, next, len);
          request.catch(() => undefined); // awaited below, or dropped when the stream is destroyed
          queue.push(request);
          next += len;
        }
        const head = queue.shift();
        if (head === undefined) break;
        const data = await head;
        if (finished) return;
        if (data.length === 0) break; // the file is shorter than it was: what exists has been read
        if (!out.push(data)) return; // wait for the next read()
      }
      finished = true;
      await closeOnce();
      out.push(null);
    } catch (err) {
      out.destroy(mapError(err));
    } finally {
      pumping = false;
    }
  }
  return out;
}

/** Carries an error of the caller's body stream past the backend's error mapping. */
export class BodyFailure extends Error {
  constructor(readonly original: unknown) {
    super('body stream failed');
  }
}
