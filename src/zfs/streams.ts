import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { type ByteSource, pipeSource } from '../util/byte-source.js';
import { OperationalError } from '../util/errors.js';
import { STOP_GRACE_MS, ZfsCommandError, ZfsProcess } from './process.js';

/** A program and its arguments, the zfs prefix applied (Zfs.argv). */
export type Argv = [string, string[]];

/**
 * A running `zfs send`: the stream, and how the command ended. Whoever reads the stream decides
 * what a short or broken stream means; the handle only says what zfs send itself said.
 */
export interface SendHandle {
  /** zfs send's stdout, read straight into the caller's buffers (see openSendPipe). */
  readonly stream: ByteSource;
  /** Resolves when zfs send exited 0; rejects with ZfsCommandError, or an OperationalError when it could not run. */
  readonly completion: Promise<void>;
  /**
   * Stops zfs send (SIGTERM, our end of the pipe closed so a send still writing gets EPIPE,
   * SIGKILL after the grace period) and resolves with its own failure when it has one to tell:
   * a non-zero exit with error output, or a signal abort did not send. That failure explains a
   * broken stream better than the stream does. Safe to call after it ended.
   */
  abort(): Promise<ZfsCommandError | undefined>;
}

/**
 * A running `zfs receive`: a sink for the stream, and how the command ended.
 */
export interface ReceiveHandle {
  /** The arguments after the prefix (`receive -F -s pool/ds`). */
  readonly args: string[];
  /**
   * zfs receive's stdin. When receive dies, writes fail (EPIPE) and the sink emits 'error':
   * the writer notices it there; completion says why receive died.
   */
  readonly sink: Writable;
  /** Resolves when zfs receive exited 0; rejects with ZfsCommandError, or an OperationalError when it could not run. */
  readonly completion: Promise<void>;
  /** Ends the stream and waits for zfs receive: rejects as completion does. */
  finish(): Promise<void>;
  /**
   * Stops zfs receive (stdin closed, SIGTERM, SIGKILL after the grace period), discards the
   * saved state of a resumable receive (`zfs receive -A`, best effort), and resolves with how
   * receive ended when it did not succeed — undefined after exit 0 or when it would not stop.
   */
  abort(): Promise<OperationalError | undefined>;
}

export interface StreamOptions {
  /** Time a stopped command gets to exit after each signal. */
  graceMs?: number;
}

/** Starts `zfs send` (`argv` from Zfs.argv, `args` after the prefix) with its stream in a pipe of our own. */
export function startSend(argv: Argv, args: string[], options: StreamOptions = {}): SendHandle {
  const graceMs = options.graceMs ?? STOP_GRACE_MS;
  const pipe = openSendPipe();
  let proc: ZfsProcess;
  try {
    const child = spawn(argv[0], argv[1], { stdio: ['ignore', pipe.writeFd, 'pipe'] });
    proc = new ZfsProcess(child, args, (err) => new OperationalError(`cannot run zfs send: ${err.message}`));
  } catch (err) {
    closeSync(pipe.readFd);
    throw err;
  } finally {
    closeSync(pipe.writeFd); // the child holds its own copy: EOF comes when it exits
  }
  const stream = pipeSource(pipe.readFd);
  let closed = false;
  return {
    stream,
    completion: proc.completion,
    async abort() {
      await proc.stop(graceMs, () => {
        if (closed) return;
        closed = true;
        stream.destroy();
      });
      const failure = proc.failure;
      if (!(failure instanceof ZfsCommandError) || failure.stopped) return undefined;
      return failure.signal !== null || failure.stderr.length > 0 ? failure : undefined;
    },
  };
}

export interface ReceiveStartOptions extends StreamOptions {
  /** Runs after an abort of a resumable receive (`zfs receive -A`); its failure is ignored. */
  discardState?: () => Promise<void>;
}

/** Starts `zfs receive` (`argv` from Zfs.argv, `args` after the prefix) reading the stream from stdin. */
export function startReceive(argv: Argv, args: string[], options: ReceiveStartOptions = {}): ReceiveHandle {
  const graceMs = options.graceMs ?? STOP_GRACE_MS;
  const child = spawn(argv[0], argv[1], { stdio: ['pipe', 'ignore', 'pipe'] });
  const proc = new ZfsProcess(child, args, (err) => new OperationalError(`cannot run zfs receive: ${err.message}`));
  const sink = child.stdin!;
  sink.on('error', () => undefined); // EPIPE when receive dies: its exit status says why
  return {
    args,
    sink,
    completion: proc.completion,
    async finish() {
      sink.end();
      await proc.completion;
    },
    async abort() {
      sink.destroy();
      await proc.stop(graceMs);
      await options.discardState?.().catch(() => undefined);
      return proc.failure;
    },
  };
}

/**
 * A named pipe for `zfs send`'s stdout, unlinked at once. Node's own child pipes hand every 64 KiB
 * read over as a new Buffer; reading our own pipe fills the chunk buffers in place (see
 * byte-source.ts): less CPU and ≈ 40 MiB less peak memory. The write end is opened blocking:
 * zfs send fails on a non-blocking stdout. What the child wrote stays readable after it exits.
 */
function openSendPipe(): { readFd: number; writeFd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-send-'));
  try {
    const path = join(dir, 'stream');
    execFileSync('mkfifo', ['-m', '600', path]);
    // Opening the read end first without blocking lets the write end open at once.
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return { readFd, writeFd: openSync(path, constants.O_WRONLY) };
    } catch (err) {
      closeSync(readFd);
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
