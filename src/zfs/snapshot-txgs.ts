import type { StreamSummary } from '../stream/validator.js';
import type { Zfs } from './zfs.js';

/**
 * `createtxg` of a stream's snapshots (and its base), looked up by GUID in the datasets the
 * stream names, for the manifest: it orders snapshots taken in the same second
 * (archive/plan/snapshot-order.ts). Best effort: no zfs, no such dataset, or a snapshot that is gone
 * or was re-created (another GUID) just leaves the txg out — archiving never fails for it.
 */
export async function localSnapshotTxgs(zfs: Zfs, summary: StreamSummary): Promise<Map<string, string>> {
  const wanted = new Set(summary.substreams.flatMap((s) => [s.toguid, s.fromguid]).filter((g) => g !== 0n));
  const datasets = new Set(summary.substreams.map((s) => s.toname.slice(0, s.toname.indexOf('@'))).filter(Boolean));
  const out = new Map<string, string>();
  for (const dataset of datasets) {
    try {
      // Snapshots and bookmarks: a bookmark keeps its snapshot's GUID and txg.
      for (const s of await zfs.listSnapshots(dataset)) if (wanted.has(s.guid)) out.set(s.guid.toString(), s.createtxg.toString());
    } catch {
      // not on this host (or no zfs at all): nothing to record
    }
  }
  return out;
}
