import { spawn } from 'node:child_process';
import { selectBase } from '../archive/plan/base-selection.js';
import { decideFull, snapshotName, type CadenceDecision } from '../archive/plan/cadence.js';
import { archivedSnapshots } from '../archive/format/catalog.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { splitSnapshotName } from '../archive/format/keys.js';
import type { RetentionPolicy } from '../archive/plan/retention.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import { datasetSettings, entryHolds, type ResolvedDatasetConfig, snapshotPattern, type ZfsOffsiteConfig } from '../config/config.js';
import type { Backend } from '../storage/backend.js';
import { errorMessage, OperationalError, UsageError } from '../util/errors.js';
import { InterruptedError } from '../util/interrupted.js';
import type { Logger } from '../util/logger.js';
import { redactText, redactUrl } from '../util/redact.js';
import type { Zfs } from '../zfs/zfs.js';
import { archiveSettings } from './archive-stream.js';
import { DeletionRefusedError } from '../archive/leftovers.js';
import { Repository } from '../archive/repository.js';
import { pruneArchive } from './prune.js';
import { sendSnapshot } from './send.js';
import { verifyArchive } from './verify.js';

/** `zfs-offsite run --config`: the nightly job, per dataset, one failure never stopping the rest. */

export interface RunOptions {
  config: ZfsOffsiteConfig;
  zfs: Zfs;
  pool: ChunkPool;
  log: Logger;
  openTarget(dataset: ResolvedDatasetConfig): Promise<Backend>;
  only?: string;
  dryRun: boolean;
  progress: boolean;
  now?: () => Date;
  /**
   * Ctrl-C / SIGTERM (src/cli/interrupt.ts): the dataset being sent saves its journal and the run
   * stops there with the InterruptedError (no other dataset is started, no on_failure runs).
   */
  signal?: AbortSignal;
}

export interface DatasetRunResult {
  dataset: string;
  status: 'ok' | 'failed' | 'planned';
  /** The step that failed (open, lock, snapshot, plan, send, protect, prune, verify). */
  step?: string;
  snapshot?: string;
  kind?: 'full' | 'incr' | 'none';
  why?: string;
  streamId?: string;
  rawBytes?: number;
  storedBytes?: number;
  uploadedBytes?: number;
  prunedStreams?: number;
  message?: string;
  seconds: number;
}

export interface RunReport {
  config: string;
  dryRun: boolean;
  results: DatasetRunResult[];
  ok: boolean;
}

const STALE_AFTER_MS = 48 * 3_600_000;

export async function runNightly(o: RunOptions): Promise<RunReport> {
  const results: DatasetRunResult[] = [];
  for (const cfg of o.config.datasets) {
    // --dataset: an entry that cannot hold it is not even listed (its failure is not this run's).
    if (o.only !== undefined && !entryHolds(cfg, o.only)) continue;
    let names: string[];
    try {
      names = cfg.recursive ? await o.zfs.listDatasets(cfg.name, true) : [cfg.name];
    } catch (err) {
      results.push({ dataset: cfg.name, status: 'failed', step: 'list', message: errorMessage(err), seconds: 0 });
      continue;
    }
    for (const name of names) {
      if (o.only !== undefined && name !== o.only) continue;
      o.signal?.throwIfAborted();
      const result = await new DatasetRun(o, cfg, name).execute();
      results.push(result);
      // A dry run changes nothing and tells no one: hooks are for real runs only.
      if (result.status === 'failed' && cfg.onFailure && !o.dryRun) await runOnFailure(cfg, result, o);
    }
  }
  if (o.only !== undefined && results.length === 0) throw new UsageError(`dataset ${o.only} is not in ${o.config.file}`);
  return { config: o.config.file, dryRun: o.dryRun, results, ok: results.every((r) => r.status !== 'failed') };
}

class DatasetRun {
  private readonly started = Date.now();
  private readonly now: Date;
  private step = 'open';
  private readonly result: DatasetRunResult;

  constructor(
    private readonly o: RunOptions,
    private readonly cfg: ResolvedDatasetConfig,
    private readonly dataset: string,
  ) {
    this.now = o.now?.() ?? new Date();
    this.result = { dataset, status: 'ok', seconds: 0 };
  }

  async execute(): Promise<DatasetRunResult> {
    let backend: Backend | undefined;
    try {
      backend = await this.o.openTarget(this.cfg);
      if (this.o.dryRun) await this.plan(backend);
      else await this.archive(backend);
    } catch (err) {
      // Stopped by the user, not failed: the whole run ends here (its lock released above).
      if (err instanceof InterruptedError) throw err;
      Object.assign(this.result, { status: 'failed', step: this.step, message: errorMessage(err) });
      this.o.log.error({ dataset: this.dataset, step: this.step }, errorMessage(err));
    } finally {
      await backend?.close().catch(() => undefined);
    }
    this.result.seconds = (Date.now() - this.started) / 1000;
    return this.result;
  }

  /** --dry-run: what would be sent and pruned; nothing is created, sent or deleted. */
  private async plan(backend: Backend): Promise<void> {
    this.result.status = 'planned';
    this.step = 'snapshot';
    const snapshot = this.cfg.snapshot.mode === 'create' ? `${this.dataset}@${snapshotName(this.cfg.snapshot.prefix, this.now)}` : await this.pickSnapshot();
    this.result.snapshot = snapshot;
    this.step = 'plan';
    const decision = await this.decide(backend, snapshot);
    Object.assign(this.result, { kind: decision.full ? 'full' : 'incr', why: decision.reason });
    if (this.cfg.keep) {
      this.step = 'prune';
      this.result.prunedStreams = await this.planPrune(backend, this.cfg.keep);
    }
  }

  /**
   * The streams a prune would delete. A target without an archive yet, or an archive without this
   * dataset yet (the first run), has nothing to prune: that is the answer, not a failure — the
   * read-only `prune` command's NoArchiveError and unknown-dataset error are for a user's typo.
   */
  private async planPrune(backend: Backend, policy: RetentionPolicy): Promise<number> {
    let repo: Repository;
    try {
      repo = await Repository.open(backend);
    } catch (err) {
      if (err instanceof OperationalError && err.kind === 'no-archive') return 0;
      throw err;
    }
    if (!(await repo.hasDataset(this.dataset))) return 0;
    const pruned = await pruneArchive({ backend, log: this.o.log, dataset: this.dataset, policy, staleAfterMs: STALE_AFTER_MS, dryRun: true });
    return pruned.deletedStreams;
  }

  private async archive(backend: Backend): Promise<void> {
    this.step = 'lock';
    const lock = await new Repository(backend).lease({ dataset: this.dataset, log: this.o.log });
    try {
      this.step = 'snapshot';
      const snapshot = await this.takeSnapshot();
      this.result.snapshot = snapshot;
      this.step = 'plan';
      const decision = await this.decide(backend, snapshot);
      this.result.why = decision.reason;
      this.step = 'send';
      const sent = await sendSnapshot({
        snapshot,
        backend,
        zfs: this.o.zfs,
        pool: this.o.pool,
        log: this.o.log,
        full: decision.full,
        lease: lock, // held already: send must not try to take it again
        ...(this.cfg.raw === 'auto' ? {} : { raw: this.cfg.raw }),
        settings: archiveSettings(datasetSettings(this.cfg), this.o.progress),
        signal: this.o.signal,
      });
      Object.assign(this.result, {
        streamId: sent.streamId,
        kind: sent.status === 'already-archived' ? 'none' : decision.full ? 'full' : 'incr',
        rawBytes: sent.manifest?.rawBytes ?? 0,
        storedBytes: sent.manifest?.storedBytes ?? 0,
        uploadedBytes: sent.uploadedBytes,
      });
      if (lock.lost) throw lock.lost;
      this.o.signal?.throwIfAborted();
      if (this.cfg.keep) {
        this.step = 'prune';
        await lock.assertHeld();
        await this.prune(backend, this.cfg.keep);
      }
      this.step = 'verify';
      const report = await verifyArchive({ backend, pool: this.o.pool, log: this.o.log, dataset: this.dataset, deep: false, parallel: 4, staleAfterMs: STALE_AFTER_MS, progress: false });
      const mine = report.problems.filter((p) => p.stream === sent.streamId || p.kind === 'chain-broken');
      if (mine.length > 0) throw new OperationalError(`quick verify after the archive: ${mine.map((p) => `${p.kind}: ${p.message}`).join('; ')}`);
    } finally {
      await lock.release().catch((err: unknown) => this.o.log.warn({ dataset: this.dataset, err: errorMessage(err) }, 'could not release the lock'));
    }
  }

  /**
   * The keep: step. With append-only credentials (prune.ts refuses them before deleting anything)
   * the archive is kept whole and the run goes on: retention is then the job of a prune run
   * elsewhere with a key that can delete (README "Ransomware protection").
   */
  private async prune(backend: Backend, policy: RetentionPolicy): Promise<void> {
    let pruned;
    try {
      pruned = await pruneArchive({ backend, log: this.o.log, dataset: this.dataset, policy, staleAfterMs: STALE_AFTER_MS, dryRun: false });
    } catch (err) {
      if (!(err instanceof DeletionRefusedError)) throw err;
      this.o.log.warn(
        { dataset: this.dataset },
        `keep: not applied: ${backend.location} refuses deletions with these credentials (append-only?); retention is left to \`zfs-offsite prune\` run with a key that can delete`,
      );
      this.result.prunedStreams = 0;
      return;
    }
    this.result.prunedStreams = pruned.deletedStreams;
    const error = pruned.datasets.find((d) => d.error)?.error;
    if (error) throw new OperationalError(error);
  }

  private async takeSnapshot(): Promise<string> {
    if (this.cfg.snapshot.mode === 'pick') return this.pickSnapshot();
    const name = `${this.dataset}@${snapshotName(this.cfg.snapshot.prefix, this.now)}`;
    await this.o.zfs.createSnapshot(name);
    return name;
  }

  /** The newest existing snapshot whose name matches the pattern (e.g. one made by sanoid). */
  private async pickSnapshot(): Promise<string> {
    const { pattern } = this.cfg.snapshot as { pattern: string };
    const re = snapshotPattern(pattern);
    const matching = (await this.o.zfs.listSnapshots(this.dataset)).filter((s) => s.kind === 'snapshot' && re.test(splitSnapshotName(s.name).snapshot));
    const newest = matching.at(-1);
    if (!newest) throw new UsageError(`no snapshot of ${this.dataset} matches ${JSON.stringify(pattern)}`);
    return newest.name;
  }

  /** Full or incremental: the cadence policy first, then whether the source still shares a base with the archive. */
  private async decide(backend: Backend, snapshot: string): Promise<CadenceDecision> {
    const { streams } = await new Repository(backend).catalog(this.dataset);
    const decision = decideFull(this.dataset, streams, this.cfg, this.now);
    if (decision.full) return decision;
    const source = await this.o.zfs.listSnapshots(this.dataset);
    const target = source.find((s) => s.name === snapshot);
    // raw: auto follows the newest stream by the snapshot order (stream ids embed names, not order).
    const raw = this.cfg.raw === 'auto' ? (orderSnapshots(streams).streams.at(-1)?.raw ?? false) : this.cfg.raw;
    if (target && !selectBase({ target, source, archived: archivedSnapshots(streams), raw })) {
      return { full: true, reason: 'the source diverged from the archive (no archived snapshot exists on it as a snapshot or bookmark): new full' };
    }
    return decision;
  }
}

/** on_failure: the configured command, told what failed through its environment. */
async function runOnFailure(cfg: ResolvedDatasetConfig, result: DatasetRunResult, o: RunOptions): Promise<void> {
  const [cmd, ...args] = cfg.onFailure!;
  const env = {
    ...process.env,
    ZFS_OFFSITE_DATASET: result.dataset,
    ZFS_OFFSITE_STEP: result.step ?? '',
    // The hook's output usually ends in mail: no password of a URL reaches it (src/util/redact.ts).
    ZFS_OFFSITE_ERROR: redactText(result.message ?? ''),
    ZFS_OFFSITE_TARGET: redactUrl(cfg.target).replace(/\/\/[^@/]*@/, '//'),
    ZFS_OFFSITE_CONFIG: o.config.file,
  };
  await new Promise<void>((resolve) => {
    const child = spawn(cmd!, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGTERM'), 5 * 60_000);
    child.on('error', (err) => o.log.error({ dataset: result.dataset, err: err.message }, 'on_failure could not be run'));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) o.log.error({ dataset: result.dataset, code }, 'on_failure exited with an error');
      resolve();
    });
  });
}
