#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size: V8 otherwise grows the young generation of this thread towards 3 × 16 MiB
// over a long stream, so peak memory crept up with stream length (put to S3: 216 MiB at 1 GiB,
// 250 MiB at 8 GiB; with the flag 219 MiB at 8 GiB, no slower). Only a start-up flag can set it.
import { existsSync } from 'node:fs';
import { isatty } from 'node:tty';
import { Command, CommanderError, Option } from 'commander';
import { fileSource, stdinSource } from '../util/byte-source.js';
import { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { MIN_CHUNK_SIZE } from '../archive/pipeline/writer.js';
import { type ArchiveSettings, archiveStream, DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL, DEFAULT_PARALLEL, DEFAULT_STALL_TIMEOUT } from '../jobs/archive-stream.js';
import { formatListing, listArchive } from '../jobs/list.js';
import { describePlan, restore, restoreJson } from '../jobs/restore.js';
import { sendSnapshot } from '../jobs/send.js';
import { localSnapshotTxgs } from '../zfs/snapshot-txgs.js';
import type { StreamSummary } from '../stream/validator.js';
import { verifyArchive } from '../jobs/verify.js';
import type { SampleLimit } from '../archive/plan/sampling.js';
import { parseDuration } from '../util/duration.js';
import type { Backend } from '../storage/backend.js';
import { openBackend } from '../storage/open.js';
import { parseSize } from '../util/bytes.js';
import { UsageError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/logger.js';
import { TOOL_VERSION } from '../util/version.js';
import { Zfs } from '../zfs/zfs.js';
import { registerRun } from './commands/run.js';
import { registerPrune } from './commands/prune.js';
import { exitCodeFor, oneLineError } from './exit.js';
import { archiveSummaryLine, formatVerifyReport, printJson } from './output.js';

interface GlobalOptions {
  logLevel?: string;
  logJson?: boolean;
  logFile?: string;
  zfsCmd?: string;
}

interface TargetOptions {
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3PartSize?: string;
  s3Queue?: string;
  storageClass?: string;
  s3Timeout?: string;
  retries?: string;
  retryTime?: string;
  bwlimit?: string;
}

interface ArchiveCliOptions extends TargetOptions {
  chunkSize: string;
  compressionLevel: string;
  parallel: string;
  stallTimeout: string;
  progress: boolean;
  json?: boolean;
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`invalid ${what}: ${JSON.stringify(text)} (expected a whole number ≥ 1)`);
  return n;
}

function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--s3-endpoint <url>', 'S3 endpoint URL (default: AWS_ENDPOINT_URL or AWS)')
    .option('--s3-path-style', 'path-style S3 addressing (default on when an endpoint is set)')
    .option('--s3-part-size <size>', 'S3 multipart part size', '16M')
    .option('--s3-queue <n>', 'S3 parts uploaded in parallel per object', '4')
    .option('--storage-class <class>', 'S3 storage class for chunk objects')
    .option('--s3-timeout <duration>', 'a request whose connection is silent this long fails and is retried', '2m')
    .option('--retries <n>', 'attempts per storage request on transient failures (5xx, throttling, resets, timeouts)', '6')
    .option('--retry-time <duration>', 'give up retrying a request after this long', '2m')
    .option('--sftp-key <file>', 'SSH private key for sftp:// targets (env ZFS_OFFSITE_SFTP_KEY; passphrase in ZFS_OFFSITE_SFTP_PASSPHRASE)')
    .option('--sftp-known-hosts <file>', 'known_hosts file for sftp:// targets (env ZFS_OFFSITE_SFTP_KNOWN_HOSTS; default ~/.ssh/known_hosts)')
    .option('--sftp-accept-new', 'record an SFTP server host key seen for the first time (never a changed one)');
}

function addArchiveOptions(cmd: Command): Command {
  return addTargetOptions(cmd)
    .option('--chunk-size <size>', 'raw bytes per chunk object', String(DEFAULT_CHUNK_SIZE / 1024 / 1024) + 'M')
    .option('--compression-level <n>', 'zstd level (1-19; incompressible chunks use a faster one)', String(DEFAULT_LEVEL))
    .option('--parallel <n>', 'chunk uploads in flight', String(DEFAULT_PARALLEL))
    .option('--bwlimit <rate>', 'upload bandwidth limit in bytes per second, e.g. 20M (average over the stream)')
    .option('--stall-timeout <duration>', 'fail when the stream produces no data for this long (0 = never)', DEFAULT_STALL_TIMEOUT)
    .option('--no-progress', 'no progress line on a terminal')
    .option('--json', 'print a machine-readable summary');
}

function open(target: string, o: TargetOptions & { sftpKey?: string; sftpKnownHosts?: string; sftpAcceptNew?: boolean }): Promise<Backend> {
  return openBackend(target, {
    s3Endpoint: o.s3Endpoint,
    s3PathStyle: o.s3PathStyle,
    s3PartSize: o.s3PartSize ? parseSize(o.s3PartSize, '--s3-part-size') : undefined,
    s3Queue: o.s3Queue ? positiveInt(o.s3Queue, '--s3-queue') : undefined,
    storageClass: o.storageClass,
    s3TimeoutMs: o.s3Timeout ? parseDuration(o.s3Timeout, '--s3-timeout') : undefined,
    bwlimit: o.bwlimit ? parseSize(o.bwlimit, '--bwlimit') : undefined,
    retry: {
      maxAttempts: o.retries ? positiveInt(o.retries, '--retries') : undefined,
      maxTotalMs: o.retryTime ? parseDuration(o.retryTime, '--retry-time') : undefined,
    },
    sftpKey: o.sftpKey,
    sftpKnownHosts: o.sftpKnownHosts,
    sftpAcceptNew: o.sftpAcceptNew,
  });
}

function archiveSettings(o: ArchiveCliOptions): ArchiveSettings {
  const chunkSize = parseSize(o.chunkSize, '--chunk-size');
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > 1024 ** 3) throw new UsageError(`--chunk-size must be between 1M and 1G, got ${o.chunkSize}`);
  const level = Number(o.compressionLevel);
  if (!Number.isInteger(level) || level < -7 || level > 19) throw new UsageError(`--compression-level must be a whole number from -7 to 19, got ${o.compressionLevel}`);
  const stallMs = parseDuration(o.stallTimeout, '--stall-timeout');
  return { chunkSize, level, parallel: positiveInt(o.parallel, '--parallel'), progress: o.progress, stallMs };
}

async function withResources<T>(target: string, o: TargetOptions, fn: (backend: Backend, pool: ChunkPool) => Promise<T>): Promise<T> {
  const backend = await open(target, o);
  const pool = new ChunkPool();
  try {
    return await fn(backend, pool);
  } finally {
    await pool.close();
    await backend.close();
  }
}

/** What an action wants the process to exit with, when it is not 0 and not an error (verify: 3). */
export interface Outcome {
  exitCode: number;
}

export function buildProgram(getLog: () => Logger, outcome: Outcome = { exitCode: 0 }): Command {
  const program = new Command('zfs-offsite')
    .description('Archive ZFS send streams to S3, SFTP or a local directory, and restore them')
    .version(TOOL_VERSION)
    .option('--log-level <level>', 'trace, debug, info, warn, error', undefined)
    .option('--log-json', 'log JSON lines on stderr instead of text')
    .option('--log-file <file>', 'also append JSON logs to this file')
    .option('--zfs-cmd <command>', 'how to run zfs, e.g. "ssh root@host zfs" (env ZFS_OFFSITE_ZFS_CMD)')
    .showHelpAfterError('(run with --help for usage)');

  addArchiveOptions(
    program
      .command('put')
      .description('archive a ZFS send stream read from stdin or a file')
      .requiredOption('--to <target>', 'file:///path, /path, or s3://bucket/prefix')
      .option('--dataset <name>', 'archive under this dataset name (default: from the stream)')
      .option('--input <file>', 'read the stream from this file instead of stdin'),
  ).action(async (o: ArchiveCliOptions & { to: string; dataset?: string; input?: string }) => {
    const settings = archiveSettings(o);
    if (o.input && !existsSync(o.input)) throw new UsageError(`input file not found: ${o.input}`);
    if (!o.input && isatty(0)) throw new UsageError('no input: pipe a zfs send stream into put, or use --input FILE');
    const input = o.input ? fileSource(o.input) : stdinSource();
    await withResources(o.to, o, async (backend, pool) => {
      // createtxg of the stream's snapshots when this host has them (best effort: snapshot-txgs.ts).
      const zfs = Zfs.fromCommand(program.opts<GlobalOptions>().zfsCmd);
      const snapshotTxgs = (summary: StreamSummary) => localSnapshotTxgs(zfs, summary);
      const result = await archiveStream({ backend, input, pool, settings, log: getLog(), dataset: o.dataset, sendArgs: null, zfsVersion: null, snapshotTxgs });
      if (o.json) printJson(result);
      else process.stdout.write(`${archiveSummaryLine(result, backend.location)}\n`);
    });
  });

  addArchiveOptions(
    program
      .command('send')
      .description('run zfs send for a snapshot and archive the stream (incremental from the newest archived base)')
      .argument('<snapshot>', 'pool/dataset@snapshot')
      .requiredOption('--to <target>', 'file:///path, /path, or s3://bucket/prefix')
      .option('--from <base>', 'base snapshot (snap, @snap, pool/ds@snap) or bookmark (#bm)')
      .option('-I, --intermediates', 'include every snapshot between base and target (zfs send -I)')
      .option('--full', 'send a full stream even when the archive has a base')
      .addOption(new Option('--raw', 'raw send (zfs send -w); default for encrypted datasets'))
      .addOption(new Option('--no-raw', 'never raw, even for encrypted datasets (the archive then holds plaintext)'))
      .option('--no-bookmark', 'do not keep a zfs-offsite_<snap> bookmark of the archived snapshot on the source')
      .option('--no-large-blocks', 'non-raw sends: split large records into 128K blocks (no zfs send -L)')
      .option('--no-compressed', 'non-raw sends: send blocks decompressed (no zfs send -c)'),
  ).action(async (snapshot: string, o: ArchiveCliOptions & { to: string; from?: string; intermediates?: boolean; full?: boolean; raw?: boolean; bookmark: boolean; largeBlocks: boolean; compressed: boolean }) => {
    const settings = archiveSettings(o);
    const zfs = Zfs.fromCommand(program.opts<GlobalOptions>().zfsCmd);
    await withResources(o.to, o, async (backend, pool) => {
      const result = await sendSnapshot({ snapshot, backend, zfs, pool, settings, log: getLog(), from: o.from, intermediates: o.intermediates, full: o.full, raw: o.raw, bookmark: o.bookmark, largeBlocks: o.largeBlocks, compressed: o.compressed });
      if (o.json) printJson(result);
      else process.stdout.write(`${archiveSummaryLine(result, backend.location)}\n`);
    });
  });

  addTargetOptions(
    program
      .command('list')
      .description('list archived datasets, streams and chains')
      .argument('<target>', 'file:///path, /path, or s3://bucket/prefix')
      .argument('[dataset]', 'only this dataset')
      .option('--json', 'machine-readable output'),
  ).action(async (target: string, dataset: string | undefined, o: TargetOptions & { json?: boolean }) => {
    const backend = await open(target, o);
    try {
      const listing = await listArchive(backend, dataset);
      if (o.json) printJson(listing);
      else process.stdout.write(formatListing(listing));
    } finally {
      await backend.close();
    }
  });

  addTargetOptions(
    program
      .command('restore')
      .description('restore a dataset (at its newest or a given snapshot) from the archive into zfs receive')
      .argument('<dataset>', 'DATASET or DATASET@SNAPSHOT as archived (see: list)')
      .requiredOption('--from <target>', 'file:///path, /path, or s3://bucket/prefix')
      .option('--into <dataset>', 'receive under this name (default: the archived name)')
      .option('--output <file>', 'write the raw stream(s) to FILE or - (stdout) instead of running zfs receive')
      .option('--dry-run', 'print the plan and exit')
      .option('--force', 'zfs receive -F: roll the destination back / overwrite it')
      .option('--resumable', 'zfs receive -s: keep partial state when interrupted')
      .option('--no-mount', 'zfs receive -u: do not mount what is received')
      .option('--parallel <n>', 'chunks fetched ahead', String(DEFAULT_PARALLEL))
      .option('--no-progress', 'no progress line on a terminal')
      .option('--json', 'print the plan and result as JSON'),
  ).action(async (what: string, o: TargetOptions & RestoreCliOptions) => {
    const zfs = o.output ? undefined : Zfs.fromCommand(program.opts<GlobalOptions>().zfsCmd);
    const parallel = positiveInt(o.parallel, '--parallel');
    const backend = await open(o.from, o);
    const pool = new ChunkPool();
    try {
      const result = await restore({
        backend, pool, log: getLog(), what, zfs, parallel,
        into: o.into, output: o.output, dryRun: o.dryRun, force: o.force, resumable: o.resumable, noMount: !o.mount, progress: o.progress,
      });
      // With --output -, stdout carries the stream: the report goes to stderr.
      const report = o.output === '-' ? process.stderr : process.stdout;
      if (o.json) report.write(`${JSON.stringify(restoreJson(result), null, 2)}\n`);
      else report.write(describePlan(result, o.dryRun ? 'dry-run' : 'done'));
    } finally {
      await pool.close();
      await backend.close();
    }
  });

  addTargetOptions(
    program
      .command('verify')
      .description('audit the archive: quick (listing and manifests), --deep (every byte and ZFS record), or sampled')
      .argument('<target>', 'file:///path, /path, or s3://bucket/prefix')
      .argument('[dataset]', 'only this dataset')
      .option('--deep', 'download every chunk, check SHA-256s and zstd checksums, walk every ZFS record')
      .option('--sample <percent>', 'deep-check a random share of the stored bytes, e.g. 5%')
      .option('--max-bytes <size>', 'deep-check random chunks up to this many stored bytes, e.g. 10G')
      .option('--seed <n>', 'repeat the random choice of a previous sampled run')
      .option('--stale-after <duration>', 'report in-progress streams older than this', '24h')
      .option('--parallel <n>', 'chunks fetched ahead', '4')
      .option('--no-progress', 'no progress line on a terminal')
      .option('--json', 'one entry per problem, for monitors'),
  ).action(async (target: string, dataset: string | undefined, o: TargetOptions & VerifyCliOptions) => {
    const sample = sampleLimit(o);
    if (o.seed !== undefined && !sample) throw new UsageError('--seed goes with --sample or --max-bytes');
    const seed = o.seed === undefined ? undefined : Number(o.seed);
    if (seed !== undefined && (!Number.isInteger(seed) || seed < 0)) throw new UsageError(`invalid --seed: ${o.seed}`);
    const staleAfterMs = parseDuration(o.staleAfter, '--stale-after');
    const parallel = positiveInt(o.parallel, '--parallel');
    const backend = await open(target, o);
    const pool = new ChunkPool();
    try {
      const report = await verifyArchive({ backend, pool, log: getLog(), dataset, deep: Boolean(o.deep), sample, seed, parallel, staleAfterMs, progress: o.progress });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatVerifyReport(report));
      if (report.problems.length > 0) outcome.exitCode = 3;
    } finally {
      await pool.close();
      await backend.close();
    }
  });

  registerPrune(program, { addTargetOptions, open, getLog });
  registerRun(program, {
    addTargetOptions,
    open,
    getLog,
    setExitCode: (code) => (outcome.exitCode = code),
    zfsCommand: () => program.opts<GlobalOptions>().zfsCmd,
  });
  return program;
}

interface VerifyCliOptions {
  deep?: boolean;
  sample?: string;
  maxBytes?: string;
  seed?: string;
  staleAfter: string;
  parallel: string;
  progress: boolean;
  json?: boolean;
}

function sampleLimit(o: VerifyCliOptions): SampleLimit | undefined {
  if (o.sample !== undefined && o.maxBytes !== undefined) throw new UsageError('--sample and --max-bytes exclude each other');
  if (o.sample !== undefined) {
    const percent = Number(o.sample.replace(/%$/, ''));
    if (!(percent > 0 && percent <= 100)) throw new UsageError(`invalid --sample: ${JSON.stringify(o.sample)} (expected a percentage such as 5%)`);
    return { percent };
  }
  if (o.maxBytes !== undefined) return { maxBytes: parseSize(o.maxBytes, '--max-bytes') };
  return undefined;
}

interface RestoreCliOptions {
  from: string;
  into?: string;
  output?: string;
  dryRun?: boolean;
  force?: boolean;
  resumable?: boolean;
  mount: boolean;
  parallel: string;
  progress: boolean;
  json?: boolean;
}

export async function main(argv: string[]): Promise<number> {
  let log: Logger | undefined;
  const outcome: Outcome = { exitCode: 0 };
  const program = buildProgram(() => {
    const g = program.opts<GlobalOptions>();
    log ??= createLogger({ level: g.logLevel, json: g.logJson, file: g.logFile });
    return log;
  }, outcome);
  program.exitOverride();
  program.configureOutput({ writeErr: (text) => process.stderr.write(text) });
  try {
    await program.parseAsync(argv);
    return outcome.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`zfs-offsite: error: ${oneLineError(err)}\n`);
    return exitCodeFor(err);
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`zfs-offsite: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
