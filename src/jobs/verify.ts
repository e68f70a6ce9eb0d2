import { createHash, randomInt } from 'node:crypto';
import { type Problem, quickAudit } from '../archive/plan/audit.js';
import type { ChunkPool } from '../archive/pipeline/chunk-pool.js';
import { streamChunks } from '../archive/pipeline/reader.js';
import type { Manifest } from '../archive/format/manifest.js';
import { Repository } from '../archive/repository.js';
import { ChunkFetcher, ChunkIntegrityError, type ChunkRef } from '../archive/pipeline/chunk-fetcher.js';
import { type SampleLimit, sampleChunks } from '../archive/plan/sampling.js';
import type { Backend } from '../storage/backend.js';
import { retentionProblems } from './object-lock.js';
import { StreamValidator } from '../stream/validator.js';
import { errorMessage, StreamFormatError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { Progress } from '../util/progress.js';

export interface VerifyOptions {
  backend: Backend;
  pool: ChunkPool;
  log: Logger;
  dataset?: string;
  deep: boolean;
  sample?: SampleLimit;
  seed?: number;
  parallel: number;
  staleAfterMs: number;
  progress: boolean;
  /**
   * Store each dataset's result in the archive (format/status-record.ts) for `status` to show;
   * best effort: a target that refuses the write (read-only credentials) is a warning.
   */
  record?: boolean;
}

export interface DatasetReport {
  dataset: string;
  streams: number;
  chunks: number;
  chunksChecked: number;
  bytesChecked: number;
  problems: number;
}

export interface VerifyReport {
  target: string;
  mode: 'quick' | 'deep' | 'sampled';
  seed?: number;
  datasets: DatasetReport[];
  problems: Problem[];
  /** Sampled runs: the chunk objects checked, so a monitor (or a rerun with --seed) can see which. */
  sampledObjects?: string[];
  seconds: number;
}

/** Audits the archive: quick (listing + manifests), deep (every byte) or sampled (a random share). */
export async function verifyArchive(o: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const repo = await Repository.open(o.backend);
  const mode = o.sample ? 'sampled' : o.deep ? 'deep' : 'quick';
  // Every listed manifest read and validated (a damaged one is that stream's problem), and SHA256SUMS;
  // a dataset named is checked with its children. SHA256SUMS is read for what it says of the
  // manifest's chunks, without its text (format/chunk-sums.ts: 38.5 MB at 500,000 chunks, issue 17). A quick verify reads neither for a stream whose
  // stream index entry the listing matches in full (Repository.listStreams, format/stream-index.ts).
  const { streams, loose, invalid, unsafe, nested } = await repo.listStreams(o.dataset, { sums: 'chunks', children: true, index: mode === 'quick' });
  if (o.dataset && streams.length === 0 && invalid.length === 0) throw await repo.unknownDataset(o.dataset);
  // Another archive below this one's root is not part of it (not verified, not orphan objects): said, not a problem.
  for (const root of nested) o.log.warn(`${repo.where(root.slice(0, -1))} is another archive (it has its own zfs-offsite.json): not part of this one, not verified here; verify it on its own`);
  const problems = quickAudit({ streams, loose: o.dataset ? [] : loose, invalid, unsafe, now: new Date(), staleAfterMs: o.staleAfterMs, location: repo.location });
  // On a bucket with Object Lock: streams retained for less time than a stream that needs them.
  problems.push(...(await retentionProblems(repo, streams)));
  const manifests = streams.flatMap((s) => (s.manifest ? [s.manifest] : []));
  const checked = new Map<Manifest, { chunks: number; bytes: number }>();
  const seed = o.sample ? (o.seed ?? randomInt(2 ** 31)) : undefined;
  let sampledObjects: string[] | undefined;
  if (mode !== 'quick') {
    const deep = new DeepCheck(o, repo, problems, checked, manifests);
    if (o.sample) {
      const sample = sampleChunks(manifests, o.sample, seed!);
      sampledObjects = sample.map((s) => repo.streamPrefix(s.manifest) + s.chunk.key);
      await deep.chunks(sample);
    } else {
      for (const m of manifests) {
        await deep.stream(m);
        await deep.attachments(m);
      }
    }
    deep.done();
  }
  const datasets = [...new Set([...streams.map((s) => s.dataset)])].sort().map((dataset) => {
    const mine = manifests.filter((m) => m.dataset === dataset);
    return {
      dataset,
      streams: streams.filter((s) => s.dataset === dataset).length,
      chunks: mine.reduce((n, m) => n + m.chunks.length, 0) + streams.reduce((n, s) => n + (s.dataset === dataset ? (s.indexed?.chunkCount ?? 0) : 0), 0),
      chunksChecked: mine.reduce((n, m) => n + (checked.get(m)?.chunks ?? 0), 0),
      bytesChecked: mine.reduce((n, m) => n + (checked.get(m)?.bytes ?? 0), 0),
      problems: problems.filter((p) => p.dataset === dataset).length,
    };
  });
  if (o.record) await recordResults(o, repo, mode, datasets);
  return { target: repo.location, mode, seed, datasets, problems, sampledObjects, seconds: (Date.now() - started) / 1000 };
}

/** verify --record: one status record per dataset verified (display only: `status`). */
async function recordResults(o: VerifyOptions, repo: Repository, mode: VerifyReport['mode'], datasets: DatasetReport[]): Promise<void> {
  const at = new Date().toISOString();
  for (const d of datasets) {
    const summary = `${mode}: ${d.problems} problem${d.problems === 1 ? '' : 's'}, ${d.streams} stream${d.streams === 1 ? '' : 's'}`;
    await repo.recordStatus({ kind: 'verify', dataset: d.dataset, at, ok: d.problems === 0, summary, mode, problems: d.problems }).catch((err: unknown) => {
      o.log.warn({ dataset: d.dataset, err: errorMessage(err) }, 'could not record the verify result in the archive');
    });
  }
}

/** Downloads and checks chunks; for whole streams also walks every ZFS record. */
class DeepCheck {
  private readonly progress: Progress;
  private readonly fetcher: ChunkFetcher;
  private readonly total: number;
  private done_ = 0;

  constructor(
    o: VerifyOptions,
    private readonly repo: Repository,
    private readonly problems: Problem[],
    private readonly checked: Map<Manifest, { chunks: number; bytes: number }>,
    manifests: Manifest[],
  ) {
    this.progress = new Progress(o.progress && Boolean(process.stderr.isTTY));
    this.fetcher = new ChunkFetcher({ backend: o.backend, pool: o.pool, parallel: o.parallel });
    this.total = manifests.reduce((n, m) => n + m.storedBytes, 0);
  }

  private ref(m: Manifest, index: number): ChunkRef {
    return { prefix: this.repo.streamPrefix(m), chunk: m.chunks[index]! };
  }

  private count(m: Manifest, index: number): void {
    const c = this.checked.get(m) ?? { chunks: 0, bytes: 0 };
    c.chunks++;
    c.bytes += m.chunks[index]!.storedSize;
    this.checked.set(m, c);
    this.done_ += m.chunks[index]!.storedSize;
    this.progress.update({ rawBytes: this.done_, totalBytes: this.total, label: 'verifying' });
  }

  private report(m: Manifest, err: unknown): void {
    if (!(err instanceof ChunkIntegrityError)) throw err;
    // The quick audit's listing has found a missing (or short) object already: once per object.
    if (this.problems.some((p) => p.kind === err.kind && p.object === err.object && p.stream === m.streamId)) return;
    this.problems.push({ kind: err.kind, dataset: m.dataset, stream: m.streamId, object: err.object, expected: err.expected, found: err.found, message: err.problem });
  }

  /** A sample: each chunk checked on its own (its bytes are not walked). */
  async chunks(sample: { manifest: Manifest; chunk: { index: number } }[]): Promise<void> {
    let k = 0;
    for await (const outcome of this.fetcher.inOrder(sample.map((s) => this.ref(s.manifest, s.chunk.index)))) {
      const { manifest, chunk } = sample[k++]!;
      this.count(manifest, chunk.index);
      if ('error' in outcome) this.report(manifest, outcome.error);
      else outcome.release();
    }
  }

  /** A whole stream in order: chunk checks, then every record, END checksums and the stream hash. */
  async stream(m: Manifest): Promise<void> {
    const validator = new StreamValidator();
    const hash = createHash('sha256');
    let walking = true;
    // The layout restore reads (reader.ts streamChunks): one way to read a stream.
    for await (const outcome of this.fetcher.inOrder(streamChunks(m).map((c) => c.ref))) {
      if ('error' in outcome) {
        this.report(m, outcome.error);
        walking = false; // the record walk cannot continue across missing bytes
      } else {
        // Both consume the bytes before returning, so the buffer can be reused right after.
        try {
          if (walking) {
            validator.push(outcome.raw);
            hash.update(outcome.raw);
          }
        } catch (err) {
          if (!(err instanceof StreamFormatError)) throw err;
          this.streamProblem(m, err.message);
          walking = false;
        } finally {
          outcome.release();
        }
      }
      this.count(m, outcome.ref.chunk.index);
    }
    if (!walking) return;
    try {
      const summary = validator.finish();
      const digest = hash.digest('hex');
      if (digest !== m.sha256) {
        this.problems.push({ kind: 'stream-hash-mismatch', dataset: m.dataset, stream: m.streamId, expected: m.sha256, found: digest, message: 'the whole-stream SHA-256 differs from the manifest' });
      }
      const guids = summary.substreams.map((s) => `${s.fromguid}>${s.toguid}`).join(',');
      const recorded = m.substreams.map((s) => `${s.fromguid}>${s.toguid}`).join(',');
      if (guids !== recorded) this.streamProblem(m, `the stream's snapshots (${guids}) are not the manifest's (${recorded})`);
    } catch (err) {
      if (!(err instanceof StreamFormatError)) throw err;
      this.streamProblem(m, err.message);
    }
  }

  /** Each attachment read and hashed (the quick audit has reported a missing one already). */
  async attachments(m: Manifest): Promise<void> {
    for (const a of m.attachments ?? []) {
      const read = await this.repo.readAttachment(m, a);
      if ('body' in read) continue;
      if (this.problems.some((p) => p.object === read.object && p.stream === m.streamId)) continue;
      const { kind, object, expected, found, message } = read;
      this.problems.push({ kind, dataset: m.dataset, stream: m.streamId, object, ...(expected === undefined ? {} : { expected }), ...(found === undefined ? {} : { found }), message });
    }
  }

  private streamProblem(m: Manifest, message: string): void {
    this.problems.push({ kind: 'stream-invalid', dataset: m.dataset, stream: m.streamId, message: `ZFS record walk: ${message}` });
  }

  done(): void {
    this.progress.done();
  }
}
