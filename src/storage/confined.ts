import { describeEntryType, type EntryType } from '../util/file-type.js';
import { StorageError } from './backend.js';

export { entryTypeOf } from '../util/file-type.js';

/**
 * The one rule of the backends that are file trees (local.ts, sftp.ts): an operation never leaves
 * the root. The target is written by other people and programs, so any directory on the way to
 * a key may have been replaced by a symbolic link to somewhere else, and any name may be a FIFO
 * (opening it would hang) or a device. Before acting on a key, every directory between the root
 * and the key is looked at without following links (lstat), all at once, and must be a real
 * directory; the object itself must be a regular file. A link or special file is refused with an
 * `UnsafeEntryError`, never followed or opened. Listing skips such entries and reports them to
 * the caller (`verify` shows them).
 *
 * What remains: a process running on the same machine as the files could swap a directory for a
 * link between the check and the action. The local backend closes that for what it opens (it
 * checks where the open file really is, local.ts `checkOpened`); SFTP has no way to open without
 * following links, so there the check is as of the moment before the action.
 */

/** What lstat says of an entry. */
export interface EntryStat {
  type: EntryType;
  size: number;
  modified: Date;
}

/** The file-tree primitives a backend provides to the checks below, on paths it maps from keys. */
export interface TreeOps {
  /** What is at `rel` (a '/'-separated path under the root), not following links; undefined when absent. */
  lstat(rel: string): Promise<EntryStat | undefined>;
  /** Creates the directory `rel` (its parent exists): false when something already exists there. */
  mkdir(rel: string): Promise<boolean>;
}

/** A link or special file where the program needed a directory or a regular file: refused, never followed. */
export class UnsafeEntryError extends StorageError {
  override name = 'UnsafeEntryError';
  constructor(
    location: string,
    action: string,
    key: string,
    /** The offending entry, relative to the root. */
    readonly entry: string,
    readonly entryType: EntryType,
  ) {
    super(`${location}: refusing to ${action} ${key}: ${entry} is ${describeEntryType(entryType)} (links and special files inside a target are never followed or opened)`, true, 'unsafe-entry');
  }
}

/** The parent directories of a key under the root, outermost first: "a/b/c" → ["a", "a/b"]. */
export function parentsOf(key: string): string[] {
  const parts = key.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** Where a key stands: `found` when every directory on the way exists (and, asked for, the object). */
export interface Placement {
  found: boolean;
  /** The object's lstat, when asked for with `object` and found. */
  object?: EntryStat;
}

const ABSENT: Placement = { found: false };

/**
 * Checks the directories on the way to `key` (and, with `object`, the key itself, which must then
 * be a regular file). Not found when something on the way does not exist (or is a regular file,
 * or a directory stands where the object should be: no object there either). With `create`,
 * missing directories are made one level at a time, each looked at again if it already existed.
 */
export async function placeKey(ops: TreeOps, where: Where, options: { create?: boolean; object?: boolean } = {}): Promise<Placement> {
  const dirs = parentsOf(where.key);
  const paths = options.object ? [...dirs, where.key] : dirs;
  // All at once (one round trip on SFTP), judged outermost first: a failure below a link is the link's.
  const stats = await Promise.allSettled(paths.map((p) => ops.lstat(p)));
  for (const [i, path] of paths.entries()) {
    const settled = stats[i]!;
    if (settled.status === 'rejected') throw settled.reason;
    const type = settled.value?.type;
    if (i === dirs.length) {
      // The object itself (only when asked for).
      if (type === 'file') return { found: true, object: settled.value };
      if (type === undefined || type === 'directory') return ABSENT;
      throw new UnsafeEntryError(where.location, where.action, where.key, path, type);
    }
    if (type === 'directory') continue;
    if (type === undefined) {
      if (!options.create) return ABSENT;
      for (const missing of dirs.slice(i)) await makeDir(ops, where, missing);
      return options.object ? ABSENT : { found: true };
    }
    if (type === 'file' && !options.create) return ABSENT;
    throw unusableDirectory(where, path, type);
  }
  return { found: true };
}

/** What is being done, for messages. */
export interface Where {
  location: string;
  key: string;
  action: string;
}

async function makeDir(ops: TreeOps, where: Where, dir: string): Promise<void> {
  if (await ops.mkdir(dir)) return;
  // Someone else made it (a parallel put) — or planted something there: look again.
  const type = (await ops.lstat(dir))?.type;
  if (type === 'directory') return;
  if (type === undefined) throw new StorageError(`${where.location}: cannot ${where.action} ${where.key}: ${dir} vanished while it was being created`, false);
  throw unusableDirectory(where, dir, type);
}

function unusableDirectory(where: Where, dir: string, type: EntryType): StorageError {
  if (type === 'file') return new StorageError(`${where.location}: cannot ${where.action} ${where.key}: ${dir} is a file, not a directory`, true);
  return new UnsafeEntryError(where.location, where.action, where.key, dir, type);
}

/** An entry a listing met and did not follow or report as an object. */
export interface UnsafeEntry {
  /** Its path relative to the root, as a key would be. */
  key: string;
  type: EntryType;
}
