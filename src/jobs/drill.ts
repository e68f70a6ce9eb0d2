import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { invalidKeyWarning } from '../archive/format/catalog.js';
import type { ManifestSummary } from '../archive/format/manifest.js';
import { ChunkIntegrityError } from '../archive/pipeline/chunk-fetcher.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { StreamIntegrityError } from '../archive/pipeline/reader.js';
import { mainSubstreams } from '../archive/plan/chain-graph.js';
import type { RestoreUnit } from '../archive/plan/restore-plan.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import { Repository } from '../archive/repository.js';
import type { Backend } from '../storage/backend.js';
import { UsageError } from '../util/errors.js';
import { interruptionOf } from '../util/interrupted.js';
import type { Logger } from '../util/logger.js';
import { seededRandom } from '../util/random.js';
import { checkScratchParent, createScratch, destroyScratch, findScratch, ownerAlive, scratchName } from '../zfs/scratch.js';
import { type Zfs, ZfsCommandError } from '../zfs/zfs.js';
import { restore } from './restore.js';

/**
 * `zfs-offsite drill`: proves that ZFS accepts the archive, end to end. For each dataset the
 * newest archived snapshot (or, sampled, a random older one) is restored through the restore
 * job (its plan, chunk checks and `zfs receive -u`) into a scratch dataset under POOL
 * (src/zfs/scratch.ts), the received snapshots' GUIDs are compared with the manifests', and the
 * scratch dataset is destroyed — also when the drill fails or is interrupted; what a killed
 * drill left is destroyed by the next one first. Raw streams are received raw: no key is needed.
 */

export type DrillFailureReason = 'damaged' | 'missing-chunk' | 'damaged-manifest' | 'guid-mismatch' | 'receive-refused' | 'unrestorable';

export interface DrillFailure {
  reason: DrillFailureReason;
  /** The stream being received (or whose manifest is damaged), when one is to blame. */
  stream?: string;
  message: string;
}

/** One dataset's drill: a plain object (also what a metrics writer reads). */
export interface DrillResult {
  target: string;
  dataset: string;
  /** The snapshot restored, `@name`, and its GUID (absent when none could be chosen). */
  snapshot?: string;
  guid?: string;
  /** Chosen at random among the older ones (`--sample`). */
  sampled: boolean;
  raw: boolean;
  /** Stream ids received, in order. */
  streams: string[];
  /** Bytes zfs receive accepted (of the streams received whole, when one failed). */
  bytes: number;
  /** Snapshots whose GUIDs were compared. */
  checkedSnapshots: number;
  result: 'passed' | 'failed';
  failure?: DrillFailure;
  seconds: number;
}

export interface DrillReport {
  pool: string;
  sample: boolean;
  seed?: number;
  /** Scratch datasets of killed drills destroyed before this one. */
  leftoversDestroyed: string[];
  datasets: DrillResult[];
  passed: boolean;
  /** Unix seconds when the drill ended. */
  finished: number;
  seconds: number;
}

export interface DrillTarget {
  backend: Backend;
  /** The datasets to drill at this target (given, or chosen from what the archive holds). */
  datasets(repo: Repository): Promise<string[]>;
  close(): Promise<void>;
}

export interface DrillOptions {
  zfs: Zfs;
  pool: ChunkPool;
  log: Logger;
  /** The pool (or dataset) the scratch dataset is made under. */
  scratchParent: string;
  sample: boolean;
  seed?: number;
  parallel: number;
  progress: boolean;
  /** Ctrl-C / SIGTERM: stops the receive, destroys the scratch dataset, then fails with the interruption. */
  signal?: AbortSignal;
}

/** Runs the drill over every target's datasets (opened by the caller, one after the other). */
export async function drill(targets: (() => Promise<DrillTarget>)[], o: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  await checkScratchParent(o.zfs, o.scratchParent);
  const leftoversDestroyed = await destroyLeftovers(o);
  const seed = o.sample ? (o.seed ?? randomInt(2 ** 31)) : undefined;
  const random = seed === undefined ? undefined : seededRandom(seed);
  const scratch = scratchName(o.scratchParent);
  await createScratch(o.zfs, scratch, { host: hostname(), pid: process.pid, started: new Date().toISOString() });
  const datasets: DrillResult[] = [];
  let finished = false;
  try {
    for (const open of targets) {
      const t = await open();
      try {
        const repo = await Repository.open(t.backend);
        for (const dataset of await t.datasets(repo)) {
          o.signal?.throwIfAborted();
          const into = `${scratch}/${datasets.length + 1}`;
          const result = await drillOne(repo, t.backend, dataset, into, random, o);
          datasets.push(result);
          await recordDrill(repo, result, o.log);
        }
      } finally {
        await t.close();
      }
    }
    finished = true;
  } finally {
    // Also after a failure or Ctrl-C: the scratch dataset never outlives the drill that made it.
    await destroyScratch(o.zfs, scratch).catch((err: unknown) => {
      // Not cleaned up is a failure of its own (exit 1) unless another is already on its way out.
      if (finished && !o.signal?.aborted) throw err;
      o.log.error({ err: (err as Error).message, dataset: scratch }, 'cannot destroy the scratch dataset: the next drill destroys it');
    });
  }
  const interrupted = interruptionOf(o.signal);
  if (interrupted) throw interrupted;
  return {
    pool: o.scratchParent,
    sample: o.sample,
    ...(seed === undefined ? {} : { seed }),
    leftoversDestroyed,
    datasets,
    passed: datasets.every((d) => d.result === 'passed'),
    finished: Math.floor(Date.now() / 1000),
    seconds: (Date.now() - started) / 1000,
  };
}

/** Destroys the scratch datasets killed drills left (property and prefix; never a running drill's). */
async function destroyLeftovers(o: DrillOptions): Promise<string[]> {
  const out: string[] = [];
  for (const left of await findScratch(o.zfs, o.scratchParent)) {
    if (ownerAlive(left.owner)) {
      o.log.warn({ dataset: left.name, owner: left.value }, 'a drill that is still running owns this scratch dataset: left alone');
      continue;
    }
    o.log.warn({ dataset: left.name, owner: left.value }, 'destroying the scratch dataset of an earlier drill that did not finish');
    await destroyScratch(o.zfs, left.name, { tries: 3 });
    out.push(left.name);
  }
  return out;
}

const shortName = (toname: string) => toname.slice(toname.indexOf('@'));

/** The snapshot to restore: the newest, or (sampled) a random older one; `@name` and GUID. */
function chooseSnapshot(streams: readonly ManifestSummary[], random: (() => number) | undefined): { name: string; guid: string; sampled: boolean } {
  const order = orderSnapshots(streams);
  const names = new Map<string, string>();
  for (const m of streams) for (const s of mainSubstreams(m)) names.set(s.toguid, shortName(s.toname));
  const older = order.newestFirst.slice(1).filter((g) => names.has(g));
  const guid = random && older.length > 0 ? older[Math.floor(random() * older.length)]! : order.newest!;
  return { name: names.get(guid)!, guid, sampled: guid !== order.newest };
}

async function drillOne(repo: Repository, backend: Backend, dataset: string, into: string, random: (() => number) | undefined, o: DrillOptions): Promise<DrillResult> {
  const started = Date.now();
  const base: DrillResult = { target: backend.location, dataset, sampled: false, raw: false, streams: [], bytes: 0, checkedSnapshots: 0, result: 'passed', seconds: 0 };
  const failed = (failure: DrillFailure): DrillResult => {
    o.log.warn({ dataset, stream: failure.stream, reason: failure.reason }, `drill failed: ${failure.message}`);
    return { ...base, result: 'failed', failure, seconds: (Date.now() - started) / 1000 };
  };
  const { streams, damaged, invalid } = await repo.catalog(dataset);
  for (const i of invalid) o.log.warn(invalidKeyWarning(i));
  if (streams.length === 0 && damaged.length === 0 && !(await repo.hasDataset(dataset))) throw await repo.unknownDataset(dataset);
  if (damaged.length > 0) {
    const d = damaged[0]!;
    return failed({ reason: 'damaged-manifest', stream: d.streamId, message: `the manifest of stream ${d.streamId} is damaged: ${d.object} (${d.message})` });
  }
  if (streams.length === 0) return failed({ reason: 'unrestorable', message: `the archive holds no committed stream of ${dataset}` });
  const chosen = chooseSnapshot(streams, random);
  Object.assign(base, { snapshot: chosen.name, guid: chosen.guid, sampled: chosen.sampled });
  let unit: RestoreUnit | undefined;
  try {
    const result = await restore({
      backend,
      pool: o.pool,
      log: o.log,
      what: `${dataset}${chosen.name}`,
      into,
      zfs: o.zfs,
      noMount: true,
      parallel: o.parallel,
      progress: o.progress,
      signal: o.signal,
      onUnit: (u) => {
        // The unit before was received whole: its bytes count also when a later one fails.
        if (unit) base.bytes += unit.bytes;
        unit = u;
        base.raw = u.manifest.substreams[u.first]!.raw;
        base.streams.push(u.manifest.streamId);
      },
    });
    Object.assign(base, { raw: result.plan.raw, bytes: result.bytes });
    const mismatch = await compareGuids(o.zfs, into, result.plan.units, chosen.guid);
    base.checkedSnapshots = mismatch.checked;
    if (mismatch.problem) return failed({ reason: 'guid-mismatch', stream: mismatch.stream, message: mismatch.problem });
  } catch (err) {
    if (o.signal?.aborted) throw err;
    const failure = classify(err, unit);
    if (!failure) throw err;
    return failed(failure);
  }
  return { ...base, seconds: (Date.now() - started) / 1000 };
}

/** What a failure of the restore says about the archive; undefined when the drill could not run (exit 1). */
function classify(err: unknown, unit: RestoreUnit | undefined): DrillFailure | undefined {
  const stream = unit?.manifest.streamId;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ChunkIntegrityError) return { reason: err.kind === 'chunk-missing' ? 'missing-chunk' : 'damaged', stream, message };
  if (err instanceof StreamIntegrityError) return { reason: 'damaged', stream, message };
  // A receive the stream reached and that said no: ZFS refused what the archive holds.
  if (err instanceof ZfsCommandError && err.args[0] === 'receive' && !err.stopped) return { reason: 'receive-refused', stream, message };
  // No chain leads to the snapshot (a missing stream, a clone whose origin is elsewhere).
  if (err instanceof UsageError && err.kind !== 'unknown-dataset') return { reason: 'unrestorable', stream, message };
  return undefined;
}

/** Every snapshot the plan received must be in `into` with the manifest's GUID, the chosen one above all. */
async function compareGuids(zfs: Zfs, into: string, units: readonly RestoreUnit[], target: string): Promise<{ checked: number; problem?: string; stream?: string }> {
  const received = new Map<string, string>();
  for (const s of await zfs.listSnapshots(into)) if (s.kind === 'snapshot') received.set(s.name.slice(into.length), s.guid.toString());
  let checked = 0;
  for (const u of units) {
    const own = mainSubstreams(u.manifest);
    for (const s of u.manifest.substreams.slice(u.first, u.last + 1)) {
      if (!own.includes(s)) continue;
      const name = shortName(s.toname);
      const got = received.get(name);
      if (got !== s.toguid) {
        const found = got === undefined ? 'is not there' : `has GUID ${got}`;
        return { checked, stream: u.manifest.streamId, problem: `after zfs receive, ${into}${name} ${found}; stream ${u.manifest.streamId} says GUID ${s.toguid}` };
      }
      checked++;
    }
  }
  if (![...received.values()].includes(target)) return { checked, problem: `after zfs receive, no snapshot of ${into} has the GUID ${target} of the snapshot drilled` };
  return { checked };
}

/**
 * The result, kept in the archive for `status` to show (format/status-record.ts): display only,
 * so a target that refuses the write (append-only, read-only media) costs a warning, not the drill.
 */
async function recordDrill(repo: Repository, r: DrillResult, log: Logger): Promise<void> {
  const summary = r.result === 'passed' ? `passed: ${r.dataset}${r.snapshot ?? ''}` : `failed: ${r.failure?.reason ?? 'unknown'}${r.failure?.stream ? ` (${r.failure.stream})` : ''}`;
  await repo
    .recordStatus({
      kind: 'drill',
      dataset: r.dataset,
      at: new Date().toISOString(),
      ok: r.result === 'passed',
      summary,
      mode: r.sampled ? 'sampled' : 'newest',
      problems: r.result === 'passed' ? 0 : 1,
    })
    .catch((err: unknown) => {
      log.warn({ dataset: r.dataset, err: (err as Error).message }, 'could not record the drill result in the archive');
    });
}
