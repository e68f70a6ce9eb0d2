import type { IndexedStream } from '../archive/format/stream-index.js';
import type { StatusRecord } from '../archive/format/status-record.js';
import { invalidKeyWarning } from '../archive/format/catalog.js';
import { planRestore } from '../archive/plan/restore-plan.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import { Repository } from '../archive/repository.js';
import type { Backend } from '../storage/backend.js';
import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/**
 * `zfs-offsite status` (README, "Monitoring and drills"): per dataset, how fresh the newest
 * archived copy is — its snapshot, the snapshot's age, how many streams restore it from its full,
 * the bytes — and the last recorded verify and drill (format/status-record.ts, display only).
 * One listing and the stream index per dataset (Repository.catalog), whatever the history: no
 * manifest is read whose index entry the listing proves.
 *
 * The age is the newest snapshot's own creation time (the BEGIN record, in the manifest): how
 * old the newest data offsite is, which is what a restore would bring back. Only where a stream
 * does not say (a creation time of 0) is the commit time of its manifest used (`ageFrom`).
 */

/** What status looks at for a dataset when nothing says otherwise: a nightly job plus two hours. */
export const DEFAULT_MAX_AGE_MS = 26 * 3_600_000;

export type DatasetState = 'ok' | 'stale' | 'unrestorable' | 'not-archived';

export interface DatasetStatus {
  dataset: string;
  target: string;
  state: DatasetState;
  /** Why the state is not ok, in words. */
  problem?: string;
  newest: { snapshot: string; guid: string; created: string | null; archivedAt: string; streamId: string } | null;
  /** What the age is counted from: the snapshot's creation time, or (unknown) the commit of its stream. */
  ageFrom: 'snapshot-creation' | 'archive-commit' | null;
  ageSeconds: number | null;
  maxAgeSeconds: number;
  /** Streams a restore of the newest snapshot receives, its full included; null when none leads to it. */
  chainLength: number | null;
  /** Raw stream bytes that restore receives. */
  chainBytes: number | null;
  streams: number;
  /** All committed streams of the dataset: as stored (compressed) and as zfs send made them. */
  storedBytes: number;
  streamBytes: number;
  inProgress: number;
  damaged: number;
  /** The last recorded verify and drill (display only: anyone with write access to the target could have written them). */
  verify: StatusRecord | null;
  drill: StatusRecord | null;
}

export interface StatusReport {
  checkedAt: string;
  datasets: DatasetStatus[];
  /** Every dataset ok. */
  ok: boolean;
  seconds: number;
}

export interface StatusOptions {
  backend: Backend;
  log: Logger;
  /** One dataset and its children; undefined: every dataset of the archive. */
  dataset?: string;
  /** Only these datasets (a config's), when given. */
  keep?: (dataset: string) => boolean;
  maxAgeMs(dataset: string): number;
  now?: Date;
}

/** The status of the datasets of one target. A dataset named that the archive does not hold is a UsageError (exit 2). */
export async function datasetStatuses(o: StatusOptions): Promise<DatasetStatus[]> {
  const now = o.now ?? new Date();
  const repo = await Repository.open(o.backend);
  const catalog = await repo.catalog(o.dataset, { children: true });
  for (const i of catalog.invalid) o.log.warn(invalidKeyWarning(i));
  const names = new Set<string>([...catalog.streams, ...catalog.inProgress, ...catalog.damaged].map((s) => s.dataset));
  if (o.dataset && names.size === 0 && !(await repo.hasDataset(o.dataset, { children: true }))) throw await repo.unknownDataset(o.dataset);
  const chosen = [...names].filter((d) => o.keep?.(d) ?? true).sort();
  const out: DatasetStatus[] = [];
  for (let i = 0; i < chosen.length; i += 8) {
    const batch = chosen.slice(i, i + 8);
    out.push(
      ...(await Promise.all(
        batch.map(async (dataset) => {
          const [verify, drill] = await Promise.all([repo.statusRecord(dataset, 'verify'), repo.statusRecord(dataset, 'drill')]);
          return describe(
            dataset,
            repo.location,
            catalog.streams.filter((s) => s.dataset === dataset),
            {
              inProgress: catalog.inProgress.filter((p) => p.dataset === dataset).length,
              damaged: catalog.damaged.filter((p) => p.dataset === dataset).length,
              verify: verify ?? null,
              drill: drill ?? null,
            },
            o.maxAgeMs(dataset),
            now,
          );
        }),
      )),
    );
  }
  return out;
}

/** A dataset of a config its target does not hold at all: CRITICAL, never silently fresh. */
export function notArchived(dataset: string, target: string, maxAgeMs: number, why: string): DatasetStatus {
  return {
    dataset,
    target,
    state: 'not-archived',
    problem: why,
    newest: null,
    ageFrom: null,
    ageSeconds: null,
    maxAgeSeconds: maxAgeMs / 1000,
    chainLength: null,
    chainBytes: null,
    streams: 0,
    storedBytes: 0,
    streamBytes: 0,
    inProgress: 0,
    damaged: 0,
    verify: null,
    drill: null,
  };
}

function describe(dataset: string, target: string, streams: IndexedStream[], extra: Pick<DatasetStatus, 'inProgress' | 'damaged' | 'verify' | 'drill'>, maxAgeMs: number, now: Date): DatasetStatus {
  if (streams.length === 0) return { ...notArchived(dataset, target, maxAgeMs, 'no committed stream (only uploads in progress or damaged manifests)'), ...extra };
  const totals = { streams: streams.length, storedBytes: sum(streams.map((s) => s.storedBytes)), streamBytes: sum(streams.map((s) => s.rawBytes)) };
  let chain: { length: number; bytes: number; guid: string } | undefined;
  let why: string | undefined;
  try {
    const plan = planRestore({ dataset, streams });
    chain = { length: plan.units.length, bytes: sum(plan.units.map((u) => u.bytes)), guid: plan.target.guid };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    why = err.message;
  }
  const guid = chain?.guid ?? orderSnapshots(streams).newest!;
  // The stream that archived the newest snapshot (the last one to name it, should two).
  const holder = streams.filter((s) => s.substreams.some((x) => x.toguid === guid)).at(-1)!;
  const sub = holder.substreams.find((x) => x.toguid === guid)!;
  const created = Date.parse(sub.creation);
  const known = Number.isFinite(created) && created > 0;
  const since = known ? created : Date.parse(holder.finishedAt);
  const ageSeconds = Math.max(0, Math.round((now.getTime() - since) / 1000));
  const newest = { snapshot: sub.toname.slice(sub.toname.indexOf('@') + 1), guid, created: known ? new Date(created).toISOString() : null, archivedAt: holder.finishedAt, streamId: holder.streamId };
  let state: DatasetState = 'ok';
  let problem: string | undefined;
  if (!chain) [state, problem] = ['unrestorable', why];
  else if (ageSeconds * 1000 > maxAgeMs) [state, problem] = ['stale', `the newest snapshot is ${formatSeconds(ageSeconds)} old (max ${formatSeconds(maxAgeMs / 1000)})`];
  return {
    dataset,
    target,
    state,
    ...(problem === undefined ? {} : { problem }),
    newest,
    ageFrom: known ? 'snapshot-creation' : 'archive-commit',
    ageSeconds,
    maxAgeSeconds: maxAgeMs / 1000,
    chainLength: chain?.length ?? null,
    chainBytes: chain?.bytes ?? null,
    ...totals,
    ...extra,
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** 90061 → "1d 1h", 5400 → "1h 30m", 42 → "42s". */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

/** The report of several targets' statuses. */
export function statusReport(datasets: DatasetStatus[], started: number, now: Date): StatusReport {
  // No dataset at all is not "all fresh": a monitor is told (an empty archive, a wrong --dataset).
  return { checkedAt: now.toISOString(), datasets, ok: datasets.length > 0 && datasets.every((d) => d.state === 'ok'), seconds: (Date.now() - started) / 1000 };
}
