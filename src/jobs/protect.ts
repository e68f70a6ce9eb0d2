import { BOOKMARK_PREFIX, protectiveBookmark } from '../archive/plan/cadence.js';
import type { Zfs } from '../zfs/zfs.js';

/**
 * Base protection: a bookmark `pool/ds#zfs-offsite_<snap>` of the snapshot just archived, so a
 * local snapshot-pruning tool cannot break the next incremental (it is sent from the bookmark
 * when the snapshot is gone). Older zfs-offsite bookmarks are no longer needed: removed. Other
 * tools' bookmarks are left alone.
 */
export async function protectBase(zfs: Zfs, dataset: string, snapshot: string): Promise<string> {
  const keep = protectiveBookmark(dataset, snapshot);
  const bookmarks = (await zfs.listSnapshots(dataset)).filter((s) => s.kind === 'bookmark');
  if (!bookmarks.some((b) => b.name === keep)) await zfs.createBookmark(`${dataset}@${snapshot}`, keep);
  for (const b of bookmarks) {
    if (b.name !== keep && b.name.startsWith(`${dataset}#${BOOKMARK_PREFIX}`)) await zfs.destroyBookmark(b.name);
  }
  return keep;
}
