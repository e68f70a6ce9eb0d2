import { planProtection, TARGET_BOOKMARK_PREFIX } from '../archive/plan/bookmarks.js';
import type { SnapshotInfo, Zfs } from '../zfs/zfs.js';

/**
 * Base protection: a bookmark `pool/ds#zfs-offsite-<target id>_<snap>` of the snapshot just
 * archived to that target, so a local snapshot-pruning tool cannot break the target's next
 * incremental (it is sent from the bookmark when the snapshot is gone). This target's older
 * bookmarks are no longer needed: removed; other targets' and other tools' bookmarks are left
 * alone, and legacy ones (`zfs-offsite_<snap>`, no target id) only when `legacyRemovable` says
 * so (archive/plan/bookmarks.ts planProtection).
 */
export async function protectBase(zfs: Zfs, dataset: string, snapshot: string, targetId: string, legacyRemovable: (b: SnapshotInfo) => boolean): Promise<string> {
  const bookmarks = (await zfs.listSnapshots(dataset)).filter((s) => s.kind === 'bookmark');
  const plan = planProtection(dataset, snapshot, targetId, bookmarks, legacyRemovable);
  if (!bookmarks.some((b) => b.name === plan.keep)) await zfs.createBookmark(`${dataset}@${snapshot}`, plan.keep);
  for (const name of plan.remove) await zfs.destroyBookmark(name);
  return plan.keep;
}

/**
 * `hold: true` (config): a `zfs hold zfs-offsite-<target id>` on the snapshot just archived to
 * that target, released from the target's older snapshots. While held, no snapshot-pruning tool
 * can destroy the snapshot (its `zfs destroy` fails); other targets' and other tools' holds stay.
 */
export async function holdBase(zfs: Zfs, dataset: string, snapshot: string, targetId: string): Promise<string> {
  const tag = `${TARGET_BOOKMARK_PREFIX}${targetId}`;
  const name = `${dataset}@${snapshot}`;
  const snapshots = (await zfs.listSnapshots(dataset)).filter((s) => s.kind === 'snapshot').map((s) => s.name);
  const held = (await zfs.holds(snapshots)).filter((h) => h.tag === tag);
  if (!held.some((h) => h.snapshot === name)) await zfs.hold(tag, name);
  for (const h of held) if (h.snapshot !== name) await zfs.release(tag, h.snapshot);
  return tag;
}
