import { type DamagedStream, invalidKeyWarning } from '../archive/format/catalog.js';
import { ChunkFetcher } from '../archive/pipeline/chunk-fetcher.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { OutputError, readStreamSpans, SinkWatch, UnitCheck, unitSpans, writeReleasing } from '../archive/pipeline/reader.js';
import { checkAttachmentDir, chosenAttachments, type RestoredAttachment, restoreAttachments } from './restore-attachments.js';
import { planRestore, type RestorePlan, type RestoreUnit } from '../archive/plan/restore-plan.js';
import type { Manifest } from '../archive/format/manifest.js';
import { Repository } from '../archive/repository.js';
import type { Backend } from '../storage/backend.js';
import { OperationalError, UsageError } from '../util/errors.js';
import { checkReplaceable, ExclusiveFile } from '../util/exclusive-file.js';
import type { Logger } from '../util/logger.js';
import { Progress } from '../util/progress.js';
import { checkDatasetName } from '../zfs/command.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { destinationSnapshots, type Zfs, ZfsCommandError } from '../zfs/zfs.js';

export interface RestoreOptions {
  backend: Backend;
  pool: ChunkPool;
  log: Logger;
  /** DATASET or DATASET@SNAP as archived. */
  what: string;
  /** Receive under this name instead of the archived dataset's. */
  into?: string;
  /** Write the raw stream(s) here ('-' = stdout) instead of running zfs receive. */
  output?: string;
  /** Write one file per stream into this directory (created if missing) instead of running zfs receive. */
  outputDir?: string;
  zfs?: Zfs;
  dryRun?: boolean;
  /** zfs receive -F; with `output`, replace an existing regular file or symbolic link there. */
  force?: boolean;
  resumable?: boolean;
  noMount?: boolean;
  parallel: number;
  progress: boolean;
  /** Into zfs receive: aborting it stops the receive under way and fails the restore (drill: Ctrl-C). */
  signal?: AbortSignal;
  /** Into zfs receive: told each unit before its receive starts (drill: which stream failed). */
  onUnit?(unit: RestoreUnit): void;
  /** Write the attachments of the restored streams into this directory (restore-attachments.ts). */
  attachmentsDir?: string;
  /** Only the attachments: no stream is received or written. */
  attachmentsOnly?: boolean;
}

export interface RestoreResult {
  plan: RestorePlan;
  destination: string;
  done: boolean;
  bytes: number;
  seconds: number;
  /** The dataset `zfs receive` creates; absent when the streams go to files or stdout. */
  into?: string;
  /** With `outputDir`: the file of each stream, in order, and the command that receives it. */
  files?: { path: string; receive: string }[];
  /** With `attachmentsDir`: the files written (or, in a dry run, that would be). */
  attachments?: RestoredAttachment[];
}

/** Plans the chain from the archive and replays it into `zfs receive` (or a file). */
export async function restore(o: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const at = o.what.indexOf('@');
  const dataset = at < 0 ? o.what : o.what.slice(0, at);
  const snapshot = at < 0 ? undefined : o.what.slice(at + 1);
  if (!dataset || snapshot === '') throw new UsageError(`expected DATASET or DATASET@SNAPSHOT, got ${JSON.stringify(o.what)}`);
  checkDatasetName(dataset);
  const receiveInto = o.into ?? dataset;
  checkDatasetName(receiveInto);
  if (o.output !== undefined && o.outputDir !== undefined) throw new UsageError('--output and --output-dir exclude each other');
  if (o.attachmentsOnly && o.attachmentsDir === undefined) throw new UsageError('--attachments-only goes with --attachments DIR');
  const toFiles = o.output !== undefined || o.outputDir !== undefined || o.attachmentsOnly === true;
  if (!toFiles && !o.zfs) throw new UsageError('restore needs zfs (or --output FILE|- or --output-dir DIR to write the stream instead)');
  const destination = o.outputDir ?? (o.output === undefined ? receiveInto : o.output === '-' ? 'stdout' : o.output);
  // Before anything is read from the archive: an existing FILE or a missing directory is bad input.
  if (o.output && o.output !== '-') checkReplaceable(o.output, { force: o.force });
  // A binary stream on a terminal is garbage on the screen, never what was meant (as zstd and gzip refuse).
  if (o.output === '-' && !o.dryRun && process.stdout.isTTY) {
    throw new UsageError('refusing to write a binary stream to a terminal: redirect it (--output - | zfs receive …, or > FILE), or give --output FILE', { kind: 'output-terminal' });
  }

  const repo = await Repository.open(o.backend);
  const { streams, damaged, inProgress, invalid } = await repo.catalog(dataset);
  for (const i of invalid) o.log.warn(invalidKeyWarning(i));
  if (streams.length + damaged.length + inProgress.length === 0 && !(await repo.hasDataset(dataset))) throw await repo.unknownDataset(dataset);
  const present = toFiles ? [] : await presentSnapshots(o, receiveInto);
  const hasClones = streams.some((m) => m.substreams.some((s) => s.clone));
  const origins = hasClones && !toFiles ? await poolSnapshots(o, receiveInto.split('/')[0]!) : undefined;
  const plan = planAround(damaged, dataset, snapshot, o.log, () => planRestore({ dataset, streams, snapshot, present: new Set(present.map((s) => s.guid.toString())), origins }));
  const files = o.outputDir === undefined ? undefined : streamFiles(o.outputDir, plan, receiveInto, o);
  // Before anything is read from the archive, as for --output FILE.
  if (o.outputDir !== undefined) {
    if (existsSync(o.outputDir)) for (const f of files ?? []) checkReplaceable(f.path, { force: o.force });
    else checkReplaceable(o.outputDir); // its parent must exist: only DIR itself is created
  }
  const chosen = o.attachmentsDir === undefined ? [] : chosenAttachments(plan, streams);
  if (o.attachmentsDir !== undefined) {
    checkAttachmentDir(
      o.attachmentsDir,
      chosen.map((c) => c.attachment.name),
      Boolean(o.force),
    );
  }
  const result = { plan, destination, done: false, bytes: 0, seconds: 0, ...(toFiles ? {} : { into: receiveInto }), ...(files ? { files } : {}) };
  // Written first (all read and checked before any is): a zone's config is needed before its datasets.
  const attachments = o.attachmentsDir === undefined ? undefined : await restoreAttachments(repo, o.attachmentsDir, chosen, { force: Boolean(o.force), dryRun: Boolean(o.dryRun) });
  if (attachments) Object.assign(result, { attachments });
  if (o.attachmentsOnly) return { ...result, plan: { ...plan, units: [] }, done: !o.dryRun, seconds: (Date.now() - started) / 1000 };
  if (o.dryRun || plan.units.length === 0) {
    return { ...result, done: plan.units.length === 0, seconds: (Date.now() - started) / 1000 };
  }

  const total = plan.units.reduce((n, u) => n + u.bytes, 0);
  const progress = new Progress(o.progress && Boolean(process.stderr.isTTY));
  let written = 0;
  // The plan was made from summaries (the stream index, format/stream-index.ts): the chunks
  // come from each stream's manifest, read before anything is received.
  const manifests = new Map<RestoreUnit['manifest'], Manifest>();
  for (const u of plan.units) if (!manifests.has(u.manifest)) manifests.set(u.manifest, await repo.fullManifest(u.manifest));
  const fetcher = new ChunkFetcher({ backend: o.backend, pool: o.pool, parallel: o.parallel });
  const feed = async (unit: RestoreUnit, k: number, sink: SinkWatch): Promise<void> => {
    const manifest = manifests.get(unit.manifest)!;
    const spans = unitSpans(manifest, unit.first, unit.last, unit.whole);
    const check = new UnitCheck(manifest, unit, repo.where(repo.streamPrefix(manifest)));
    for await (const { pieces, release, last } of readStreamSpans(fetcher, manifest, spans)) {
      try {
        // Before the bytes go out: the last chunk is held back until the whole unit is proven.
        check.update(pieces);
        if (last) check.finish();
      } catch (err) {
        release();
        throw err;
      }
      await writeReleasing(sink.sink, pieces, release, sink);
      written += pieces.reduce((n, b) => n + b.length, 0);
      progress.update({ rawBytes: written, totalBytes: total, label: `stream ${k + 1}/${plan.units.length}` });
    }
  };
  try {
    if (files) await writeFiles(o.outputDir!, files, Boolean(o.force), plan, feed);
    else if (o.output) await writeToOutput(o.output, Boolean(o.force), plan, feed);
    else await receiveAll(o, receiveInto, plan, feed);
  } finally {
    progress.done();
  }
  return { ...result, done: true, bytes: written, seconds: (Date.now() - started) / 1000 };
}

/** What the destination holds already; a dry run on a host without zfs plans for an empty one. */
async function presentSnapshots(o: RestoreOptions, dataset: string) {
  try {
    return await destinationSnapshots(o.zfs!, dataset);
  } catch (err) {
    if (!o.dryRun) throw err;
    o.log.warn({ err: (err as Error).message }, 'cannot ask zfs what the destination holds: planning for an empty one');
    return [];
  }
}

/** Snapshot GUIDs of the destination pool, where a clone's origin must be. */
async function poolSnapshots(o: RestoreOptions, pool: string): Promise<Set<string> | undefined> {
  try {
    return await o.zfs!.poolSnapshotGuids(pool);
  } catch (err) {
    if (!o.dryRun) throw err;
    return undefined;
  }
}

/**
 * Plans with the streams whose manifests are valid. A damaged manifest may hide the newest
 * snapshot or a link of the chain, so: no default ("newest") snapshot while one is damaged, and
 * a plan that fails names the damaged streams as the likely cause. A plan that succeeds without
 * them is sound: every stream it uses is proven by its own manifest.
 */
function planAround(damaged: DamagedStream[], dataset: string, snapshot: string | undefined, log: Logger, plan: () => RestorePlan): RestorePlan {
  if (damaged.length === 0) return plan();
  const which = damaged.map((d) => `${d.object} (${d.message})`).join('; ');
  const what = `${damaged.length === 1 ? 'the manifest of a stream' : `the manifests of ${damaged.length} streams`} of ${dataset} ${damaged.length === 1 ? 'is' : 'are'} damaged: ${which}`;
  const repair = 'archive that snapshot again to rewrite it (verify reports it)';
  if (snapshot === undefined) {
    throw new OperationalError(`cannot tell the newest snapshot of ${dataset}: ${what}; name a snapshot (${dataset}@SNAPSHOT, see: zfs-offsite list) or ${repair}`);
  }
  try {
    const planned = plan();
    log.warn({ dataset, damaged: damaged.map((d) => d.streamId) }, `${what}; the plan does not need it`);
    return planned;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    throw new OperationalError(`${err.message}; ${what}: ${repair}`);
  }
}

type Feed = (unit: RestoreUnit, k: number, sink: SinkWatch) => Promise<void>;

/**
 * To a file or stdout. A file is written under a random temporary name created exclusively in
 * FILE's directory and put at FILE only once every unit passed its checks (util/exclusive-file.ts:
 * a link or FIFO planted there is never written through). A reader of stdout that goes away
 * (EPIPE) is a failure, not a restore.
 */
async function writeToOutput(output: string, force: boolean, plan: RestorePlan, feed: Feed): Promise<void> {
  const file = output === '-' ? undefined : ExclusiveFile.create(output, { force });
  const watch = new SinkWatch(file ? file.stream() : process.stdout);
  try {
    for (const [k, unit] of plan.units.entries()) await feed(unit, k, watch);
    await watch.flushed();
  } catch (err) {
    if (!file) throw err;
    await file.discard();
    throw err instanceof OutputError ? file.writeFailed(err) : err;
  }
  await file?.commit();
}

/**
 * `--output-dir`: one file per unit, numbered in the order they must be received — one
 * `zfs receive` reads one send stream, so a file holding several back to back brings only the
 * first. Names keep `[A-Za-z0-9._@-]` of the snapshot (`0001-pool_data@s1.zstream`).
 */
function streamFiles(dir: string, plan: RestorePlan, into: string, o: RestoreOptions): { path: string; receive: string }[] {
  const flags = [...(o.noMount ? ['-u'] : []), ...(o.resumable ? ['-s'] : [])].map((f) => ` ${f}`).join('');
  return plan.units.map((u, k) => {
    const path = join(dir, `${String(k + 1).padStart(4, '0')}-${u.toname.replace(/[^A-Za-z0-9._@-]/g, '_')}.zstream`);
    return { path, receive: `zfs receive${flags} ${into} < ${shellWord(path)}` };
  });
}

const shellWord = (s: string) => (/^[A-Za-z0-9._@/+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Each unit into its own file (util/exclusive-file.ts, as --output FILE); the files done stay when a later one fails. */
async function writeFiles(dir: string, files: { path: string }[], force: boolean, plan: RestorePlan, feed: Feed): Promise<void> {
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
  for (const [k, unit] of plan.units.entries()) await writeToOutput(files[k]!.path, force, { ...plan, units: [unit] }, (u, _k, sink) => feed(u, k, sink));
}

/** One `zfs receive` per unit, in order; a failure aborts the receive and stops. */
async function receiveAll(o: RestoreOptions, destination: string, plan: RestorePlan, feed: Feed): Promise<void> {
  const zfs = o.zfs!;
  for (const [k, unit] of plan.units.entries()) {
    const during = `on stream ${unit.manifest.streamId} (${unit.toname})`;
    o.signal?.throwIfAborted();
    o.onUnit?.(unit);
    o.log.info({ stream: unit.manifest.streamId, destination }, `receiving ${k + 1}/${plan.units.length}`);
    const receive = zfs.receive(destination, { force: o.force, resumable: o.resumable, noMount: o.noMount });
    const stop = () => void receive.abort();
    o.signal?.addEventListener('abort', stop, { once: true });
    try {
      try {
        await feed(unit, k, new SinkWatch(receive.sink));
      } catch (err) {
        const ended = await receive.abort();
        // A receive that died first explains more than the broken pipe it caused.
        if (err instanceof OutputError && err.readerGone && ended) throw explained(ended, during);
        throw err;
      }
      await receive.finish().catch((err: unknown) => {
        throw explained(err, during);
      });
    } finally {
      o.signal?.removeEventListener('abort', stop);
    }
  }
}

function explained(err: unknown, during: string): unknown {
  return err instanceof ZfsCommandError ? err.explained({ during }) : err;
}
