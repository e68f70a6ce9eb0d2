import type { SnapshotInfo } from '../../zfs/zfs.js';
import { TARGET_ID } from '../format/catalog.js';

/**
 * Base protection per target (pure): the bookmark that keeps an archived snapshot's GUID on the
 * source carries the short id of the target it protects (format/catalog.ts `targetId`, from the
 * archive marker), so sending a dataset to a second target never removes the first target's base.
 *
 *   pool/ds#zfs-offsite-<id>_<snap>   this version: one per target, the newest archived snapshot
 *   pool/ds#zfs-offsite_<snap>        legacy (one per dataset): still a base for any target
 *
 * The two prefixes differ in their fifth-from-last character (`-` / `_`), so neither is ever
 * read as the other whatever the snapshot is called.
 */

/** The legacy prefix: one bookmark per dataset, whatever the target. */
export const BOOKMARK_PREFIX = 'zfs-offsite_';
/** The per-target prefix: `zfs-offsite-<id>_`. */
export const TARGET_BOOKMARK_PREFIX = 'zfs-offsite-';

export interface ProtectiveBookmark {
  dataset: string;
  /** undefined: a legacy bookmark, which names no target. */
  targetId?: string;
  /** The snapshot it was made of (its short name). */
  snapshot: string;
}

/** `pool/ds#zfs-offsite-<id>_<snap>` (or the legacy `pool/ds#zfs-offsite_<snap>` without an id). */
export function protectiveBookmark(dataset: string, snapshot: string, targetId?: string): string {
  return targetId === undefined ? `${dataset}#${BOOKMARK_PREFIX}${snapshot}` : `${dataset}#${TARGET_BOOKMARK_PREFIX}${targetId}_${snapshot}`;
}

/** What a bookmark name says, when zfs-offsite made it; undefined for any other bookmark (another tool's). */
export function parseProtectiveBookmark(name: string): ProtectiveBookmark | undefined {
  const hash = name.indexOf('#');
  if (hash < 0) return undefined;
  const dataset = name.slice(0, hash);
  const mark = name.slice(hash + 1);
  if (mark.startsWith(BOOKMARK_PREFIX) && mark.length > BOOKMARK_PREFIX.length) return { dataset, snapshot: mark.slice(BOOKMARK_PREFIX.length) };
  if (!mark.startsWith(TARGET_BOOKMARK_PREFIX)) return undefined;
  const rest = mark.slice(TARGET_BOOKMARK_PREFIX.length);
  const id = rest.slice(0, 8);
  if (!TARGET_ID.test(id) || rest[8] !== '_' || rest.length === 9) return undefined;
  return { dataset, targetId: id, snapshot: rest.slice(9) };
}

/**
 * The snapshots and bookmarks a target may send from: every snapshot, its own bookmarks, legacy
 * ones (made before bookmarks named their target: a base for any target) and other tools'
 * bookmarks — never another target's, which that target removes when it archives a newer
 * snapshot, possibly between this target's choice and its `zfs send`.
 */
export function baseCandidates(source: readonly SnapshotInfo[], targetId: string | undefined): SnapshotInfo[] {
  return source.filter((s) => {
    if (s.kind === 'snapshot') return true;
    const mark = parseProtectiveBookmark(s.name);
    return mark?.targetId === undefined || mark.targetId === targetId;
  });
}

export interface BookmarkPlan {
  /** The bookmark to keep (created when missing). */
  keep: string;
  /** Bookmarks to destroy: this target's older ones, and the legacy ones `legacyRemovable` allows. */
  remove: string[];
}

/**
 * After target `targetId` archived `snapshot` of `dataset`: its new bookmark, and which bookmarks
 * go. Only this target's older bookmarks, and legacy ones its caller vouches for
 * (`legacyRemovable`: the legacy bookmark's target is known to be this one, or every target of
 * the dataset has a bookmark of its own now). Other targets' and other tools' bookmarks stay.
 */
export function planProtection(dataset: string, snapshot: string, targetId: string, bookmarks: readonly SnapshotInfo[], legacyRemovable: (bookmark: SnapshotInfo) => boolean): BookmarkPlan {
  const keep = protectiveBookmark(dataset, snapshot, targetId);
  const remove: string[] = [];
  for (const b of bookmarks) {
    if (b.kind !== 'bookmark' || b.name === keep) continue;
    const mark = parseProtectiveBookmark(b.name);
    if (!mark || mark.dataset !== dataset) continue;
    if (mark.targetId === targetId || (mark.targetId === undefined && legacyRemovable(b))) remove.push(b.name);
  }
  return { keep, remove };
}

/**
 * Bookmarks of targets the caller does not know (`known`: the ids of the targets the config
 * gives this dataset): a target removed from the config leaves its base behind, which is
 * reported — never kept silently nor deleted without being asked.
 */
export function orphanedBookmarks(source: readonly SnapshotInfo[], known: ReadonlySet<string>): string[] {
  return source.filter((s) => s.kind === 'bookmark' && parseProtectiveBookmark(s.name)?.targetId !== undefined && !known.has(parseProtectiveBookmark(s.name)!.targetId!)).map((s) => s.name);
}
