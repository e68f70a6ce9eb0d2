import type { ManifestSummary } from '../format/manifest.js';
import { planRestore } from './restore-plan.js';
import { orderSnapshots } from './snapshot-order.js';

/**
 * The nightly decisions that are pure: when a new full stream is due, what the snapshot is
 * called, and which protective bookmarks are no longer needed.
 */

export interface CadencePolicy {
  /** A new full when the newest full was archived this long ago or longer. */
  fullEveryMs?: number;
  /** A new full when the newest snapshot's chain has this many incrementals after its full. */
  maxChain?: number;
}

export interface CadenceDecision {
  full: boolean;
  reason: string;
}

export function decideFull(dataset: string, streams: readonly ManifestSummary[], policy: CadencePolicy, now: Date): CadenceDecision {
  // The newest full by the snapshot order (its snapshot, then when it was archived).
  const newestFull = orderSnapshots(streams).streams.findLast((m) => m.kind === 'full');
  if (!newestFull) return { full: true, reason: 'the archive holds no full stream of this dataset' };
  const age = now.getTime() - Date.parse(newestFull.finishedAt);
  if (policy.fullEveryMs !== undefined && age >= policy.fullEveryMs) {
    return { full: true, reason: `the newest full was archived ${Math.floor(age / 86_400_000)} day(s) ago (full_every)` };
  }
  if (policy.maxChain !== undefined) {
    try {
      const chain = planRestore({ dataset, streams }).units;
      const incrementals = chain.reduce((n, u) => n + (u.manifest.kind === 'full' ? 0 : u.last - u.first + 1), 0);
      if (incrementals >= policy.maxChain) return { full: true, reason: `the chain has ${incrementals} incremental(s) (max_chain ${policy.maxChain})` };
    } catch {
      return { full: true, reason: 'the newest archived snapshot is not restorable (broken chain)' };
    }
  }
  return { full: false, reason: 'incremental from the newest archived snapshot' };
}

/** `<prefix>_20261122T020000Z`: sortable, and only characters every ZFS accepts. */
export function snapshotName(prefix: string, now: Date): string {
  return `${prefix}_${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

/** The protective bookmark's name lives with the per-target rules (bookmarks.ts). */
export { BOOKMARK_PREFIX, protectiveBookmark } from './bookmarks.js';
