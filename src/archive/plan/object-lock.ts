import type { ManifestSummary } from '../format/manifest.js';

/**
 * Chain-aware Object Lock (docs/object-lock.md). Pure: manifests, retention dates and the
 * current time in; which streams to extend, which fall short, which may be deleted out.
 *
 * A stream needs every stream that can provide a snapshot any of its substreams starts from,
 * and, in turn, what those need, back to the fulls ("dependencies"). Every provider counts, not
 * only the one the restore planner would pick today: the planner's choice can change as streams
 * come and go, and a provider that expired first would turn a locked stream into one that
 * cannot be restored. So the restore path to any snapshot a stream starts from (restore-plan.ts)
 * lies within its dependencies, whichever path the planner takes (test/archive/object-lock.test.ts).
 * Only streams committed no later than the stream (`finishedAt`) count: those are the ones its
 * commit extended; a second full of its base archived later is another way, not a need.
 */

/** The date a stream written at `now` with a lock of `durationMs` is retained until. */
export function retainUntil(now: Date, durationMs: number): Date {
  return new Date(now.getTime() + durationMs);
}

/** toguid → the streams with a substream leading to that snapshot. */
function providers(streams: readonly ManifestSummary[]): Map<string, ManifestSummary[]> {
  const out = new Map<string, ManifestSummary[]>();
  for (const m of streams) {
    for (const s of m.substreams) {
      const list = out.get(s.toguid);
      if (!list) out.set(s.toguid, [m]);
      else if (!list.includes(m)) list.push(m);
    }
  }
  return out;
}

/** Committed no later than `start` (a summary without the time counts, to be safe). */
function before(m: ManifestSummary, start: ManifestSummary): boolean {
  return !m.finishedAt || !start.finishedAt || m.finishedAt <= start.finishedAt;
}

function closure(start: ManifestSummary, byTo: ReadonlyMap<string, ManifestSummary[]>): Set<ManifestSummary> {
  const seen = new Set<ManifestSummary>([start]);
  const queue = [start];
  while (queue.length > 0) {
    const m = queue.pop()!;
    for (const s of m.substreams) {
      if (s.fromguid === '0') continue;
      for (const p of byTo.get(s.fromguid) ?? []) {
        if (seen.has(p) || !before(p, start)) continue;
        seen.add(p);
        queue.push(p);
      }
    }
  }
  seen.delete(start);
  return seen;
}

/**
 * The streams `stream` depends on (not itself), in the order of `streams`: when it is committed
 * with a retention, each of them must be retained at least as long.
 */
export function lockDependencies(streams: readonly ManifestSummary[], stream: ManifestSummary): ManifestSummary[] {
  const all = streams.includes(stream) ? streams : [...streams, stream];
  const deps = closure(stream, providers(all));
  return all.filter((m) => deps.has(m));
}

export interface RetentionShortfall {
  stream: ManifestSummary;
  /** The earliest retention among its objects; null: an object has none. */
  has: Date | null;
  /** The latest retention of a stream that depends on it. */
  needs: Date;
  /** That stream. */
  neededBy: ManifestSummary;
}

/**
 * The streams retained for less time than a stream depending on them (quick verify,
 * `retention-short`): `retentionOf` gives each stream's earliest object retention (null: an
 * object has none). Streams without retention need nothing; sorted by stream order of the input.
 */
export function retentionShortfalls(streams: readonly ManifestSummary[], retentionOf: (m: ManifestSummary) => Date | null): RetentionShortfall[] {
  const byTo = providers(streams);
  const needs = new Map<ManifestSummary, { until: Date; by: ManifestSummary }>();
  for (const m of streams) {
    const own = retentionOf(m);
    if (!own) continue;
    for (const dep of closure(m, byTo)) {
      const cur = needs.get(dep);
      if (!cur || cur.until.getTime() < own.getTime()) needs.set(dep, { until: own, by: m });
    }
  }
  const out: RetentionShortfall[] = [];
  for (const m of streams) {
    const need = needs.get(m);
    if (!need) continue;
    const has = retentionOf(m);
    if (has === null || has.getTime() < need.until.getTime()) out.push({ stream: m, has, needs: need.until, neededBy: need.by });
  }
  return out;
}

export interface LockedStream {
  stream: ManifestSummary;
  /** Retained until then: its own lock, or that of the locked stream that needs it. */
  until: Date;
  /** The locked stream that needs it, when it is not locked itself. */
  neededBy?: ManifestSummary;
}

/**
 * Of the streams retention lets go (`doomed`), those that may be deleted now: their own objects'
 * retention has passed (`lockedUntil`: the latest retention among a stream's versions; null or
 * past = expired), and no doomed stream still locked depends on them (prune keeps it, so it keeps
 * what it needs). The rest is `locked`, each with the date it is held until.
 */
export function expiredDeletions(
  streams: readonly ManifestSummary[],
  doomed: readonly ManifestSummary[],
  lockedUntil: (m: ManifestSummary) => Date | null,
  now: Date,
): { deletable: ManifestSummary[]; locked: LockedStream[] } {
  const byTo = providers(streams);
  const held = new Map<ManifestSummary, LockedStream>();
  for (const m of doomed) {
    const until = lockedUntil(m);
    if (until && until.getTime() > now.getTime()) held.set(m, { stream: m, until });
  }
  const doomedSet = new Set(doomed);
  for (const locked of [...held.values()]) {
    for (const dep of closure(locked.stream, byTo)) {
      if (!doomedSet.has(dep)) continue;
      const cur = held.get(dep);
      if (!cur || cur.until.getTime() < locked.until.getTime()) held.set(dep, { stream: dep, until: locked.until, neededBy: locked.stream });
    }
  }
  return { deletable: doomed.filter((m) => !held.has(m)), locked: doomed.flatMap((m) => (held.has(m) ? [held.get(m)!] : [])) };
}
