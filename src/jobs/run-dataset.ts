import { archivedSnapshots } from '../archive/format/catalog.js';
import { DeletionRefusedError } from '../archive/leftovers.js';
import type { DatasetLock } from '../archive/lease.js';
import { selectBase } from '../archive/plan/base-selection.js';
import { baseCandidates, orphanedBookmarks } from '../archive/plan/bookmarks.js';
import { type CadenceDecision, decideFull, snapshotName } from '../archive/plan/cadence.js';
import { splitSnapshotName } from '../archive/format/keys.js';
import type { RetentionPolicy } from '../archive/plan/retention.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import { Repository } from '../archive/repository.js';
import { datasetSettings, type ResolvedDatasetConfig, snapshotPattern } from '../config/config.js';
import type { Backend } from '../storage/backend.js';
import { errorMessage, OperationalError, UsageError } from '../util/errors.js';
import { InterruptedError } from '../util/interrupted.js';
import { redactUrl } from '../util/redact.js';
import { archiveSettings } from './archive-stream.js';
import { holdBase } from './protect.js';
import { runAttachments } from './attachments.js';
import { pruneArchive } from './prune.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import type { ZfsOffsiteConfig } from '../config/config.js';
import type { Logger } from '../util/logger.js';
import type { Zfs } from '../zfs/zfs.js';
import { sendSource, sendToTargets } from './send.js';
import { verifyArchive } from './verify.js';

const STALE_AFTER_MS = 48 * 3_600_000;

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
  /** The target (without secrets), when its entry has several (`targets:`): one result per target. */
  target?: string;
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

/** One target of a dataset in this run: its entry, its open backend, its lease, its result. */
interface Leg {
  cfg: ResolvedDatasetConfig;
  result: DatasetRunResult;
  step: string;
  backend?: Backend;
  lease?: DatasetLock;
  targetId?: string;
  decision?: CadenceDecision;
  failed: boolean;
}

/**
 * `run` for one dataset on every target its entry gives (`target:` or `targets:`): one snapshot,
 * each target its own cadence decision and chain, one `zfs send` for the targets that need the
 * same stream (jobs/send.ts sendToTargets), then each target's prune and verify. A target that
 * fails, fails alone: one result per target.
 */
export class DatasetRun {
  private readonly started = Date.now();
  private readonly now: Date;
  private readonly legs: Leg[];

  constructor(
    private readonly o: RunOptions,
    cfgs: ResolvedDatasetConfig[],
    private readonly dataset: string,
  ) {
    this.now = o.now?.() ?? new Date();
    this.legs = cfgs.map((cfg) => ({
      cfg,
      step: 'open',
      failed: false,
      result: { dataset, ...(cfgs.length > 1 ? { target: redactUrl(cfg.target) } : {}), status: 'ok', seconds: 0 },
    }));
  }

  private get cfg(): ResolvedDatasetConfig {
    return this.legs[0]!.cfg;
  }

  private live(): Leg[] {
    return this.legs.filter((l) => !l.failed);
  }

  /** Runs `fn` for each live target; a failure marks that target failed at its step (an interruption ends the run). */
  private async each(step: string, fn: (leg: Leg) => Promise<void>): Promise<void> {
    for (const leg of this.live()) {
      leg.step = step;
      try {
        await fn(leg);
      } catch (err) {
        this.fail(leg, err);
      }
    }
  }

  private fail(leg: Leg, err: unknown): void {
    if (err instanceof InterruptedError) throw err;
    leg.failed = true;
    Object.assign(leg.result, { status: 'failed', step: leg.step, message: errorMessage(err) });
    this.o.log.error({ dataset: this.dataset, ...(leg.result.target ? { target: leg.result.target } : {}), step: leg.step }, errorMessage(err));
  }

  async execute(): Promise<DatasetRunResult[]> {
    try {
      await this.each('open', async (leg) => {
        leg.backend = await this.o.openTarget(leg.cfg);
      });
      if (this.o.dryRun) await this.each('plan', (leg) => this.plan(leg));
      else await this.archive();
    } finally {
      for (const leg of this.legs) {
        await leg.lease?.release().catch((err: unknown) => this.o.log.warn({ dataset: this.dataset, err: errorMessage(err) }, 'could not release the lock'));
        await leg.backend?.close().catch(() => undefined);
      }
    }
    const seconds = (Date.now() - this.started) / 1000;
    return this.legs.map((l) => ({ ...l.result, seconds }));
  }

  /** --dry-run: what would be sent and pruned; nothing is created, sent or deleted. */
  private async plan(leg: Leg): Promise<void> {
    leg.result.status = 'planned';
    leg.step = 'snapshot';
    const snapshot = leg.cfg.snapshot.mode === 'create' ? `${this.dataset}@${snapshotName(leg.cfg.snapshot.prefix, this.now)}` : await this.pickSnapshot();
    leg.result.snapshot = snapshot;
    leg.step = 'plan';
    leg.targetId = await new Repository(leg.backend!).targetId();
    const decision = await this.decide(leg, snapshot);
    Object.assign(leg.result, { kind: decision.full ? 'full' : 'incr', why: decision.reason });
    if (leg.cfg.keep) {
      leg.step = 'prune';
      leg.result.prunedStreams = await this.planPrune(leg.backend!, leg.cfg.keep);
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

  private async archive(): Promise<void> {
    // The local lock is one per dataset on this host: the first target's lease takes it.
    let first = true;
    await this.each('lock', async (leg) => {
      leg.lease = await new Repository(leg.backend!).lease({ dataset: this.dataset, log: this.o.log, localLock: first });
      first = false;
    });
    if (this.live().length === 0) return;
    let snapshot: string;
    const snapshotLegs = this.live();
    try {
      for (const leg of snapshotLegs) leg.step = 'snapshot';
      snapshot = await this.takeSnapshot();
    } catch (err) {
      for (const leg of snapshotLegs) this.fail(leg, err);
      return;
    }
    for (const leg of this.legs) leg.result.snapshot = snapshot;
    await this.each('plan', async (leg) => {
      const repo = new Repository(leg.backend!);
      await repo.check();
      leg.targetId = await repo.ensureMarker();
      leg.decision = await this.decide(leg, snapshot);
      leg.result.why = leg.decision.reason;
    });
    await this.send(snapshot);
    await this.reportOrphans();
    await this.each('prune', async (leg) => {
      if (!leg.cfg.keep) return;
      await leg.lease!.assertHeld();
      let pruned;
      try {
        pruned = await pruneArchive({ backend: leg.backend!, log: this.o.log, dataset: this.dataset, policy: leg.cfg.keep, staleAfterMs: STALE_AFTER_MS, dryRun: false });
      } catch (err) {
        // Append-only credentials (prune.ts refuses them before deleting anything): the archive
        // is kept whole and the run goes on; retention is then the job of a prune run elsewhere
        // with a key that can delete (README "Ransomware protection").
        if (!(err instanceof DeletionRefusedError)) throw err;
        this.o.log.warn(
          { dataset: this.dataset },
          `keep: not applied: ${leg.backend!.location} refuses deletions with these credentials (append-only?); retention is left to \`zfs-offsite prune\` run with a key that can delete`,
        );
        leg.result.prunedStreams = 0;
        return;
      }
      leg.result.prunedStreams = pruned.deletedStreams;
      const error = pruned.datasets.find((d) => d.error)?.error;
      if (error) throw new OperationalError(error);
    });
    await this.each('verify', async (leg) => {
      const report = await verifyArchive({
        backend: leg.backend!,
        pool: this.o.pool,
        log: this.o.log,
        dataset: this.dataset,
        deep: false,
        parallel: 4,
        staleAfterMs: STALE_AFTER_MS,
        progress: false,
        record: true,
      });
      const mine = report.problems.filter((p) => p.stream === leg.result.streamId || p.kind === 'chain-broken');
      if (mine.length > 0) throw new OperationalError(`quick verify after the archive: ${mine.map((p) => `${p.kind}: ${p.message}`).join('; ')}`);
    });
  }

  /** One sendToTargets for the live targets; each outcome is its target's. */
  private async send(snapshot: string): Promise<void> {
    const legs = this.live();
    if (legs.length === 0) return;
    // attach: before the upload, so a failing command fails the dataset with nothing committed;
    // a recursive entry's attachments belong to the entry's own dataset only.
    for (const leg of legs) leg.step = 'attach';
    let attachments;
    try {
      const cfg = legs[0]!.cfg;
      attachments = await runAttachments(cfg.name === this.dataset ? (cfg.attach ?? []) : []);
    } catch (err) {
      for (const leg of legs) this.fail(leg, err);
      return;
    }
    for (const leg of legs) leg.step = 'send';
    let source;
    try {
      source = await sendSource({ snapshot, zfs: this.o.zfs, pool: this.o.pool, log: this.o.log });
    } catch (err) {
      for (const leg of legs) this.fail(leg, err);
      return;
    }
    const outcomes = await sendToTargets(
      { snapshot, zfs: this.o.zfs, pool: this.o.pool, log: this.o.log, signal: this.o.signal, attachments },
      source,
      legs.map((leg) => ({
        backend: leg.backend!,
        full: leg.decision!.full,
        lease: leg.lease, // held already: send must not try to take it again
        ...(leg.cfg.raw === 'auto' ? {} : { raw: leg.cfg.raw }),
        settings: archiveSettings(datasetSettings(leg.cfg), this.o.progress),
      })),
      { everyTarget: legs.length === this.legs.length },
    );
    for (const [i, outcome] of outcomes.entries()) {
      const leg = legs[i]!;
      if ('error' in outcome) {
        leg.step = outcome.step;
        this.fail(leg, outcome.error);
        continue;
      }
      const sent = outcome.result;
      Object.assign(leg.result, {
        streamId: sent.streamId,
        kind: sent.status === 'already-archived' ? 'none' : leg.decision!.full ? 'full' : 'incr',
        rawBytes: sent.manifest?.rawBytes ?? 0,
        storedBytes: sent.manifest?.storedBytes ?? 0,
        uploadedBytes: sent.uploadedBytes,
      });
      try {
        leg.step = 'protect';
        if (leg.cfg.hold) await holdBase(this.o.zfs, this.dataset, splitSnapshotName(snapshot).snapshot, sent.targetId!);
        leg.step = 'send';
        if (leg.lease?.lost) throw leg.lease.lost;
        this.o.signal?.throwIfAborted();
      } catch (err) {
        this.fail(leg, err);
      }
    }
  }

  /**
   * Bookmarks (and holds) of targets that are not among this dataset's targets any more are
   * reported, one warning line naming them: neither kept silently nor deleted unasked. Only when
   * every target's id is known (a target that could not be opened may be the owner).
   */
  private async reportOrphans(): Promise<void> {
    if (this.legs.some((l) => l.targetId === undefined)) return;
    const known = new Set(this.legs.map((l) => l.targetId!));
    let orphans: string[];
    try {
      orphans = orphanedBookmarks(await this.o.zfs.listSnapshots(this.dataset), known);
    } catch (err) {
      this.o.log.debug({ dataset: this.dataset, err: errorMessage(err) }, 'the bookmarks could not be listed');
      return;
    }
    if (orphans.length === 0) return;
    this.o.log.warn(
      { dataset: this.dataset },
      `bookmarks of targets no longer in ${this.o.config.file}: ${orphans.join(', ')} — zfs destroy them once that target is gone for good (docs/config.md, "Several targets")`,
    );
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

  /** Full or incremental for this target: its cadence policy first, then whether the source still shares a base with its archive. */
  private async decide(leg: Leg, snapshot: string): Promise<CadenceDecision> {
    const { streams } = await new Repository(leg.backend!).catalog(this.dataset);
    const decision = decideFull(this.dataset, streams, leg.cfg, this.now);
    if (decision.full) return decision;
    const source = await this.o.zfs.listSnapshots(this.dataset);
    const target = source.find((s) => s.name === snapshot);
    // raw: auto follows the newest stream by the snapshot order (stream ids embed names, not order).
    const raw = leg.cfg.raw === 'auto' ? (orderSnapshots(streams).streams.at(-1)?.raw ?? false) : leg.cfg.raw;
    if (target && !selectBase({ target, source: baseCandidates(source, leg.targetId), archived: archivedSnapshots(streams), raw })) {
      return { full: true, reason: 'the source diverged from the archive (no archived snapshot exists on it as a snapshot or bookmark of this target): new full' };
    }
    return decision;
  }
}
