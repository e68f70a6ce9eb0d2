import { OperationalError, UsageError } from '../../util/errors.js';
import type { ManifestSummary } from '../format/manifest.js';
import { type Link, linksByFrom, linksOf } from './chain-graph.js';
import { orderSnapshots } from './snapshot-order.js';

/**
 * The retention planner (README, "Nightly jobs"; docs/architecture.md, "Invariants"). Pure: the manifests
 * of ONE dataset, a policy and the current time in; which streams to keep and which to delete out.
 *
 * 1. Snapshots are chosen, not streams. Every snapshot a full stream leads to is a candidate;
 *    walking newest → oldest, restic-style buckets keep the newest snapshot of each of the
 *    `keepDaily` newest UTC days that have snapshots (likewise ISO weeks, months, years), the
 *    `keepLast` newest, and always the newest one. Buckets count periods that HAVE snapshots, not
 *    calendar periods back from `now`: an archive whose nightly job stopped for months keeps its
 *    last N dailies instead of ageing everything out. "Newest" and "newer" are always by the
 *    snapshot order of snapshot-order.ts (chain, createtxg, creation, archival time), never by
 *    creation time alone: sanoid takes several snapshots in the same second.
 * 2. Every stream on the restore path of a kept snapshot is kept. The path is the one the restore
 *    planner takes (restore-plan.ts): fewest links, ties to the newest full, raw and non-raw never
 *    mixed, a `-I` stream kept or deleted as one stream. So `restore` after a prune uses exactly
 *    the streams the prune kept for it. A kept stream's own base is always kept too, even when
 *    the path only uses the later part of a `-I` stream: no kept stream ever loses its base.
 * 3. While fewer than `minFulls` full streams are kept, the newest other full is kept together
 *    with its chain: every snapshot whose restore path starts at that full (duplicity's
 *    "remove-all-but-n-full"), so each kept full is a complete, independent history.
 * 4. Streams no full leads to (a base deleted by hand, a chain of the other raw-ness, a lost
 *    upload) are ALWAYS kept and reported: the planner cannot tell what they are for, verify
 *    reports them as chain-broken, and deleting them is a human decision. Their snapshots are
 *    not restorable, so they take no bucket from a restorable snapshot.
 * 5. Snapshots whose creation time is unknown, or later than `now` (clocks disagree), are kept:
 *    their age cannot be judged.
 */

export interface RetentionPolicy {
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepYearly: number;
  keepLast?: number;
  /** Keep at least this many full streams (with their chains) when the archive has them. */
  minFulls: number;
}

export interface RetentionInput {
  /** Manifests of one dataset. */
  streams: readonly ManifestSummary[];
  policy: RetentionPolicy;
  now: Date;
}

export interface SnapshotVerdict {
  guid: string;
  name: string;
  /** ISO creation time as recorded in the stream. */
  creation: string;
  /** A full stream leads to it (before the prune). */
  restorable: boolean;
  /** Chosen by the policy (or kept as part of a min_fulls chain). */
  kept: boolean;
  /** Why it is kept: "newest", "daily 2026-11-22", "weekly 2026-W47", … */
  why: string[];
  /** Still restorable from the kept streams alone (kept snapshots always are). */
  restorableAfter: boolean;
}

export interface RetentionPlan {
  keep: ManifestSummary[];
  delete: ManifestSummary[];
  /** streamId → why it is kept or deleted. */
  reasons: Map<string, string>;
  /** Every snapshot of the dataset, newest first. */
  snapshots: SnapshotVerdict[];
  /** Streams kept only because no full stream leads to them. */
  broken: ManifestSummary[];
}

const COUNTS = ['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'minFulls'] as const;

/** A retention policy refused: a count that is not a whole number ≥ 0, or one that keeps nothing. */
export class RetentionPolicyError extends UsageError {
  override name = 'RetentionPolicyError';
  declare readonly kind: 'bad-count' | 'keeps-nothing';
  constructor(kind: 'bad-count' | 'keeps-nothing', message: string) {
    super(message, { kind });
  }
}

/** Refuses negative or fractional counts, and a policy whose keep counts are all 0 (almost surely a mistake). */
export function checkRetentionPolicy(policy: RetentionPolicy): void {
  for (const key of COUNTS) {
    const n = policy[key] ?? 0;
    if (!Number.isInteger(n) || n < 0) throw new RetentionPolicyError('bad-count', `retention policy: ${key} must be a whole number ≥ 0, got ${String(n)}`);
  }
  if (COUNTS.slice(0, 5).every((key) => (policy[key] ?? 0) === 0)) {
    throw new RetentionPolicyError('keeps-nothing', 'the retention policy keeps nothing: give at least one of keep last/daily/weekly/monthly/yearly a count above 0');
  }
}

interface Reach {
  depth: number;
  /** The full the path starts from. */
  full: ManifestSummary;
  /** Its position in the stream order: paths from newer fulls win ties, as in restore-plan.ts. */
  fullRank: number;
  /** The link that reaches this node on the chosen path. */
  via: Link;
}

/** Shortest paths from "no snapshot" (guid 0) over links of one raw-ness, ties to the newest full. */
function shortestPaths(links: readonly Link[], streamRank: ReadonlyMap<ManifestSummary, number>): Map<string, Reach> {
  const byFrom = linksByFrom(links);
  const reached = new Map<string, Reach>();
  let layer = ['0'];
  for (let depth = 1; layer.length > 0; depth++) {
    const next = new Map<string, Reach>();
    for (const node of layer) {
      for (const via of byFrom.get(node) ?? []) {
        if (via.to === '0' || reached.has(via.to)) continue;
        const full = node === '0' ? via.manifest : reached.get(node)!.full;
        const fullRank = streamRank.get(full)!;
        const current = next.get(via.to);
        if (!current || fullRank > current.fullRank) next.set(via.to, { depth, full, fullRank, via });
      }
    }
    for (const [guid, reach] of next) reached.set(guid, reach);
    layer = [...next.keys()];
  }
  return reached;
}

/** The restore planner's choice between the raw and the non-raw path: shorter, then newer full, then raw. */
function bestPath(paths: readonly Map<string, Reach>[], guid: string): Reach | undefined {
  let best: Reach | undefined;
  for (const tree of paths) {
    const r = tree.get(guid);
    if (r && (!best || r.depth < best.depth || (r.depth === best.depth && r.fullRank > best.fullRank))) best = r;
  }
  return best;
}

/** The streams of a path, from the full to `guid`. */
function pathStreams(tree: Map<string, Reach>, guid: string): ManifestSummary[] {
  const out: ManifestSummary[] = [];
  for (let r = tree.get(guid); r; r = r.via.from === '0' ? undefined : tree.get(r.via.from)) out.push(r.via.manifest);
  return out.reverse();
}

function treesOf(links: readonly Link[], streamRank: ReadonlyMap<ManifestSummary, number>): Map<string, Reach>[] {
  return [true, false].map((raw) =>
    shortestPaths(
      links.filter((l) => l.raw === raw),
      streamRank,
    ),
  );
}

/** Bucket keys in UTC. ISO weeks belong to the year of their Thursday. */
export function retentionBuckets(time: Date): { daily: string; weekly: string; monthly: string; yearly: string } {
  const iso = time.toISOString();
  const midnight = Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate());
  const thursday = new Date(midnight + (3 - ((time.getUTCDay() + 6) % 7)) * 86_400_000);
  const weekYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(weekYear, 0, 1)) / (7 * 86_400_000)) + 1;
  return { daily: iso.slice(0, 10), weekly: `${weekYear}-W${String(week).padStart(2, '0')}`, monthly: iso.slice(0, 7), yearly: iso.slice(0, 4) };
}

interface Candidate {
  guid: string;
  name: string;
  creation: string;
  time: number;
  why: string[];
}

/** Step 1: the policy's choice among restorable snapshots (newest first, by the snapshot order). */
function chooseSnapshots(candidates: Candidate[], policy: RetentionPolicy, now: Date): void {
  const rules = [
    { label: 'last', count: policy.keepLast ?? 0, key: (_c: Candidate, i: number) => String(i) },
    ...(
      [
        ['daily', policy.keepDaily],
        ['weekly', policy.keepWeekly],
        ['monthly', policy.keepMonthly],
        ['yearly', policy.keepYearly],
      ] as const
    ).map(([period, count]) => ({ label: period, count, key: (c: Candidate) => retentionBuckets(new Date(c.time))[period] })),
  ];
  const dated = candidates.filter((c) => Number.isFinite(c.time));
  for (const c of candidates) {
    if (!Number.isFinite(c.time)) c.why.push('creation time unknown');
    else if (c.time > now.getTime()) c.why.push('dated after now');
  }
  // The newest is kept whatever its date says (unknown, after `now`): the invariant of the planner.
  if (candidates[0]) candidates[0].why.push('newest');
  for (const rule of rules) {
    let left = rule.count;
    let last: string | undefined;
    dated.forEach((c, i) => {
      const key = rule.key(c, i);
      if (left > 0 && key !== last) {
        c.why.push(rule.label === 'last' ? `last ${i + 1}` : `${rule.label} ${key}`);
        left--;
      }
      last = key;
    });
  }
}

function listNames(names: string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const { policy, now } = input;
  checkRetentionPolicy(policy);
  const datasets = new Set(input.streams.map((m) => m.dataset));
  if (datasets.size > 1) throw new Error(`planRetention: one dataset at a time, got ${[...datasets].join(', ')}`);
  const order = orderSnapshots(input.streams);
  // Oldest first by the snapshot order; so restore (which orders the same way) takes the same paths.
  const streams = [...order.streams];

  const links = streams.flatMap(linksOf);
  const trees = treesOf(links, order.streamRank);
  const snapshotOf = new Map<string, Candidate>();
  for (const l of links) {
    if (!snapshotOf.has(l.to)) snapshotOf.set(l.to, { guid: l.to, name: l.toname.slice(l.toname.indexOf('@') + 1), creation: l.creation, time: Date.parse(l.creation), why: [] });
  }
  const rankOf = (c: Candidate) => order.rank.get(c.guid) ?? -1;
  const all = [...snapshotOf.values()].sort((a, b) => rankOf(b) - rankOf(a));
  const restorable = all.filter((c) => bestPath(trees, c.guid));
  chooseSnapshots(restorable, policy, now);

  /** Kept stream → the snapshots (guids) it is kept for. */
  const kept = new Map<ManifestSummary, string[]>();
  // A path may enter a -I stream after its first substream (its base came by another stream);
  // the stream is still kept whole, so its own base is kept too: no kept stream ever loses its base.
  const keepStream = (m: ManifestSummary, why: string): void => {
    const known = kept.has(m);
    kept.set(m, [...(kept.get(m) ?? []), why]);
    const first = linksOf(m)[0]!;
    if (known || first.from === '0') return;
    for (const base of pathStreams(trees[first.raw ? 0 : 1]!, first.from)) keepStream(base, why);
  };
  const keepSnapshot = (c: Candidate) => {
    const path = bestPath(trees, c.guid)!;
    const tree = trees.find((t) => t.get(c.guid) === path)!;
    for (const m of pathStreams(tree, c.guid)) keepStream(m, c.guid);
  };
  for (const c of restorable) if (c.why.length > 0) keepSnapshot(c);

  // Step 3: min_fulls, newest fulls first.
  const fulls = streams.filter((m) => m.kind === 'full' && m.substreams[0]?.fromguid === '0').reverse();
  const minFullReason = new Set<ManifestSummary>();
  for (const full of fulls) {
    if (fulls.filter((f) => kept.has(f)).length >= policy.minFulls) break;
    if (kept.has(full)) continue;
    minFullReason.add(full);
    keepStream(full, full.to.guid);
    for (const c of restorable) {
      if (c.why.length === 0 && bestPath(trees, c.guid)?.full === full) {
        c.why.push(`chain of full ${full.streamId} (min_fulls ${policy.minFulls})`);
        keepSnapshot(c);
      }
    }
  }

  // Step 4: streams no full leads to.
  const reachesStream = (m: ManifestSummary) => {
    const first = linksOf(m)[0];
    return first !== undefined && (first.from === '0' || trees[first.raw ? 0 : 1]!.has(first.from));
  };
  const broken = streams.filter((m) => !reachesStream(m));

  const reasons = new Map<string, string>();
  for (const m of streams) {
    const guids = kept.get(m);
    if (broken.includes(m)) {
      const base = m.substreams[0]?.fromguid;
      reasons.set(m.streamId, `broken chain: no full stream leads to its base (guid ${base}) in the same raw-ness; kept, never deleted automatically (see verify)`);
    } else if (guids) {
      const unique = [...new Set(guids)]
        .map((g) => snapshotOf.get(g)!)
        .sort((a, b) => rankOf(a) - rankOf(b))
        .map((c) => c.name);
      const minFull = minFullReason.has(m) ? `one of the ${policy.minFulls} newest full streams (min_fulls)` : '';
      reasons.set(m.streamId, [minFull, `needed to restore ${listNames(unique)}`].filter(Boolean).join('; '));
    } else {
      reasons.set(m.streamId, 'no kept snapshot needs it');
    }
  }
  const keepSet = new Set([...kept.keys(), ...broken]);
  const keep = streams.filter((m) => keepSet.has(m));
  const after = treesOf(keep.flatMap(linksOf), order.streamRank);
  // The invariant, checked rather than assumed: the newest restorable snapshot stays restorable.
  // Should it ever fail, nothing is deleted (a planner bug must not cost the newest backup).
  const newest = restorable[0];
  if (newest && !bestPath(after, newest.guid)) {
    throw new OperationalError(`planRetention: the plan would leave the newest snapshot ${newest.name} (guid ${newest.guid}) unrestorable; nothing is deleted`);
  }
  const snapshots: SnapshotVerdict[] = all.map((c) => ({
    guid: c.guid,
    name: c.name,
    creation: c.creation,
    restorable: bestPath(trees, c.guid) !== undefined,
    kept: c.why.length > 0,
    why: c.why,
    restorableAfter: bestPath(after, c.guid) !== undefined,
  }));
  return { keep, delete: streams.filter((m) => !keepSet.has(m)), reasons, snapshots, broken };
}
