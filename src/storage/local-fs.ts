import { constants, type Dirent } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type EntryType, StorageError } from './backend.js';

// The file-system helpers of the local backend (local.ts): error mapping, flags, mkdir -p.

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
export function storageErrorFrom(err: unknown, action: string, path: string): StorageError {
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

/** Opening never follows a final symlink (ELOOP instead) and never waits on a FIFO. */
export const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** A new temp file: exclusively created, never through a planted link. */
export const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Errors meaning "there is no object under this key" when reading. */
export function isAbsent(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

export function direntType(entry: Dirent): EntryType {
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isFIFO()) return 'fifo';
  if (entry.isSocket()) return 'socket';
  if (entry.isBlockDevice()) return 'block device';
  if (entry.isCharacterDevice()) return 'character device';
  return 'unknown';
}

/**
 * `mkdir -p` that reports the real cause: Node's `mkdir(…, { recursive: true })` turns e.g.
 * EROFS into a misleading ENOENT.
 */
export async function makeDirs(dir: string): Promise<void> {
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

export async function syncDir(dir: string): Promise<void> {
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

export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
