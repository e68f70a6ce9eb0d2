import type { SnapshotInfo } from '../../zfs/zfs.js';

export interface BaseSelectionInput {
  /** The snapshot to send. */
  target: SnapshotInfo;
  /** Snapshots and bookmarks of the source dataset. */
  source: readonly SnapshotInfo[];
  /** Snapshot GUIDs the archive holds, with whether the stream that holds them is raw. */
  archived: ReadonlyMap<string, { raw: boolean }>;
  /** Whether the new stream will be raw: raw and non-raw links never mix in a chain. */
  raw: boolean;
}

/**
 * The base for an incremental send: the newest snapshot (or bookmark) older than the target
 * that still exists on the source and whose GUID the archive holds in a stream of the same
 * raw-ness. Undefined → send a full stream. Pure.
 */
export function selectBase(input: BaseSelectionInput): SnapshotInfo | undefined {
  let best: SnapshotInfo | undefined;
  for (const candidate of input.source) {
    if (candidate.createtxg >= input.target.createtxg || candidate.guid === input.target.guid) continue;
    const archived = input.archived.get(candidate.guid.toString());
    if (!archived || archived.raw !== input.raw) continue;
    const newer = !best || candidate.createtxg > best.createtxg;
    // A snapshot beats its own bookmark: same GUID and txg, and -I needs a snapshot.
    const preferred = best && candidate.createtxg === best.createtxg && candidate.kind === 'snapshot' && best.kind === 'bookmark';
    if (newer || preferred) best = candidate;
  }
  return best;
}
