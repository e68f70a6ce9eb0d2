import type { ManifestSummary } from '../format/manifest.js';
import { mainSubstreams, ownLinksOf } from './chain-graph.js';

/**
 * THE order of a dataset's snapshots, used by retention, restore, `list`, cadence and `run`.
 * Pure: manifests of one dataset in, a total order of its snapshots (by GUID) out.
 *
 * Creation times have one-second resolution, and sanoid or a script takes several snapshots in
 * the same second; so the order is decided, in priority:
 *   1. the chain itself: a substream's to-snapshot is newer than its from-snapshot, and the
 *      substreams of a `-I` stream are in their order;
 *   2. `createtxg`, when both snapshots have it (recorded by newer versions, see
 *      manifest-builder.ts). A txg relation that contradicts the chain is dropped: the chain
 *      is the stronger evidence, and txgs of two pools (a dataset restored and sent on) do not
 *      compare;
 *   3. creation time (unknown counts as oldest);
 *   4. archival time: `finishedAt` of the earliest stream that holds the snapshot.
 * GUIDs, names and stream ids (which embed the name) are never compared: they say nothing about
 * age. Snapshots equal by every key keep the order in which the input first names them (the
 * catalog's order), so the result is deterministic for one archive.
 *
 * Method: Kahn's topological sort of the chain and txg relations, always taking the ready
 * snapshot that is oldest by keys 3–4. A cycle can only come from edited manifests: when no
 * snapshot is ready, the oldest remaining one by the keys is taken and its open relations are
 * dropped, so the sort always ends.
 */

export interface SnapshotOrder {
  /** GUIDs of the dataset's snapshots, oldest first. */
  oldestFirst: readonly string[];
  /** The same, newest first. */
  newestFirst: readonly string[];
  /** GUID → position in `oldestFirst` (0 = oldest). */
  rank: ReadonlyMap<string, number>;
  /** The newest snapshot, undefined when there are no streams. */
  newest: string | undefined;
  /** The streams, oldest first: by their (own) last snapshot, then base, then archival time. */
  streams: readonly ManifestSummary[];
  /** Stream → position in `streams` (0 = oldest). */
  streamRank: ReadonlyMap<ManifestSummary, number>;
}

/** Milliseconds of an ISO time; unknown or unparsable → -Infinity ("never the newest by time"). */
function timeOf(iso: string | undefined): number {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(t) ? t : -Infinity;
}

function txgOf(text: string | undefined): bigint | undefined {
  return text !== undefined && /^\d+$/.test(text) ? BigInt(text) : undefined;
}

interface Node {
  guid: string;
  creation: number;
  archived: number;
  txg?: bigint;
  /** Where the input first names the snapshot: the last, determinism-only key. */
  seen: number;
}

function collectNodes(streams: readonly ManifestSummary[]): { nodes: Node[]; index: Map<string, number> } {
  const nodes: Node[] = [];
  const index = new Map<string, number>();
  let seen = 0;
  const noteTxg = (i: number | undefined, text: string | undefined) => {
    const txg = txgOf(text);
    if (i === undefined || txg === undefined) return;
    const node = nodes[i]!;
    if (node.txg === undefined || txg < node.txg) node.txg = txg;
  };
  for (const m of streams) {
    const archived = timeOf(m.finishedAt);
    for (const s of mainSubstreams(m)) {
      let i = index.get(s.toguid);
      if (i === undefined) {
        i = nodes.length;
        index.set(s.toguid, i);
        nodes.push({ guid: s.toguid, creation: -Infinity, archived: Infinity, seen: seen++ });
      }
      const node = nodes[i]!;
      node.creation = Math.max(node.creation, timeOf(s.creation));
      node.archived = Math.min(node.archived, archived);
      noteTxg(i, s.createtxg);
    }
  }
  // The manifest-level records name the txg of the base too (it may be held by an older stream without txgs).
  for (const m of streams) {
    if (m.to) noteTxg(index.get(m.to.guid), m.to.createtxg);
    if (m.from) noteTxg(index.get(m.from.guid), m.from.createtxg);
  }
  for (const node of nodes) if (node.archived === Infinity) node.archived = -Infinity;
  return { nodes, index };
}

/** Chain relations: from → to of each own substream, and each -I substream after the one before it. */
function chainEdges(streams: readonly ManifestSummary[], index: Map<string, number>): Set<number>[] {
  const out = Array.from({ length: index.size }, () => new Set<number>());
  const link = (from: string | undefined, to: string) => {
    const a = from === undefined ? undefined : index.get(from);
    const b = index.get(to)!;
    if (a !== undefined && a !== b) out[a]!.add(b);
  };
  for (const m of streams) {
    const own = ownLinksOf(m);
    own.forEach((l, k) => {
      link(l.from, l.to);
      if (k > 0) link(own[k - 1]!.to, l.to);
    });
  }
  return out;
}

/** A binary min-heap of node indices by a precomputed key position. */
class MinHeap {
  private readonly items: number[] = [];
  constructor(private readonly key: readonly number[]) {}
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    a.push(v);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (this.key[a[p]!]! <= this.key[a[i]!]!) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.key[a[l]!]! < this.key[a[m]!]!) m = l;
        if (r < a.length && this.key[a[r]!]! < this.key[a[m]!]!) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Kahn's algorithm taking the ready node with the smallest key position. When none is ready
 * (a cycle), the remaining node with the smallest key position is taken and its open in-edges
 * are removed from `out`, so the graph is acyclic afterwards.
 */
function topological(out: Set<number>[], keyPos: readonly number[], byKey: readonly number[]): number[] {
  const n = out.length;
  const indegree = new Array<number>(n).fill(0);
  for (const targets of out) for (const t of targets) indegree[t]!++;
  const heap = new MinHeap(keyPos);
  for (let v = 0; v < n; v++) if (indegree[v] === 0) heap.push(v);
  const placed = new Array<boolean>(n).fill(false);
  const order: number[] = [];
  let scan = 0;
  while (order.length < n) {
    if (heap.size === 0) {
      while (placed[byKey[scan]!]) scan++;
      const v = byKey[scan]!;
      for (let u = 0; u < n; u++) if (!placed[u] && out[u]!.delete(v)) indegree[v]!--;
      heap.push(v);
    }
    const v = heap.pop();
    placed[v] = true;
    order.push(v);
    for (const t of out[v]!) if (--indegree[t]! === 0) heap.push(t);
  }
  return order;
}

/** Whether `to` is reachable from `from`, searching only nodes placed before `limit` in the order. */
function reaches(out: Set<number>[], pos: readonly number[], from: number, to: number): boolean {
  const stack = [from];
  const seen = new Set(stack);
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (v === to) return true;
    for (const t of out[v]!) {
      if (!seen.has(t) && pos[t]! <= pos[to]!) {
        seen.add(t);
        stack.push(t);
      }
    }
  }
  return false;
}

function positions(order: readonly number[]): number[] {
  const pos = new Array<number>(order.length);
  for (const [i, v] of order.entries()) pos[v] = i;
  return pos;
}

export function orderSnapshots(streams: readonly ManifestSummary[]): SnapshotOrder {
  const { nodes, index } = collectNodes(streams);
  const byKey = nodes
    .map((_, i) => i)
    .sort((a, b) => {
      const x = nodes[a]!;
      const y = nodes[b]!;
      return x.creation - y.creation || x.archived - y.archived || x.seen - y.seen || 0;
    });
  const keyPos = positions(byKey);
  const out = chainEdges(streams, index);
  let pos = positions(topological(out, keyPos, byKey));

  // Txg relations between neighbours in txg order, each kept only if it closes no cycle.
  const withTxg = nodes.map((_, i) => i).filter((i) => nodes[i]!.txg !== undefined);
  withTxg.sort((a, b) => (nodes[a]!.txg! < nodes[b]!.txg! ? -1 : nodes[a]!.txg! > nodes[b]!.txg! ? 1 : keyPos[a]! - keyPos[b]!));
  for (let k = 1; k < withTxg.length; k++) {
    const a = withTxg[k - 1]!;
    const b = withTxg[k]!;
    if (nodes[a]!.txg === nodes[b]!.txg || out[a]!.has(b)) continue;
    if (pos[a]! < pos[b]!) {
      out[a]!.add(b); // agrees with the current order: no cycle possible
      continue;
    }
    if (reaches(out, pos, b, a)) continue; // the chain says otherwise: it wins
    out[a]!.add(b);
    pos = positions(topological(out, keyPos, byKey));
  }

  const order = topological(out, keyPos, byKey);
  const oldestFirst = order.map((i) => nodes[i]!.guid);
  const rank = new Map(oldestFirst.map((guid, i) => [guid, i]));
  return { oldestFirst, newestFirst: [...oldestFirst].reverse(), rank, newest: oldestFirst.at(-1), ...orderStreams(streams, rank) };
}

/** Streams by their own last snapshot, then their base (a full first), then archival time. */
function orderStreams(streams: readonly ManifestSummary[], rank: ReadonlyMap<string, number>): Pick<SnapshotOrder, 'streams' | 'streamRank'> {
  const keyed = streams.map((m, seen) => {
    const own = mainSubstreams(m);
    const last = own.at(-1);
    const from = own[0]?.fromguid;
    return {
      m,
      to: last ? rank.get(last.toguid)! : -1,
      from: from === undefined ? -1 : (rank.get(from) ?? -1),
      archived: timeOf(m.finishedAt),
      creation: timeOf(last?.creation),
      seen,
    };
  });
  keyed.sort((a, b) => a.to - b.to || a.from - b.from || a.archived - b.archived || a.creation - b.creation || a.seen - b.seen || 0);
  const ordered = keyed.map((k) => k.m);
  return { streams: ordered, streamRank: new Map(ordered.map((m, i) => [m, i])) };
}

/** The newest of some snapshots by the order (GUIDs the order does not know count as oldest). */
export function newestOf<T>(order: SnapshotOrder, items: readonly T[], guidOf: (item: T) => string): T | undefined {
  let best: T | undefined;
  let bestRank = -Infinity;
  for (const item of items) {
    const r = order.rank.get(guidOf(item)) ?? -1;
    if (best === undefined || r > bestRank) [best, bestRank] = [item, r];
  }
  return best;
}
