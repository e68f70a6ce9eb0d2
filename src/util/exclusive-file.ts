import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describeEntryType, entryTypeOf } from './file-type.js';
import { closeSync, constants, createWriteStream, fstatSync, fsyncSync, linkSync, lstatSync, openSync, renameSync, rmSync, type Stats, statSync, type WriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { errorMessage, OperationalError, UsageError } from './errors.js';

/**
 * Files the program creates OUTSIDE a target (`restore --output FILE`, `--log-file FILE`) live in
 * directories other people may write to (/tmp). Nothing here follows a symbolic link at the file's
 * own name or writes into a FIFO or device planted there:
 *
 * - `ExclusiveFile` writes a new file under a random temporary name in FILE's directory, created
 *   with O_CREAT|O_EXCL|O_NOFOLLOW (so never an existing file or link), and only when it is
 *   complete and on disk puts it at FILE: without `force` by link(2), which fails if FILE has
 *   appeared meanwhile; with `force` by rename(2), which replaces a link itself, never its target.
 * - `openAppendOnly` opens a file to append to (a log kept across runs): never through a link,
 *   never anything but a regular file (O_NONBLOCK so a FIFO cannot hang the open), a missing one
 *   created exclusively.
 *
 * The directory part of the path is trusted (it is the user's choice); only the last component is
 * guarded.
 */

/** Why a file was refused before anything was written to it (exit 2, nothing changed). */
export type FileRefusalKind = 'file-exists' | 'file-not-regular' | 'no-directory' | 'file-denied';

export class FileRefusedError extends UsageError {
  override name = 'FileRefusedError';
  declare readonly kind: FileRefusalKind;
  constructor(
    kind: FileRefusalKind,
    readonly path: string,
    message: string,
  ) {
    super(message, { kind });
  }
}

/** Creating, writing or renaming the file failed (disk full, I/O error). Exit 1; FILE untouched. */
export class FileWriteError extends OperationalError {
  override name = 'FileWriteError';
  declare readonly kind: 'file-io';
  constructor(
    readonly path: string,
    readonly code: string | undefined,
    message: string,
    cause?: unknown,
  ) {
    super(message, { kind: 'file-io', cause });
  }
}

export interface ExclusiveFileOptions {
  /** Replace an existing regular file or symbolic link at the path (never a directory, FIFO, socket or device). */
  force?: boolean;
  /** The flag that sets `force`, for the message that refuses an existing file. */
  forceFlag?: string;
  /** Permissions of the new file (less the umask); 0600 by default. */
  mode?: number;
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** link(2) fails with these where the file system has no hard links: fall back to check + rename. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * Temporary files not yet committed or discarded. A process that ends before either (Ctrl-C on
 * `restore --output`: src/cli/interrupt.ts exits at once) removes them on its way out, so no
 * half-written `FILE.<random>.partial` is left behind.
 */
const unfinished = new Set<string>();
let removedOnExit = false;

function trackUnfinished(tempPath: string): void {
  unfinished.add(tempPath);
  if (removedOnExit) return;
  removedOnExit = true;
  process.once('exit', () => {
    for (const path of unfinished) rmSync(path, { force: true });
  });
}

/** A new file written under a temporary name and put at its path only when complete. */
export class ExclusiveFile {
  /** Ours until stream() hands it to the stream, which closes it when destroyed. */
  private fd: number | undefined;
  private sink: WriteStream | undefined;

  private constructor(
    readonly path: string,
    /** Where the bytes are until commit(): `FILE.<random>.partial` in FILE's directory. */
    readonly tempPath: string,
    fd: number,
    private readonly options: ExclusiveFileOptions,
  ) {
    this.fd = fd;
    trackUnfinished(tempPath);
  }

  /** Refuses an existing FILE (unless `force` allows it) or a missing directory, then creates the temporary file. */
  static create(path: string, options: ExclusiveFileOptions = {}): ExclusiveFile {
    checkReplaceable(path, options);
    for (let attempt = 0; ; attempt++) {
      const temp = join(dirname(path), `${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
      try {
        return new ExclusiveFile(path, temp, openSync(temp, CREATE_FLAGS, options.mode ?? 0o600), options);
      } catch (err) {
        // Someone else's file at our random name: try another name, a few times.
        if (codeOf(err) === 'EEXIST' && attempt < 4) continue;
        throw openFailure(path, err, 'create');
      }
    }
  }

  /** The stream that writes the temporary file (one per file). */
  stream(): Writable {
    if (this.fd === undefined) throw new Error(`${this.tempPath} is closed`);
    // autoClose off: commit() flushes the file to disk before it is closed.
    this.sink ??= createWriteStream(this.tempPath, { fd: this.fd, autoClose: false });
    return this.sink;
  }

  /** Ends the stream, flushes the file to disk and puts it at its path. On failure the temporary file is removed. */
  async commit(): Promise<void> {
    try {
      if (this.sink) {
        if (this.sink.destroyed) throw this.writeFailed(this.sink.errored ?? new Error('the file was closed before it was complete'));
        this.sink.end();
        await once(this.sink, 'finish');
      }
      const fd = this.fd!;
      this.fd = undefined;
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (this.options.force) {
        checkReplaceable(this.path, this.options);
        renameSync(this.tempPath, this.path);
      } else {
        this.linkNoReplace();
      }
      unfinished.delete(this.tempPath);
    } catch (err) {
      await this.discard();
      throw err instanceof UsageError || err instanceof OperationalError ? err : this.writeFailed(err);
    }
    syncDirectory(dirname(this.path));
  }

  /** Closes and removes the temporary file; the path is left as it was. Safe to call twice. */
  async discard(): Promise<void> {
    const sink = this.sink;
    if (sink) {
      // A destroyed stream closes the descriptor itself, once its writes in flight are done.
      sink.destroy();
      if (!sink.closed) await once(sink, 'close').catch(() => undefined);
    } else if (this.fd !== undefined) {
      closeSync(this.fd);
    }
    this.fd = undefined;
    rmSync(this.tempPath, { force: true });
    unfinished.delete(this.tempPath);
  }

  /** A write failure as an error naming the file (the cause says what failed: ENOSPC…). */
  writeFailed(cause: unknown): FileWriteError {
    // An error that wraps the system's one (the restore pipeline's OutputError) carries it as `reason`.
    const wrapped = typeof cause === 'object' && cause !== null && 'reason' in cause ? cause.reason : undefined;
    const reason = wrapped ?? cause;
    return new FileWriteError(this.path, codeOf(reason), `cannot write ${this.path}: ${errorMessage(reason)}`, cause);
  }

  /** link(2) refuses to replace anything that appeared at the path since create(); then the temporary name goes. */
  private linkNoReplace(): void {
    try {
      linkSync(this.tempPath, this.path);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EEXIST') checkReplaceable(this.path, this.options);
      if (!NO_HARD_LINKS.has(code ?? '')) throw err;
      checkReplaceable(this.path, this.options);
      renameSync(this.tempPath, this.path);
      return;
    }
    rmSync(this.tempPath, { force: true });
  }
}

/**
 * Throws unless a file may be created at `path`: its directory exists, and nothing is there — or,
 * with `force`, a regular file or symbolic link (which a rename replaces without following it).
 */
export function checkReplaceable(path: string, options: ExclusiveFileOptions = {}): void {
  checkDirectory(path, 'create');
  const found = lstatOrNone(path);
  if (!found) return;
  if (!found.isFile() && !found.isSymbolicLink()) {
    throw new FileRefusedError('file-not-regular', path, `cannot replace ${path}: it is ${describe(found)}; only a regular file or a symbolic link is replaced`);
  }
  if (!options.force) throw new FileRefusedError('file-exists', path, `${path} exists (${describe(found)}): ${options.forceFlag ?? '--force'} replaces it`);
}

/**
 * Opens a regular file to append to, creating a missing one (mode 0600 less the umask) exclusively.
 * `label` names the file in messages ("the log file").
 */
export function openAppendOnly(path: string, label: string): number {
  checkDirectory(path, 'open', label);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, APPEND_FLAGS);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw openFailure(path, err, 'open', label);
      try {
        fd = openSync(path, APPEND_FLAGS | constants.O_CREAT | constants.O_EXCL, 0o600);
      } catch (created) {
        // Appeared between the two opens: open it as an existing file (whatever it is, checked below).
        if (codeOf(created) === 'EEXIST' && attempt < 2) continue;
        throw openFailure(path, created, 'open', label);
      }
    }
    const found = fstatSync(fd);
    if (!found.isFile()) {
      closeSync(fd);
      throw new FileRefusedError('file-not-regular', path, `cannot open ${label} ${path}: it is ${describe(found)}, not a regular file`);
    }
    return fd;
  }
}

/** The directory the file goes in must exist: a typo there is bad input, not a failed write. */
function checkDirectory(path: string, verb: string, label?: string): void {
  const dir = dirname(path);
  const what = label ? `${label} ${path}` : path;
  let found: Stats;
  try {
    found = statSync(dir);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FileRefusedError('no-directory', path, `cannot ${verb} ${what}: no such directory`);
    throw openFailure(path, err, verb, label);
  }
  if (!found.isDirectory()) throw new FileRefusedError('no-directory', path, `cannot ${verb} ${what}: ${dir} is not a directory`);
}

/** An open(2) error as one of ours: refusals (link, special file, permissions) are exit 2. */
function openFailure(path: string, err: unknown, verb: string, label?: string): Error {
  const what = label ? `${label} ${path}` : path;
  const code = codeOf(err);
  switch (code) {
    case 'ELOOP':
    case 'ENXIO': // a FIFO without a reader (O_NONBLOCK), or a device that is not there
    case 'EISDIR': {
      const found = lstatOrNone(path);
      const it = found ? describe(found) : 'not a regular file';
      return new FileRefusedError('file-not-regular', path, `cannot ${verb} ${what}: it is ${it}, not a regular file`);
    }
    case 'ENOENT':
    case 'ENOTDIR':
      return new FileRefusedError('no-directory', path, `cannot ${verb} ${what}: no such directory`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new FileRefusedError('file-denied', path, `cannot ${verb} ${what}: permission denied (${code})`);
    default:
      return new FileWriteError(path, code, `cannot ${verb} ${what}: ${errorMessage(err)}`, err);
  }
}

function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return undefined;
    throw openFailure(path, err, 'check');
  }
}

function describe(s: Stats): string {
  return describeEntryType(entryTypeOf(s.mode));
}

/** The rename is durable only once the directory is flushed too; a file system that cannot is not an error. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort: the file itself is already on disk
  }
}

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
