import type { ManifestSummary } from '../format/manifest.js';
import { baseOf, streamsByToGuid } from './chain-graph.js';
import { orderSnapshots } from './snapshot-order.js';

export interface Chain {
  /** The full stream the chain starts from; undefined for streams whose base is missing. */
  root?: ManifestSummary;
  /** Streams in order from the root; several branches are flattened by the snapshot order (snapshot-order.ts). */
  streams: ManifestSummary[];
  /** Snapshot names reachable through the chain, in order. */
  snapshots: string[];
}

/**
 * Groups a dataset's streams into chains by following fromguid → toguid links. A stream
 * whose base GUID is in no other stream goes to `broken` — unless it is a clone's stream whose
 * origin is archived under another dataset (`elsewhere`: snapshot GUIDs of the whole archive);
 * such a stream starts its own chain. Pure.
 */
export function buildChains(streams: readonly ManifestSummary[], elsewhere: ReadonlySet<string> = new Set()): { chains: Chain[]; broken: ManifestSummary[] } {
  const byToGuid = streamsByToGuid(streams);
  const rootOf = new Map<ManifestSummary, ManifestSummary | null>();
  const findRoot = (m: ManifestSummary, seen = new Set<ManifestSummary>()): ManifestSummary | null => {
    const known = rootOf.get(m);
    if (known !== undefined) return known;
    if (seen.has(m)) return null; // a cycle can only come from edited manifests
    seen.add(m);
    const base = baseOf(m);
    let root: ManifestSummary | null;
    if (base === '0' || (m.substreams[0]?.clone && !byToGuid.has(base) && elsewhere.has(base))) root = m;
    else {
      const parent = byToGuid.get(base);
      root = parent && parent !== m ? findRoot(parent, seen) : null;
    }
    rootOf.set(m, root);
    return root;
  };
  const chains = new Map<ManifestSummary, Chain>();
  const broken: ManifestSummary[] = [];
  // Oldest first by the snapshot order: stream ids embed names, and `s10` sorts before `s9`.
  const ordered = orderSnapshots(streams).streams;
  for (const m of ordered) {
    const root = findRoot(m);
    if (!root) {
      broken.push(m);
      continue;
    }
    let chain = chains.get(root);
    if (!chain) {
      chain = { root, streams: [], snapshots: [] };
      chains.set(root, chain);
    }
    chain.streams.push(m);
    for (const s of m.substreams) chain.snapshots.push(s.toname.slice(s.toname.indexOf('@') + 1));
  }
  return { chains: [...chains.values()], broken };
}
