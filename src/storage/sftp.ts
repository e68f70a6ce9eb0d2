import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { FileEntryWithStats, Stats } from 'ssh2';
import { Semaphore } from '../util/semaphore.js';
import { type Backend, type ByteRange, checkRange, type ListOptions, type LoadConsumer, type LoadOptions, NotFoundError, type ObjectInfo, StorageError } from './backend.js';
import { consumeRead, rangeOf } from './bodies.js';
import { entryTypeOf, placeKey, type TreeOps, UnsafeEntryError, type Where } from './confined.js';
import { TEMP_PREFIX } from './local.js';
import { type SftpAuth, type SftpHostKeyPolicy, type SftpLocation, sftpLocationUrl } from './sftp-config.js';
import type { SftpSession } from './sftp-connect.js';
import { noSpaceError, SFTP_STATUS, sftpStatus, sftpStorageError } from './sftp-errors.js';
import { BodyFailure, PipelinedWriter, rangeReader } from './sftp-io.js';
import { isBelow } from './sftp-paths.js';
import { makeRootDirs, sftpTree } from './sftp-tree.js';
import { SftpPool } from './sftp-pool.js';

export interface SftpBackendOptions extends SftpLocation {
  auth: SftpAuth;
  hostKeys: SftpHostKeyPolicy;
  /** Parallel operations the layers above should issue. Default 4. */
  connections?: number;
  /** SSH connections opened at most (each with its own server process). Default 2. */
  sessions?: number;
}

/**
 * A directory on an SFTP server (an SFTP-only storage box, a NAS, any OpenSSH host); the URL
 * convention is described in sftp-config.ts (`sftp://user@host[:port]/relative/to/login/dir`,
 * `sftp://user@host[:port]//absolute/path`). Key "a/b/c" is the file `<path>/a/b/c`.
 *
 * Like the local backend, a put writes to a `.tmp-*` file in the target directory (creating
 * directories as needed), fsyncs it (fsync@openssh.com, when offered) and renames it over the
 * final name with posix-rename@openssh.com, which replaces an existing file atomically. Plain
 * SFTP v3 RENAME fails when the target exists; without the extension the old file is removed
 * first (a reader may briefly see no object, never a partial one). `list` ignores `.tmp-*`.
 *
 * Requests go over a small pool of SSH connections (`sessions`), each carrying many requests
 * at once; the first connection verifies the host key (and records it with accept-new) before
 * any other is opened, and every further one must present the same key.
 *
 * Nothing inside the root is trusted (confined.ts): before acting on a key its directories and
 * the object are looked at with LSTAT (SFTP has no open-without-following), all in one round
 * trip; a link or special file is refused, never followed or opened.
 */
export class SftpBackend implements Backend {
  readonly location: string;
  readonly connections: number;
  /** The SSH connections (public for tests and diagnostics). */
  readonly pool: SftpPool;
  private readonly root: string;
  /** Temp files a failed put could not remove (its connection died); removed later. */
  private readonly orphans = new Set<string>();

  constructor(options: SftpBackendOptions) {
    this.location = sftpLocationUrl(options);
    this.root = options.path;
    this.connections = options.connections ?? 4;
    const { host, port, user, auth, hostKeys } = options;
    this.pool = new SftpPool({ host, port, user, auth, hostKeys, where: this.location }, options.sessions ?? 2);
  }

  private use<T>(fn: (s: SftpSession) => Promise<T>): Promise<T> {
    return this.pool.use(fn);
  }

  /** The remote path of a key, refusing keys that could escape the root or hide as temp files. */
  private pathOf(key: string): string {
    const parts = key.split('/');
    const bad = key.length === 0 || /[\0\\]/.test(key) || parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TEMP_PREFIX));
    if (bad) throw new StorageError(`${this.location}: invalid object key ${JSON.stringify(key)}`, true);
    return this.join(key);
  }

  private join(rel: string): string {
    if (this.root === '') return rel === '' ? '.' : rel;
    if (rel === '') return this.root;
    return this.root === '/' ? `/${rel}` : `${this.root}/${rel}`;
  }

  /** The checks of confined.ts, over one session. */
  private tree(s: SftpSession): TreeOps {
    return sftpTree(
      s,
      (rel) => this.join(rel),
      (err, action, rel) => this.fail(err, action, rel),
    );
  }

  private where(key: string, action: string): Where {
    return { location: this.location, key, action };
  }

  private fail(err: unknown, action: string, key?: string): StorageError {
    return sftpStorageError(err, this.location, action, key ?? '');
  }

  async put(key: string, body: Buffer | Readable, size?: number): Promise<void> {
    // A producer failing before we read it must not be an unhandled 'error' event.
    if (!Buffer.isBuffer(body)) body.on('error', () => undefined);
    try {
      const path = this.pathOf(key);
      if (Buffer.isBuffer(body) && size !== undefined && body.length !== size) {
        throw new StorageError(`${this.location}: cannot put ${key}: body has ${body.length} bytes, expected ${size}`, true);
      }
      await this.use((s) => this.putOn(s, key, path, body, size));
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy(); // do not leave the producer blocked
      throw err;
    }
  }

  private async putOn(s: SftpSession, key: string, path: string, body: Buffer | Readable, size?: number): Promise<void> {
    await this.removeOrphans(s);
    const dir = posix.dirname(path);
    const tmp = `${dir === '.' ? '' : `${dir}/`}${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`;
    let handle: Buffer;
    try {
      handle = await this.createTemp(s, tmp, key);
    } catch (err) {
      // The server may have created the file while its answer was lost with the connection.
      if (s.dead) this.orphans.add(tmp);
      throw err;
    }
    const writer = new PipelinedWriter(s, handle);
    let open = true;
    try {
      try {
        if (Buffer.isBuffer(body)) {
          await writer.write(body);
        } else {
          const chunks = (body as AsyncIterable<Buffer | Uint8Array | string>)[Symbol.asyncIterator]();
          for (;;) {
            const pulled = chunks.next().catch((err: unknown) => {
              throw new BodyFailure(err); // the caller's own error: passed on unchanged below
            });
            pulled.catch(() => undefined); // a dead connection may win the race below
            // A dropped connection fails the put at once, even while the producer is idle.
            const next = await Promise.race([pulled, s.whenLost()]);
            if (next.done) break;
            const chunk = next.value;
            await writer.write(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
          }
        }
        await writer.finish();
      } finally {
        await writer.settle(); // no request may still write into the temp file
      }
      if (size !== undefined && writer.written !== size) {
        throw new StorageError(`${this.location}: cannot put ${key}: body has ${writer.written} bytes, expected ${size}`, true);
      }
      if (s.hasExtension('fsync@openssh.com')) {
        await s.call((sftp, done) => sftp.ext_openssh_fsync(handle, done));
      }
      open = false;
      await s.call((sftp, done) => sftp.close(handle, done));
      await this.renameOver(s, tmp, path);
    } catch (err) {
      if (open) await s.call((sftp, done) => sftp.close(handle, done)).catch(() => undefined);
      await s
        .call((sftp, done) => sftp.unlink(tmp, done))
        .catch(() => {
          if (s.dead) this.orphans.add(tmp);
        });
      if (err instanceof BodyFailure) throw err.original;
      throw this.fail(await noSpaceError(s, err, dir, key, this.location), 'write', key);
    }
  }

  /**
   * Opens a new temp file ('wx': exclusive, so never through a planted link), after checking and
   * creating the directories on the way; again if a concurrent delete pruned one meanwhile.
   */
  private async createTemp(s: SftpSession, tmp: string, key: string): Promise<Buffer> {
    for (let attempt = 1; ; attempt++) {
      // The root itself may be what is missing: it is the user's path, made as given.
      if (attempt > 1) await makeRootDirs(s, this.join(''), (err, dir) => this.fail(err, 'create directory', `${dir} for ${key}`));
      try {
        await placeKey(this.tree(s), this.where(key, 'write'), { create: true });
      } catch (err) {
        if (attempt < 3 && !(err instanceof UnsafeEntryError)) continue;
        throw err;
      }
      try {
        return await s.call<Buffer>((sftp, done) => sftp.open(tmp, 'wx', { mode: 0o644 }, done));
      } catch (err) {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE || attempt >= 5) throw this.fail(err, 'write', key);
      }
    }
  }

  private async renameOver(s: SftpSession, tmp: string, path: string): Promise<void> {
    if (s.hasExtension('posix-rename@openssh.com')) {
      await s.call((sftp, done) => sftp.ext_openssh_rename(tmp, path, done));
      return;
    }
    try {
      await s.call((sftp, done) => sftp.rename(tmp, path, done));
    } catch (err) {
      if (sftpStatus(err) !== SFTP_STATUS.FAILURE) throw err;
      // SFTP v3 RENAME refuses to replace a file: remove the old version, then rename.
      await s
        .call((sftp, done) => sftp.unlink(path, done))
        .catch((e: unknown) => {
          if (sftpStatus(e) !== SFTP_STATUS.NO_SUCH_FILE) throw e;
        });
      await s.call((sftp, done) => sftp.rename(tmp, path, done));
    }
  }

  private async removeOrphans(s: SftpSession): Promise<void> {
    for (const tmp of [...this.orphans]) {
      this.orphans.delete(tmp);
      await s.call((sftp, done) => sftp.unlink(tmp, done)).catch(() => undefined);
    }
  }

  /** Opens an object for reading; directories and missing paths alike mean "no such object". */
  private async openObject(s: SftpSession, key: string): Promise<{ handle: Buffer; size: number }> {
    const path = this.pathOf(key);
    if (!(await placeKey(this.tree(s), this.where(key, 'read'), { object: true })).found) throw new NotFoundError(key, this.location);
    let handle: Buffer;
    try {
      handle = await s.call<Buffer>((sftp, done) => sftp.open(path, 'r', done));
    } catch (err) {
      if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) throw new NotFoundError(key, this.location);
      throw this.fail(err, 'read', key);
    }
    try {
      // Swapped since the check? A directory is no object; anything else is refused.
      const st = await s.call<Stats>((sftp, done) => sftp.fstat(handle, done));
      const type = entryTypeOf(st.mode);
      if (type === 'directory') throw new NotFoundError(key, this.location);
      if (type !== 'file') throw new UnsafeEntryError(this.location, 'read', key, key, type);
      return { handle, size: st.size };
    } catch (err) {
      await s.call((sftp, done) => sftp.close(handle, done)).catch(() => undefined);
      throw err instanceof StorageError ? err : this.fail(err, 'read', key);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const offset = range?.offset ?? 0;
    const length = range?.length;
    checkRange(key, offset, length);
    const s = await this.pool.acquire();
    let opened: { handle: Buffer; size: number };
    try {
      opened = await this.openObject(s, key);
    } catch (err) {
      this.pool.release(s);
      throw err;
    }
    const end = Math.min(opened.size, length === undefined ? Infinity : offset + length);
    // The stream holds the session until it ends or is destroyed.
    return rangeReader(
      s,
      opened.handle,
      offset,
      Math.max(offset, end),
      (err) => this.fail(err, 'read', key),
      async () => {
        this.pool.release(s);
        await s.call((sftp, done) => sftp.close(opened.handle, done)).catch(() => undefined);
      },
    );
  }

  /** Cancelled by destroying the read: the pipelined requests are dropped, the handle closed. */
  load(key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    return consumeRead(() => this.get(key, rangeOf(options)), consume, options.signal);
  }

  async getBuffer(key: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of await this.get(key)) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  async head(key: string): Promise<ObjectInfo> {
    this.pathOf(key);
    const placed = await this.use((s) => placeKey(this.tree(s), this.where(key, 'read'), { object: true }));
    if (!placed.object) throw new NotFoundError(key, this.location);
    return { key, size: placed.object.size, modified: placed.object.modified };
  }

  /**
   * Prefixes are plain string prefixes ("a/b" matches "a/b/c" and "a/bc"): the walk starts at
   * the deepest directory the prefix names; directories are read several at a time.
   */
  async list(prefix: string, onObject: (info: ObjectInfo) => void, options: ListOptions = {}): Promise<void> {
    if (/[\0\\]/.test(prefix) || prefix.split('/').some((p) => p === '..' || p === '.')) {
      throw new StorageError(`${this.location}: invalid list prefix ${JSON.stringify(prefix)}`, true);
    }
    const slash = prefix.lastIndexOf('/');
    const start = slash >= 0 ? prefix.slice(0, slash).replace(/\/+$/, '') : '';
    if (start !== '') {
      // The directories the prefix names must be real ones: a link there is reported, not walked into.
      try {
        if (!(await this.use((s) => placeKey(this.tree(s), this.where(`${start}/`, 'list')))).found) return;
      } catch (err) {
        if (!(err instanceof UnsafeEntryError)) throw err;
        options.onUnsafe?.({ key: err.entry, type: err.entryType });
        return;
      }
    }
    await this.walk(start, prefix, onObject, new Semaphore(8), options);
  }

  private async walk(rel: string, prefix: string, onObject: (info: ObjectInfo) => void, limit: Semaphore, options: ListOptions): Promise<void> {
    const dir = this.join(rel);
    let entries: FileEntryWithStats[];
    await limit.acquire();
    try {
      entries = await this.use((s) => s.call<FileEntryWithStats[]>((sftp, done) => sftp.readdir(dir, done)));
    } catch (err) {
      if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return; // nothing stored under this prefix
      throw this.fail(err, 'list', rel === '' ? '(the root directory)' : `${rel}/`);
    } finally {
      limit.release();
    }
    const below: Promise<void>[] = [];
    for (const { filename: name, attrs } of entries) {
      if (name === '.' || name === '..' || name.startsWith(TEMP_PREFIX)) continue;
      const key = rel === '' ? name : `${rel}/${name}`;
      // READDIR attributes are the entry's own (lstat): a link is a link, not what it points to.
      const type = entryTypeOf(attrs.mode);
      if (type === 'directory') {
        const asDir = `${key}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) below.push(this.walk(key, prefix, onObject, limit, options));
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      if (type === 'file') onObject({ key, size: attrs.size, modified: new Date(attrs.mtime * 1000) });
      else options.onUnsafe?.({ key, type });
    }
    const results = await Promise.allSettled(below);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Removes the files, then directories this left empty (up to the root, never the root). */
  async delete(keys: string[]): Promise<void> {
    const paths = keys.map((key) => [key, this.pathOf(key)] as const);
    const parents = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < paths.length) {
        const [key, path] = paths[next++]!;
        // A key whose directories are not real ones is refused; REMOVE never follows a link at the key itself.
        if (!(await this.use((s) => placeKey(this.tree(s), this.where(key, 'delete')))).found) continue;
        await this.use((s) => s.call((sftp, done) => sftp.unlink(path, done))).then(
          () => parents.add(posix.dirname(path)),
          (err: unknown) => {
            if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return; // absent: nothing to delete
            throw this.fail(err, 'delete', key);
          },
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, paths.length) }, worker));
    const rootDir = this.join('');
    for (const start of [...parents].sort((a, b) => b.length - a.length)) {
      for (let dir = start; dir !== rootDir && dir !== '.' && dir !== '/' && isBelow(dir, this.root); dir = posix.dirname(dir)) {
        const removed = await this.use((s) => s.call((sftp, done) => sftp.rmdir(dir, done))).then(
          () => true,
          () => false,
        );
        if (!removed) break; // not empty (or already gone): stop climbing
      }
    }
  }

  async check(): Promise<void> {
    await this.use(async (s) => {
      const probeKey = `${TEMP_PREFIX}check-${process.pid}-${randomBytes(4).toString('hex')}`;
      const probe = this.join(probeKey);
      await makeRootDirs(s, this.join(''), (err, dir) => this.fail(err, 'create directory', dir));
      try {
        const handle = await s.call<Buffer>((sftp, done) => sftp.open(probe, 'wx', { mode: 0o644 }, done));
        await s.call((sftp, done) => sftp.close(handle, done));
      } catch (err) {
        throw this.fail(err, 'write to', 'the target directory');
      } finally {
        await s.call((sftp, done) => sftp.unlink(probe, done)).catch(() => undefined);
      }
    });
  }

  async close(): Promise<void> {
    await this.pool.close(async (s) => {
      if (this.orphans.size > 0) await this.removeOrphans(s);
    });
  }

  /** Tests only: cut every connection, as a network failure would. */
  killConnectionsForTests(): void {
    this.pool.killForTests();
  }
}
