import { randomBytes } from 'node:crypto';
import type { Dir, Dirent } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, opendir, readlink, realpath, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { type Backend, type ByteRange, checkRange, type ListOptions, type LoadConsumer, type LoadOptions, NotFoundError, type ObjectInfo, StorageError } from './backend.js';
import { consumeRead, rangeOf } from './bodies.js';
import { entryTypeOf, placeKey, type TreeOps, UnsafeEntryError } from './confined.js';
import { CREATE_FLAGS, direntType, errCode, forEachLimit, isAbsent, makeDirs, READ_FLAGS, storageErrorFrom, syncDir } from './local-fs.js';

/** Temporary files of unfinished puts start with this; `list` never shows them. */
export const TEMP_PREFIX = '.tmp-';

/**
 * A directory as storage (removable media, NFS mount, tests). Key "a/b/c" is the file
 * `<root>/a/b/c`. Puts go to a temp file in the same directory that is fsynced and then renamed
 * over the final name, so a crash at any point leaves either the old object, the new one, or a
 * `.tmp-*` file that `list` ignores — never a partial file under a real key. Nothing inside the
 * root is trusted (confined.ts): no link is followed, no special file opened, and what is opened
 * is checked to lie under the root.
 */
export class LocalBackend implements Backend {
  readonly root: string;
  readonly location: string;
  /** Local disks gain little from more parallelism; a few hide fsync latency. */
  readonly connections = 4;
  /** The root with its own links resolved (the root itself is the user's choice), once known. */
  private realRoot: string | undefined;

  /** The checks of confined.ts on this directory. */
  private readonly tree: TreeOps = {
    lstat: async (rel) => {
      const path = this.abs(rel);
      try {
        const st = await lstat(path);
        return { type: entryTypeOf(st.mode), size: st.size, modified: st.mtime };
      } catch (err) {
        if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
        throw storageErrorFrom(err, 'read', path);
      }
    },
    mkdir: async (rel) => {
      const path = this.abs(rel);
      try {
        await mkdir(path, 0o755);
        return true;
      } catch (err) {
        if (errCode(err) === 'EEXIST') return false;
        throw storageErrorFrom(err, 'create directory', path);
      }
    },
  };

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
    this.location = this.root;
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, ...rel.split('/'));
  }

  /** Maps a key to its file, refusing keys that could escape the root or hide as temp files. */
  private pathOf(key: string): string {
    const parts = key.split('/');
    const bad = key.length === 0 || key.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TEMP_PREFIX));
    if (bad) throw new StorageError(`${this.location}: invalid object key ${JSON.stringify(key)}`, true);
    return join(this.root, ...parts);
  }

  /**
   * Where an open file really is must be under the root: the directories were checked before
   * the open, and this closes the gap of one swapped for a link in between. Linux only
   * (/proc/self/fd); elsewhere the checks before the open stand alone.
   */
  private async checkOpened(handle: FileHandle, key: string, action: string): Promise<void> {
    let real: string;
    try {
      real = await readlink(`/proc/self/fd/${handle.fd}`);
      this.realRoot ??= await realpath(this.root);
    } catch {
      return;
    }
    if (!real.startsWith(this.realRoot === '/' ? '/' : `${this.realRoot}/`)) {
      throw new UnsafeEntryError(this.location, action, key, dirname(key), 'symlink');
    }
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
      handle = await this.createTemp(key, tmp, file);
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy(); // do not leave the producer blocked
      throw err;
    }
    let written = 0;
    try {
      await this.checkOpened(handle, key, 'write');
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
      // rename replaces whatever entry holds the name (a planted link is replaced, not followed).
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
  private async createTemp(key: string, tmp: string, file: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      try {
        await makeDirs(this.root);
        await placeKey(this.tree, { location: this.location, key, action: 'write' }, { create: true });
        return await open(tmp, CREATE_FLAGS, 0o644);
      } catch (err) {
        if (err instanceof StorageError) throw err;
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
    const where = { location: this.location, key, action: 'read' };
    if (!(await placeKey(this.tree, where, { object: true })).found) throw new NotFoundError(key, this.location);
    let handle: FileHandle;
    try {
      handle = await open(file, READ_FLAGS);
    } catch (err) {
      if (isAbsent(err)) throw new NotFoundError(key, this.location);
      if (errCode(err) === 'ELOOP') throw new UnsafeEntryError(this.location, 'read', key, key, 'symlink'); // swapped in since the check
      throw storageErrorFrom(err, 'read', file);
    }
    try {
      const st = await handle.stat();
      const type = entryTypeOf(st.mode);
      if (type === 'directory') throw new NotFoundError(key, this.location);
      if (type !== 'file') throw new UnsafeEntryError(this.location, 'read', key, key, type);
      await this.checkOpened(handle, key, 'read');
      return { handle, size: st.size, file };
    } catch (err) {
      await handle.close();
      throw err instanceof StorageError ? err : storageErrorFrom(err, 'read', file);
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
    this.pathOf(key);
    const placed = await placeKey(this.tree, { location: this.location, key, action: 'read' }, { object: true });
    if (!placed.object) throw new NotFoundError(key, this.location);
    return { key, size: placed.object.size, modified: placed.object.modified };
  }

  /**
   * Prefixes are plain string prefixes as on S3 ("a/b" matches "a/b/c" and "a/bc"), so the walk
   * starts at the deepest directory the prefix names and filters on the full key.
   */
  async list(prefix: string, onObject: (info: ObjectInfo) => void, options: ListOptions = {}): Promise<void> {
    if (prefix.includes('\0') || prefix.split('/').some((p) => p === '..' || p === '.')) {
      throw new StorageError(`${this.location}: invalid list prefix ${JSON.stringify(prefix)}`, true);
    }
    const slash = prefix.lastIndexOf('/');
    const startRel = slash >= 0 ? prefix.slice(0, slash).replace(/\/+$/, '') : '';
    if (startRel !== '') {
      // The directories the prefix names must be real ones: a link there is reported, not walked into.
      try {
        if (!(await placeKey(this.tree, { location: this.location, key: `${startRel}/`, action: 'list' })).found) return;
      } catch (err) {
        if (!(err instanceof UnsafeEntryError)) throw err;
        options.onUnsafe?.({ key: err.entry, type: err.entryType });
        return;
      }
    }
    await this.walk(startRel, prefix, onObject, options);
  }

  private async walk(rel: string, prefix: string, onObject: (info: ObjectInfo) => void, options: ListOptions): Promise<void> {
    const dir = this.abs(rel);
    // Entries one at a time (opendir), not the whole directory as an array: a stream of 500,000
    // chunks is one directory of as many files (issue 17).
    let entries: Dir;
    try {
      entries = await opendir(dir, { bufferSize: 256 });
    } catch (err) {
      if (isAbsent(err)) return; // nothing stored under this prefix
      throw storageErrorFrom(err, 'list', dir);
    }
    const it = entries[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Dirent>;
        try {
          next = await it.next();
        } catch (err) {
          throw storageErrorFrom(err, 'list', dir);
        }
        if (next.done) return;
        await this.walkEntry(rel, dir, next.value, prefix, onObject, options);
      }
    } finally {
      await it.return?.().catch(() => undefined);
    }
  }

  private async walkEntry(rel: string, dir: string, entry: Dirent, prefix: string, onObject: (info: ObjectInfo) => void, options: ListOptions): Promise<void> {
    if (entry.name.startsWith(TEMP_PREFIX)) return;
    const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
    // Dirent types come from the directory itself (lstat): a link is a link, not what it points to.
    if (entry.isDirectory()) {
      const asDir = `${key}/`;
      if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) await this.walk(key, prefix, onObject, options);
      return;
    }
    if (!key.startsWith(prefix)) return;
    if (!entry.isFile()) {
      options.onUnsafe?.({ key, type: direntType(entry) });
      return;
    }
    const path = join(dir, entry.name);
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return; // deleted while we were listing
      throw storageErrorFrom(err, 'list', path);
    }
    if (st.isFile()) onObject({ key, size: st.size, modified: st.mtime });
  }

  /**
   * Removes the files, then any directories this left empty (up to the root), so pruned
   * streams do not leave a skeleton of empty directories behind. A key whose directories are
   * not real ones is refused; a link at the key itself is removed (the link, not its target).
   */
  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => [key, this.pathOf(key)] as const);
    const parents = new Set<string>();
    await forEachLimit(files, 16, async ([key, file]) => {
      if (!(await placeKey(this.tree, { location: this.location, key, action: 'delete' })).found) return;
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
      const handle = await open(probe, CREATE_FLAGS, 0o644);
      await handle.close();
    } catch (err) {
      throw storageErrorFrom(err, 'write to', this.root);
    } finally {
      await rm(probe, { force: true }).catch(() => undefined);
    }
  }

  async close(): Promise<void> {}
}
