import { UsageError } from '../../util/errors.js';
import type { ManifestSummary } from '../format/manifest.js';
import { type Link, linksByFrom, linksByTo, linksOf, mainSubstreams } from './chain-graph.js';
import { newestOf, orderSnapshots, type SnapshotOrder } from './snapshot-order.js';

/**
 * The chain planner (README, "`restore`: which streams?"; docs/architecture.md, "Invariants"): which archived streams, received in order, bring a
 * destination to snapshot Y. Pure: manifests and GUIDs in, plan out.
 */

/** One `zfs receive`: substreams first..last of one archived stream. */
export interface RestoreUnit {
  manifest: ManifestSummary;
  first: number;
  last: number;
  /** The stream's own bytes, unchanged; otherwise its compound framing is rebuilt around the part. */
  whole: boolean;
  fromguid: string;
  toguid: string;
  /** `pool/fs@snap` of the last snapshot this unit creates. */
  toname: string;
  /** Bytes this unit feeds to `zfs receive`. */
  bytes: number;
}

export interface RestorePlan {
  dataset: string;
  target: { name: string; guid: string };
  /** The destination already holds this snapshot of the path: receiving starts after it. */
  startsAfter: { guid: string } | null;
  units: RestoreUnit[];
  raw: boolean;
}

export interface PlanRequest {
  dataset: string;
  /** Manifests of the dataset. */
  streams: readonly ManifestSummary[];
  /** Short snapshot name, or undefined for the newest snapshot in the archive. */
  snapshot?: string;
  /** GUIDs of the snapshots the destination already holds. */
  present?: ReadonlySet<string>;
  /**
   * GUIDs of snapshots anywhere in the destination pool: a clone's stream (DRR_FLAG_CLONE)
   * starts from its origin, which `zfs receive` finds by GUID in the pool.
   */
  origins?: ReadonlySet<string>;
}

const snapOf = (toname: string) => toname.slice(toname.indexOf('@') + 1);

/** Every snapshot the archive of a dataset can name: short name → the GUIDs that carried it. */
function snapshotsByName(streams: readonly ManifestSummary[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of streams) {
    for (const s of mainSubstreams(m)) {
      const list = out.get(snapOf(s.toname)) ?? [];
      if (!list.includes(s.toguid)) list.push(s.toguid);
      out.set(snapOf(s.toname), list);
    }
  }
  return out;
}

/** The requested snapshot, or the newest one; "newest" is always by the snapshot order (snapshot-order.ts). */
function resolveTarget(req: PlanRequest, order: SnapshotOrder): { name: string; guid: string } {
  const byName = snapshotsByName(req.streams);
  if (byName.size === 0) throw new UsageError(`the archive holds no streams of dataset ${req.dataset}`);
  if (req.snapshot !== undefined) {
    const hits = byName.get(req.snapshot);
    if (!hits) throw new UsageError(`snapshot ${req.dataset}@${req.snapshot} is not in the archive (see: zfs-offsite list)`);
    // A name re-used after destroy/re-create has two GUIDs: the newest one is meant.
    return { name: req.snapshot, guid: newestOf(order, hits, (guid) => guid)! };
  }
  const guid = order.newest!;
  const name = [...byName].find(([, guids]) => guids.includes(guid))![0];
  return { name, guid };
}

interface Reach {
  links: Link[];
  /**
   * Ranks the path's start, higher wins: a present snapshot beats a clone's origin, which beats
   * any full; among fulls, the newest by the stream order (never by stream id: ids embed names).
   */
  startRank: number;
}

/** Start ranks: fulls 1..n, origins n+1..2n, present snapshots above all (see Reach). */
function startRanks(order: SnapshotOrder): { full(m: ManifestSummary): number; origin(m: ManifestSummary): number; present: number } {
  const n = order.streams.length;
  return { full: (m) => 1 + order.streamRank.get(m)!, origin: (m) => n + 1 + order.streamRank.get(m)!, present: 2 * n + 2 };
}

/** Breadth-first search: fewest links from a start node; ties broken by startRank. */
function search(links: readonly Link[], starts: Map<string, number>, target: string, fullRank: (m: ManifestSummary) => number): Reach | undefined {
  const byFrom = linksByFrom(links);
  let layer = new Map<string, Reach>([...starts].map(([guid, rank]) => [guid, { links: [], startRank: rank }]));
  const seen = new Set(layer.keys());
  while (layer.size > 0) {
    const hit = layer.get(target);
    if (hit) return hit;
    const next = new Map<string, Reach>();
    for (const [node, reach] of layer) {
      for (const link of byFrom.get(node) ?? []) {
        if (seen.has(link.to)) continue;
        const rank = reach.links.length === 0 && node === '0' ? fullRank(link.manifest) : reach.startRank;
        const candidate = { links: [...reach.links, link], startRank: rank };
        const current = next.get(link.to);
        if (!current || candidate.startRank > current.startRank) next.set(link.to, candidate);
      }
    }
    for (const guid of next.keys()) seen.add(guid);
    layer = next;
  }
  return undefined;
}

/** Consecutive links of one stream become one receive. */
function toUnits(links: Link[]): RestoreUnit[] {
  const units: RestoreUnit[] = [];
  for (const link of links) {
    const prev = units.at(-1);
    if (prev && prev.manifest === link.manifest && !link.wholeOnly && prev.last === link.index - 1) {
      prev.last = link.index;
    } else {
      units.push({ manifest: link.manifest, first: link.wholeOnly ? 0 : link.index, last: link.index, whole: false, fromguid: link.from, toguid: '', toname: '', bytes: 0 });
    }
  }
  for (const u of units) {
    const subs = u.manifest.substreams;
    u.whole = u.first === 0 && u.last === subs.length - 1;
    u.toguid = subs[u.last]!.toguid;
    u.toname = subs[u.last]!.toname;
    if (u.manifest.substreams.length !== mainSubstreams(u.manifest).length) {
      u.toguid = mainSubstreams(u.manifest).at(-1)!.toguid;
      u.toname = mainSubstreams(u.manifest).at(-1)!.toname;
    }
    const framing = u.whole || !u.manifest.compound ? 0 : subs[0]!.offset + 312; // header + conclusion END
    u.bytes = u.whole ? u.manifest.rawBytes : framing + subs.slice(u.first, u.last + 1).reduce((n, s) => n + s.bytes, 0);
  }
  return units;
}

/** Explains why no path reaches the target: the first base GUID no stream leads to. */
function missingLink(links: readonly Link[], target: { name: string; guid: string }, req: PlanRequest): UsageError {
  const present = req.present ?? new Set<string>();
  const into = linksByTo(links);
  const queue = [target.guid];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const guid = queue.shift()!;
    for (const l of into.get(guid) ?? []) {
      if (l.from === '0' || present.has(l.from) || seen.has(l.from)) continue;
      if (!into.has(l.from) && l.clone) {
        return new UsageError(
          `cannot restore ${req.dataset}@${target.name}: it is a clone, and its origin (snapshot guid ${l.from}) is not in the destination pool; restore the origin's dataset first`,
        );
      }
      if (!into.has(l.from)) {
        return new UsageError(
          `cannot restore ${req.dataset}@${target.name} (guid ${target.guid}): stream ${l.manifest.streamId} needs base snapshot guid ${l.from}, which no archived stream provides (missing or deleted stream)`,
        );
      }
      seen.add(l.from);
      queue.push(l.from);
    }
  }
  return new UsageError(`cannot restore ${req.dataset}@${target.name} (guid ${target.guid}): no chain of streams of one kind (raw or not) leads to it from a full stream`);
}

export function planRestore(req: PlanRequest): RestorePlan {
  const order = orderSnapshots(req.streams);
  const target = resolveTarget(req, order);
  const present = req.present ?? new Set<string>();
  if (present.has(target.guid)) {
    return { dataset: req.dataset, target, startsAfter: { guid: target.guid }, units: [], raw: false };
  }
  // Links in stream order: the search keeps the first of equal candidates, whatever the input order.
  const links = order.streams.flatMap(linksOf);
  const rank = startRanks(order);
  const starts = new Map<string, number>([['0', 0]]);
  for (const guid of present) starts.set(guid, rank.present);
  // A clone's chain starts at its origin when the destination pool holds it (restored before).
  for (const l of links) if (l.clone && req.origins?.has(l.from) && !starts.has(l.from)) starts.set(l.from, rank.origin(l.manifest));
  let best: { reach: Reach; raw: boolean } | undefined;
  for (const raw of [true, false]) {
    const reach = search(
      links.filter((l) => l.raw === raw),
      starts,
      target.guid,
      rank.full,
    );
    if (!reach) continue;
    const better = !best || reach.links.length < best.reach.links.length || (reach.links.length === best.reach.links.length && reach.startRank > best.reach.startRank);
    if (better) best = { reach, raw };
  }
  if (!best) throw missingLink(links, target, req);
  const first = best.reach.links[0]!;
  return {
    dataset: req.dataset,
    target,
    startsAfter: first.from !== '0' ? { guid: first.from } : null,
    units: toUnits(best.reach.links),
    raw: best.raw,
  };
}
