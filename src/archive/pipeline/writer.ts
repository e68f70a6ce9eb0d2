import { createHash } from 'node:crypto';
import type { Backend, ObjectInfo, ObjectRetention } from '../../storage/backend.js';
import { putWhole } from '../../storage/bodies.js';
import { peekStreamStart, type StreamStart, type StreamSummary } from '../../stream/validator.js';
import { errorMessage, OperationalError, StreamFormatError, UsageError } from '../../util/errors.js';
import { interruptionOf } from '../../util/interrupted.js';
import type { Logger } from '../../util/logger.js';
import { Semaphore } from '../../util/semaphore.js';
import { TOOL_VERSION } from '../../util/version.js';
import type { ByteSource } from '../../util/byte-source.js';
import { type ChunkPool, type CompressResult, frameBound } from './chunk-pool.js';
import { type Timed, UploadShape } from './upload-shape.js';
import { readChunks, type RawChunk } from './chunker.js';
import { ChunkTable } from '../format/chunk-table.js';
import { type JournalChunk, ResumeJournal } from '../format/journal.js';
import { attachmentKey, chunkName, JOURNAL_NAME, MANIFEST_NAME, makeStreamId, splitSnapshotName, streamPrefix, SUMS_NAME } from '../format/keys.js';
import { buildManifest } from '../format/manifest-builder.js';
import { type Manifest, type ManifestAttachment, manifestPieces, sha256sumsPieces } from '../format/manifest.js';
import { deleteOrLeave } from '../leftovers.js';
import { SharedBufferPool } from './shared-buffer-pool.js';
import { StreamCheck } from './stream-check.js';
import type { StoredProof } from '../format/stored-proof.js';

export const MIN_CHUNK_SIZE = 1024 * 1024;

export interface StreamIdentity {
  dataset: string;
  streamId: string;
  prefix: string;
  start: StreamStart;
}

export interface WriteProgress {
  rawBytes: number;
  storedBytes: number;
  chunksStored: number;
  /** Stored bytes actually sent to the backend by this run (reused chunks are not). */
  uploadedBytes: number;
  chunksReused: number;
}

/** The stream is wrong (corrupt, or not the snapshot expected): what was stored of it is deleted. */
export class StreamRejectedError extends OperationalError {
  override name = 'StreamRejectedError';
}

/**
 * Just before the commit, a chunk object is not there as stored (deleted or replaced meanwhile,
 * e.g. by a prune or another host): nothing is committed, the rest is kept for a rerun.
 */
export class StreamIncompleteError extends OperationalError {
  override name = 'StreamIncompleteError';
}

export interface ArchiveWriteOptions {
  backend: Backend;
  input: ByteSource;
  /** Archive under this dataset name instead of the one in the stream. */
  dataset?: string;
  chunkSize: number;
  level: number;
  /** Chunk uploads in flight. */
  parallel: number;
  pool: ChunkPool;
  log: Logger;
  sendArgs: string[] | null;
  zfsVersion: string | null;
  /** No input for this long is an error (0 = wait forever). */
  stallMs?: number;
  /** Called once the stream is identified; return false to stop (e.g. already archived). */
  onIdentified?(identity: StreamIdentity): Promise<boolean>;
  /** Name of the from-snapshot for the manifest ('' when unknown). */
  fromName?(fromguid: bigint, dataset: string): Promise<string>;
  /**
   * Files kept with the stream (`--attach`, config `attach:`; jobs/attachments.ts): stored beside
   * the manifest after the chunks are proven, before SHA256SUMS and the manifest that lists them.
   */
  attachments?: readonly { name: string; body: Buffer }[];
  /** Last check before commit (e.g. `zfs send` exit status, GUIDs against `zfs get guid`, the lease). Throw to abort. */
  beforeCommit?(summary: StreamSummary): Promise<void>;
  onProgress?(progress: WriteProgress): void;
  /** GUID → `createtxg` of the stream's snapshots, best effort (zfs at hand): recorded in the manifest. */
  snapshotTxgs?(summary: StreamSummary): Promise<ReadonlyMap<string, string>>;
  /**
   * Aborted with an InterruptedError (Ctrl-C, SIGTERM: src/cli/interrupt.ts): reading stops,
   * uploads not started are given up, those under way finish and are journaled, the journal is
   * saved, and the run fails with the InterruptedError saying how many chunks the journal lists.
   */
  signal?: AbortSignal;
  /**
   * Object Lock: every chunk, SHA256SUMS and the manifest are written with the retention this
   * gives at the time of its put (docs/object-lock.md): "retained for D" counts from each write,
   * so an upload that outlasts D never sends a date already past.
   */
  retention?: () => ObjectRetention;
}

export type ArchiveWriteResult = { status: 'archived'; identity: StreamIdentity; manifest: Manifest; progress: WriteProgress } | { status: 'stopped'; identity: StreamIdentity };

/**
 * The write path (docs/architecture.md, "Write path: put, send, run"): input → fixed-size chunks → (validator worker, in order)
 * + (chunk workers: zstd frame, SHA-256 raw and stored) → bounded uploads → SHA256SUMS →
 * manifest.json LAST. A corrupt stream is deleted; an interrupted one (truncated input,
 * failed zfs send, storage failure, crash) keeps its journal and chunks for a resume.
 */
export async function writeArchiveStream(opts: ArchiveWriteOptions): Promise<ArchiveWriteResult> {
  return new StreamWriteRun(opts).execute();
}

class StreamWriteRun {
  private readonly startedAt = new Date();
  /** The stored chunks, compact (≈ 76 bytes each: format/chunk-table.ts), whatever order they finish in. */
  private readonly chunks = new ChunkTable();
  private readonly progress: WriteProgress = { rawBytes: 0, storedBytes: 0, chunksStored: 0, uploadedBytes: 0, chunksReused: 0 };
  private identity?: StreamIdentity;
  private journal?: ResumeJournal;
  private failure?: Error;
  /** The first chunk (so far) where the stream differs from an interrupted run's journal. */
  private divergedAt = Infinity;
  private readonly inFlight: Semaphore;
  private readonly uploads: Semaphore;
  private readonly buffers: SharedBufferPool;
  private readonly frames: SharedBufferPool;
  /** Whole chunks or parallel parts, whichever is faster to this target (upload-shape.ts). */
  private readonly shape: UploadShape;

  constructor(private readonly o: ArchiveWriteOptions) {
    // Chunks between "read" and "stored", each holding one frame buffer from compression to the
    // end of its upload. One more than the busier stage keeps both stages busy: when uploads are
    // the bottleneck the extra chunk is compressed and waiting; when compression is, every
    // worker has a chunk. More chunks in flight bought no speed in `npm run bench`, only memory
    // (peak RSS ≈ 115 MiB + 6 × chunk size).
    const depth = Math.max(o.pool.size, o.parallel) + 1;
    this.inFlight = new Semaphore(depth);
    this.uploads = new Semaphore(o.parallel);
    // Raw chunks: one per worker and one being filled from the input.
    this.buffers = new SharedBufferPool(o.chunkSize, o.pool.size + 1);
    this.frames = new SharedBufferPool(frameBound(o.chunkSize), depth);
    this.shape = new UploadShape(o.backend.partUploadBytes);
  }

  async execute(): Promise<ArchiveWriteResult> {
    const check = new StreamCheck();
    const tasks: Promise<void>[] = [];
    const onAbort = (): void => {
      this.failure ??= this.o.signal!.reason as Error;
      this.o.input.destroy(this.o.signal!.reason as Error);
    };
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      this.o.signal?.throwIfAborted();
      for await (const chunk of readChunks(this.o.input, this.buffers, this.o.chunkSize, this.o.stallMs)) {
        this.progress.rawBytes += chunk.length;
        if (chunk.index === 0 && !(await this.identify(chunk))) {
          this.buffers.release(chunk.buffer);
          this.o.input.destroy();
          return { status: 'stopped', identity: this.identity! };
        }
        await this.inFlight.acquire();
        const task = this.processChunk(chunk, check);
        task.catch((err: Error) => (this.failure ??= err));
        tasks.push(task);
        if (this.failure ?? check.failure) break;
      }
      if (!this.identity && !this.failure) {
        throw new UsageError('no input: expected a ZFS send stream (e.g. `zfs send pool/fs@snap | zfs-offsite put …`)');
      }
      await Promise.allSettled(tasks);
      if (this.failure ?? check.failure) throw this.failure ?? check.failure;
      const { summary, sha256 } = await check.finish();
      await this.o.beforeCommit?.(summary);
      const manifest = await this.commit(summary, sha256);
      return { status: 'archived', identity: this.identity!, manifest, progress: { ...this.progress } };
    } catch (err) {
      this.o.input.destroy();
      await Promise.allSettled(tasks);
      // Whatever broke first (a zfs send killed by the same Ctrl-C ends its stream early), an
      // interrupted run is kept for a resume and says what its journal lists.
      const interrupted = interruptionOf(this.o.signal);
      const settled = await this.settleFailure(interrupted ?? asInputError(err, this.progress.rawBytes));
      throw interrupted ? interrupted.withChunks(this.journal?.size ?? 0) : settled;
    } finally {
      this.o.signal?.removeEventListener('abort', onAbort);
      await check.close();
    }
  }

  /** Names the stream from its first bytes and opens (or resumes) its journal. */
  private async identify(chunk: RawChunk): Promise<boolean> {
    const start = peekStreamStart(new Uint8Array(chunk.buffer, 0, chunk.length));
    if (!start) {
      const tooBig = chunk.length === this.o.chunkSize;
      if (tooBig) throw new StreamFormatError('corrupt', 'stream header is larger than one chunk; use a larger --chunk-size', chunk.length);
      throw new StreamFormatError('truncated', 'stream ends before its first record is complete', chunk.length);
    }
    const top = splitSnapshotName(start.toname);
    const dataset = this.o.dataset ?? top.dataset;
    const kind = start.first.fromguid === 0n ? 'full' : 'incr';
    const streamId = makeStreamId(start.first.creationTime, kind, top.snapshot, start.first.toguid);
    this.identity = { dataset, streamId, prefix: streamPrefix(dataset, streamId), start };
    if (this.o.onIdentified && !(await this.o.onIdentified(this.identity))) return false;
    this.journal = await ResumeJournal.open(this.o.backend, { ...this.identity, chunkSize: this.o.chunkSize, sendArgs: this.o.sendArgs }, this.o.log);
    this.o.log.info({ dataset, streamId, target: this.o.backend.location }, 'archiving stream');
    return true;
  }

  private async processChunk(chunk: RawChunk, check: StreamCheck): Promise<void> {
    const out = await this.frames.acquire();
    let rawHeld = true;
    const releaseRaw = () => {
      if (rawHeld) this.buffers.release(chunk.buffer);
      rawHeld = false;
    };
    try {
      const previous = chunk.index < this.divergedAt ? this.journal!.reusable(chunk.index) : undefined;
      // Proven while the chunk is hashed: a stored object is reused only if it still holds the
      // frame uploaded (a chunk damaged in place keeps its size; stored-proof.ts).
      const proof = previous ? this.journal!.prove(previous).catch((err: unknown): StoredProof => ({ proven: false, why: `it could not be read back: ${errorMessage(err)}` })) : undefined;
      const checked = check.feed(chunk.buffer, 0, chunk.length);
      const compressed = this.compress(chunk, out, previous?.rawSha256);
      const settled = await Promise.allSettled([checked, compressed, ...(proof ? [proof] : [])]);
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      let packed = await compressed;
      if (this.failure) return;
      const proven = packed.length < 0 && previous ? await proof! : undefined;
      if (proven?.proven) {
        releaseRaw();
        this.chunks.set(chunk.index, previous!);
        this.progress.chunksReused++;
      } else {
        if (proven) {
          this.o.log.warn(
            { stream: this.identity!.streamId, chunk: previous!.key, why: proven.why },
            `stored chunk ${previous!.key} of the interrupted upload is damaged (${proven.why}): uploading it again`,
          );
          this.journal!.forget(chunk.index);
          packed = await this.compress(chunk, out, undefined);
        } else if (previous) {
          await this.diverge(chunk.index);
        }
        // Both the validator and the compressor are done with the raw buffer.
        releaseRaw();
        const stored = await this.upload(chunk, out, packed);
        await this.journal!.record(stored);
        this.chunks.set(chunk.index, stored);
        this.progress.uploadedBytes += stored.storedSize;
      }
      this.progress.storedBytes += this.chunks.storedSize(chunk.index);
      this.progress.chunksStored++;
      this.o.onProgress?.({ ...this.progress });
    } finally {
      releaseRaw();
      this.frames.release(out);
      this.inFlight.release();
    }
  }

  /** zstd frame and SHA-256s of a chunk; skipped (length < 0) when its raw SHA-256 is `skipIfRawSha256`. */
  private compress(chunk: RawChunk, out: SharedArrayBuffer, skipIfRawSha256: string | undefined) {
    const { partBytes, done } = this.shape.next();
    return this.o.pool
      .compress({ buffer: chunk.buffer, offset: 0, length: chunk.length, level: this.o.level, out, skipIfRawSha256, ...(partBytes ? { partBytes } : {}) })
      .then((r) => ({ ...r, timed: done }));
  }

  /**
   * The regenerated stream differs from the interrupted run's at this chunk: nothing of that run
   * is trusted from here on. Chunks finish out of order, so a lower index may still come.
   */
  private async diverge(index: number): Promise<void> {
    if (index >= this.divergedAt) return;
    this.divergedAt = index;
    this.o.log.warn({ stream: this.identity!.streamId, chunk: index }, `the stream differs from the interrupted upload at chunk ${index}: its chunks from there on are discarded and uploaded anew`);
    await this.journal!.forgetFrom(index);
  }

  /** Stores one frame and checks it arrived whole ("stored and checked" before any commit). */
  private async upload(chunk: RawChunk, out: SharedArrayBuffer, packed: CompressResult & { timed?: Timed }): Promise<JournalChunk> {
    const frame = Buffer.from(out, 0, packed.length);
    const key = this.identity!.prefix + chunkName(chunk.index);
    let stored: ObjectInfo;
    await this.uploads.acquire();
    try {
      this.o.signal?.throwIfAborted();
      const started = performance.now();
      // Only chunk data pays --bwlimit; an interruption gives up a put still waiting for its turn.
      const put = await this.o.backend.put(key, frame, frame.length, {
        sha256: packed.storedSha256,
        chunkData: true,
        ...(packed.partSha256s ? { partSha256s: packed.partSha256s } : {}),
        ...(this.o.signal ? { signal: this.o.signal } : {}),
        ...(this.o.retention ? { retention: this.o.retention() } : {}),
      });
      packed.timed?.(frame.length, started, performance.now());
      // An ETag in the answer to a put the server checked against our SHA-256 (storage/backend.ts
      // PutResult) already proves these bytes are stored: no HEAD (issue 17: one request a chunk
      // less). Otherwise the HEAD is the proof of the size, and gives the ETag where there is one.
      stored = put?.etag !== undefined ? { key, size: frame.length, etag: put.etag } : await this.o.backend.head(key);
      if (stored.size !== frame.length) throw new OperationalError(`${this.o.backend.location}/${key}: stored ${stored.size} bytes, expected ${frame.length}`);
    } finally {
      this.uploads.release();
    }
    // The ETag of the PutObject that the server checked against our SHA-256, for the journal:
    // a resume compares it with what the server then says (stored-proof.ts).
    return {
      index: chunk.index,
      key: chunkName(chunk.index),
      rawSize: chunk.length,
      storedSize: frame.length,
      rawSha256: packed.rawSha256,
      storedSha256: packed.storedSha256,
      level: packed.level,
      ...(stored.etag !== undefined ? { etag: stored.etag } : {}),
    };
  }

  private async commit(summary: StreamSummary, sha256: string): Promise<Manifest> {
    const identity = this.identity!;
    if (summary.totalBytes !== this.progress.rawBytes) {
      throw new OperationalError(`validator saw ${summary.totalBytes} bytes but ${this.progress.rawBytes} were read`);
    }
    const first = summary.substreams[0];
    const fromName = first && first.fromguid !== 0n && this.o.fromName ? await this.o.fromName(first.fromguid, identity.dataset) : '';
    const manifest = buildManifest({
      identity,
      summary,
      sha256,
      chunks: this.chunks.views(),
      chunkSize: this.o.chunkSize,
      level: this.o.level,
      sendArgs: this.o.sendArgs,
      zfsVersion: this.o.zfsVersion,
      fromName,
      startedAt: this.startedAt,
      toolVersion: TOOL_VERSION,
      txgs: await this.o.snapshotTxgs?.(summary).catch(() => undefined),
      attachments: (this.o.attachments ?? []).map(describeAttachment),
    });
    await this.journal!.flush();
    const strays = await this.proveComplete(manifest);
    // Append-only credentials (archive/leftovers.ts): what cannot be deleted is left, harmless.
    await deleteOrLeave(this.o.backend, strays, this.o.log, `${strays.length} object(s) of an interrupted longer upload of ${identity.streamId}`);
    for (const a of this.o.attachments ?? []) await putWhole(this.o.backend, identity.prefix + attachmentKey(a.name), a.body, this.o.retention?.());
    await putWhole(this.o.backend, identity.prefix + SUMS_NAME, sha256sumsPieces(manifest.chunks), this.o.retention?.());
    await putWhole(this.o.backend, identity.prefix + MANIFEST_NAME, manifestPieces(manifest), this.o.retention?.());
    await deleteOrLeave(this.o.backend, [identity.prefix + JOURNAL_NAME], this.o.log, `the journal of ${identity.streamId} (committed)`);
    this.o.log.info({ dataset: identity.dataset, streamId: identity.streamId, rawBytes: manifest.rawBytes, storedBytes: manifest.storedBytes }, 'stream committed');
    return manifest;
  }

  /**
   * ONE listing of the stream, right before the manifest is written: every chunk object is
   * there with its size. A chunk deleted or rewritten while the stream was written — by a
   * prune that took it for abandoned, or another host — fails the put: a manifest over missing
   * chunks would be a backup that cannot be restored. (ETags are not compared here: a server
   * whose listing and HEAD disagreed would fail every commit; a resume only re-uploads then.)
   * Returns the objects of an interrupted longer run that this stream does not use: they must
   * not outlive the commit.
   */
  private async proveComplete(manifest: Manifest): Promise<string[]> {
    const prefix = this.identity!.prefix;
    const found = new Map<string, ObjectInfo>();
    await this.o.backend.list(prefix, (o) => found.set(o.key.slice(prefix.length), o));
    const problems: string[] = [];
    for (const c of manifest.chunks) {
      const o = found.get(c.key);
      if (!o) problems.push(`${c.key} is missing`);
      else if (o.size !== c.storedSize) problems.push(`${c.key} has ${o.size} bytes, ${c.storedSize} were stored`);
    }
    if (problems.length > 0) {
      const shown = problems.slice(0, 3).join(', ') + (problems.length > 3 ? ` and ${problems.length - 3} more` : '');
      throw new StreamIncompleteError(
        `cannot commit ${this.o.backend.location}/${prefix}: chunk ${shown} (removed or changed while the stream was written?); nothing was committed, run it again to upload what is missing`,
        {
          context: { dataset: this.identity!.dataset, stream: this.identity!.streamId, object: `${this.o.backend.location}/${prefix}` },
        },
      );
    }
    const wanted = new Set([JOURNAL_NAME, MANIFEST_NAME, ...manifest.chunks.map((c) => c.key)]);
    return [...found.keys()].filter((k) => !wanted.has(k)).map((k) => prefix + k);
  }

  /**
   * A rejected stream (corrupt, wrong snapshot) is deleted; an interrupted one keeps its journal
   * and chunks so the next run resumes. Either way nothing is committed.
   */
  private async settleFailure(err: unknown): Promise<unknown> {
    if (!this.identity || !this.journal) return err;
    // A stream that merely ends early (an interrupted `zfs send`) is resumable; any other defect is not.
    const corrupt = err instanceof StreamRejectedError || (err instanceof StreamFormatError && err.kind !== 'truncated');
    await this.journal.flush().catch(() => undefined);
    if (!corrupt) {
      this.o.log.info({ stream: this.identity.streamId }, 'nothing committed; the chunks stored so far are kept and a rerun of the same stream resumes from them');
      return err;
    }
    try {
      const keys: string[] = [];
      await this.o.backend.list(this.identity.prefix, (o) => keys.push(o.key));
      await this.o.backend.delete(keys);
    } catch (cleanupErr) {
      this.o.log.warn({ err: (cleanupErr as Error).message, prefix: this.identity.prefix }, 'could not remove the rejected stream');
    }
    return err;
  }
}

function describeAttachment(a: { name: string; body: Buffer }): ManifestAttachment {
  return { name: a.name, key: attachmentKey(a.name), size: a.body.length, sha256: createHash('sha256').update(a.body).digest('hex') };
}

/** Input that is not a ZFS stream at all (empty, bad magic at offset 0) is bad usage: exit 2. */
function asInputError(err: unknown, bytesRead: number): unknown {
  if (err instanceof StreamFormatError && err.offset === 0 && err.kind === 'bad-magic') {
    return new UsageError(`input is not a ZFS send stream (${err.reason})`, { kind: 'not-a-stream', cause: err });
  }
  if (err instanceof StreamFormatError && bytesRead < 312 && err.offset <= 312) {
    return new UsageError(`input is not a ZFS send stream (only ${bytesRead} bytes)`, { kind: 'not-a-stream', cause: err });
  }
  return err;
}
