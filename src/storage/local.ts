import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { type Backend, type ByteRange, checkRange, type LoadConsumer, type LoadOptions, NotFoundError, type ObjectInfo, StorageError } from './backend.js';
import { consumeRead, rangeOf } from './bodies.js';

/** Temporary files of unfinished puts start with this; `list` never shows them. */
export const TEMP_PREFIX = '.tmp-';

/** Why an fs error code happened, in words a user can act on. */
const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a path component is a file, not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists and is not a directory',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many symbolic links',
  EINVAL: 'invalid argument',
};

/**
 * Turns an fs error into the storage contract's errors. Permission and space problems will not
 * go away by retrying; everything unexpected (EIO, EMFILE, EBUSY…) may, so it is transient.
 */
function storageErrorFrom(err: unknown, action: string, path: string): StorageError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const reason = REASONS[code] ?? (err instanceof Error ? err.message : String(err));
  const message = `cannot ${action} ${path}: ${reason}${REASONS[code] ? ` (${code})` : ''}`;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new StorageError(message, true, 'permission', { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError(message, true, 'no-space', { cause: err });
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EEXIST':
    case 'ENAMETOOLONG':
    case 'ELOOP':
    case 'EINVAL':
      return new StorageError(message, true, 'other', { cause: err });
    default:
      return new StorageError(message, false, 'other', { cause: err });
  }
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Errors meaning "there is no object under this key" when reading. */
function isAbsent(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/**
 * A directory as storage (removable media, NFS mount, tests). Key "a/b/c" is the file
 * `<root>/a/b/c`. Puts go to a temp file in the same directory that is fsynced and then renamed
 * over the final name, so a crash at any point leaves either the old object, the new one, or a
 * `.tmp-*` file that `list` ignores — never a partial file under a real key.
 */
export class LocalBackend implements Backend {
  readonly root: string;
  readonly location: string;
  /** Local disks gain little from more parallelism; a few hide fsync latency. */
  readonly connections = 4;

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
    this.location = this.root;
  }

  /** Maps a key to its file, refusing keys that could escape the root or hide as temp files. */
  private pathOf(key: string): string {
    const parts = key.split('/');
    const bad = key.length === 0 || key.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TEMP_PREFIX));
    if (bad) throw new StorageError(`${this.location}: invalid object key ${JSON.stringify(key)}`, true);
    return join(this.root, ...parts);
  }

  async put(key: string, body: Buffer | Readable, size?: number): Promise<void> {
    // A producer that fails while we are still creating directories must not crash the
    // process with an unhandled 'error' event; iterating the stream below rethrows its error.
    if (!Buffer.isBuffer(body)) body.on('error', () => undefined);
    let file: string, dir: string, tmp: string, handle: FileHandle;
    try {
      file = this.pathOf(key);
      dir = dirname(file);
      tmp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`);
      handle = await this.createTemp(dir, tmp, file);
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy(); // do not leave the producer blocked
      throw err;
    }
    let written = 0;
    try {
      if (Buffer.isBuffer(body)) {
        await this.writeAll(handle, body, file);
        written = body.length;
      } else {
        // Errors thrown by iterating `body` are the caller's (e.g. a failing zfs send) and are
        // passed on unchanged; only our own fs errors become StorageErrors (in writeAll).
        for await (const chunk of body as AsyncIterable<Buffer | Uint8Array | string>) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          await this.writeAll(handle, buf, file);
          written += buf.length;
        }
      }
      if (size !== undefined && written !== size) {
        throw new StorageError(`cannot write ${file}: body has ${written} bytes, expected ${size}`, true);
      }
      await handle.sync().catch((err: unknown) => {
        throw storageErrorFrom(err, 'write', file);
      });
      await handle.close();
      await rename(tmp, file).catch((err: unknown) => {
        throw storageErrorFrom(err, 'write', file);
      });
    } catch (err) {
      await handle.close().catch(() => undefined); // may already be closed
      await rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    // Make the rename itself durable; some filesystems cannot fsync a directory, which is fine.
    await syncDir(dir);
  }

  /**
   * Creates the temp file, creating parent directories; retried because a concurrent `delete`
   * may prune them. Errors name the final file: that is what the user asked to write.
   */
  private async createTemp(dir: string, tmp: string, file: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      try {
        await makeDirs(dir);
        return await open(tmp, 'wx', 0o644);
      } catch (err) {
        if (errCode(err) === 'ENOENT' && attempt < 5) continue;
        throw storageErrorFrom(err, 'write', file);
      }
    }
  }

  private async writeAll(handle: FileHandle, buf: Uint8Array, path: string): Promise<void> {
    let offset = 0;
    try {
      while (offset < buf.length) {
        const { bytesWritten } = await handle.write(buf, offset, buf.length - offset);
        offset += bytesWritten;
      }
    } catch (err) {
      throw storageErrorFrom(err, 'write', path);
    }
  }

  /** Opens an object for reading; directories and missing paths alike mean "no such object". */
  private async openObject(key: string): Promise<{ handle: FileHandle; size: number; file: string }> {
    const file = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (isAbsent(err)) throw new NotFoundError(key, this.location);
      throw storageErrorFrom(err, 'read', file);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new NotFoundError(key, this.location);
      return { handle, size: st.size, file };
    } catch (err) {
      await handle.close();
      throw err instanceof NotFoundError ? err : storageErrorFrom(err, 'read', file);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const offset = range?.offset ?? 0;
    const length = range?.length;
    checkRange(key, offset, length);
    const { handle, file } = await this.openObject(key);
    if (length === 0) {
      await handle.close();
      return Readable.from([]);
    }
    const stream = handle.createReadStream({
      // 1 MiB reads: the 64 KiB default costs a syscall and a stream round trip per 64 KiB.
      highWaterMark: 1024 * 1024,
      start: offset,
      ...(length !== undefined ? { end: offset + length - 1 } : {}),
    });
    // Read errors surface on the stream; give them the same shape as the other errors.
    const out = new PassThrough();
    stream.on('error', (err) => out.destroy(storageErrorFrom(err, 'read', file)));
    out.on('close', () => stream.destroy()); // the consumer gave up: release the file handle
    return stream.pipe(out);
  }

  load(key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    return consumeRead(() => this.get(key, rangeOf(options)), consume, options.signal);
  }

  async getBuffer(key: string): Promise<Buffer> {
    const { handle, file } = await this.openObject(key);
    try {
      return await handle.readFile();
    } catch (err) {
      throw storageErrorFrom(err, 'read', file);
    } finally {
      await handle.close();
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    const file = this.pathOf(key);
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new NotFoundError(key, this.location);
      return { key, size: st.size, modified: st.mtime };
    } catch (err) {
      if (err instanceof NotFoundError) throw err;
      if (isAbsent(err)) throw new NotFoundError(key, this.location);
      throw storageErrorFrom(err, 'read', file);
    }
  }

  /**
   * Prefixes are plain string prefixes as on S3 ("a/b" matches "a/b/c" and "a/bc"), so the walk
   * starts at the deepest directory the prefix names and filters on the full key.
   */
  async list(prefix: string, onObject: (info: ObjectInfo) => void): Promise<void> {
    if (prefix.includes('\0') || prefix.split('/').some((p) => p === '..' || p === '.')) {
      throw new StorageError(`${this.location}: invalid list prefix ${JSON.stringify(prefix)}`, true);
    }
    const slash = prefix.lastIndexOf('/');
    const startRel = slash >= 0 ? prefix.slice(0, slash).replace(/\/+$/, '') : '';
    await this.walk(startRel, prefix, onObject);
  }

  private async walk(rel: string, prefix: string, onObject: (info: ObjectInfo) => void): Promise<void> {
    const dir = rel === '' ? this.root : join(this.root, ...rel.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isAbsent(err)) return; // nothing stored under this prefix
      throw storageErrorFrom(err, 'list', dir);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        // Symlinked directories are not followed (as restic does not): no cycles, no escapes.
        const asDir = `${key}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) await this.walk(key, prefix, onObject);
        continue;
      }
      if (!(entry.isFile() || entry.isSymbolicLink()) || !key.startsWith(prefix)) continue;
      const path = join(dir, entry.name);
      let st;
      try {
        st = await stat(path);
      } catch (err) {
        if (errCode(err) === 'ENOENT') continue; // deleted while we were listing (or a dangling link)
        throw storageErrorFrom(err, 'list', path);
      }
      if (st.isFile()) onObject({ key, size: st.size, modified: st.mtime });
    }
  }

  /**
   * Removes the files, then any directories this left empty (up to the root), so pruned
   * streams do not leave a skeleton of empty directories behind.
   */
  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => this.pathOf(key));
    const parents = new Set<string>();
    await forEachLimit(files, 16, async (file) => {
      try {
        await unlink(file);
      } catch (err) {
        if (isAbsent(err)) return; // no such object (or a directory, which is not one): nothing to delete
        throw storageErrorFrom(err, 'delete', file);
      }
      parents.add(dirname(file));
    });
    // Deepest first, so a chain of directories emptied by this call disappears entirely.
    const dirs = [...parents].sort((a, b) => b.length - a.length);
    for (const start of dirs) {
      for (let dir = start; dir !== this.root && dir.startsWith(this.root + sep); dir = dirname(dir)) {
        try {
          await rmdir(dir);
        } catch {
          break; // not empty (or already gone): stop climbing
        }
      }
    }
  }

  async check(): Promise<void> {
    try {
      await makeDirs(this.root);
    } catch (err) {
      throw storageErrorFrom(err, 'create directory', this.root);
    }
    const probe = join(this.root, `${TEMP_PREFIX}check-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const handle = await open(probe, 'wx', 0o644);
      await handle.close();
    } catch (err) {
      throw storageErrorFrom(err, 'write to', this.root);
    } finally {
      await rm(probe, { force: true }).catch(() => undefined);
    }
  }

  async close(): Promise<void> {}
}

/**
 * `mkdir -p` that reports the real cause: Node's `mkdir(…, { recursive: true })` turns e.g.
 * EROFS into a misleading ENOENT.
 */
async function makeDirs(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    const code = errCode(err);
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw err;
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    await makeDirs(dirname(dir));
    await mkdir(dir).catch(async (again: unknown) => {
      // Someone else may have created it in the meantime.
      if (errCode(again) !== 'EEXIST' || !(await stat(dir)).isDirectory()) throw again;
    });
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort: the data itself was already fsynced before the rename.
  }
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
