import type { StreamSummary } from '../stream/validator.js';
import type { Zfs } from './zfs.js';

const TXG_LOOKUP_TIMEOUT_MS = 60_000;

/**
 * `createtxg` of a stream's snapshots (and its base), looked up by GUID in the datasets the
 * stream names, for the manifest: it orders snapshots taken in the same second
 * (archive/plan/snapshot-order.ts). Best effort: no zfs, no such dataset, or a snapshot that is gone
 * or was re-created (another GUID) just leaves the txg out — archiving never fails for it.
 * Nor waits on it: the stream is uploaded by then and only its commit is left, so a `zfs list`
 * that hangs (a suspended pool) is stopped after `timeoutMs` and the txgs left out.
 */
export async function localSnapshotTxgs(zfs: Zfs, summary: StreamSummary, timeoutMs = TXG_LOOKUP_TIMEOUT_MS): Promise<Map<string, string>> {
  const wanted = new Set(summary.substreams.flatMap((s) => [s.toguid, s.fromguid]).filter((g) => g !== 0n));
  const datasets = new Set(summary.substreams.map((s) => s.toname.slice(0, s.toname.indexOf('@'))).filter(Boolean));
  const out = new Map<string, string>();
  for (const dataset of datasets) {
    try {
      // Snapshots and bookmarks: a bookmark keeps its snapshot's GUID and txg.
      for (const s of await zfs.listSnapshots(dataset, { timeoutMs })) if (wanted.has(s.guid)) out.set(s.guid.toString(), s.createtxg.toString());
    } catch {
      // not on this host (or no zfs at all): nothing to record
    }
  }
  return out;
}
