import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { peekStreamStart, type StreamStart, type StreamSummary } from '../stream/validator.js';
import { StreamFormatError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { BufferPool, Semaphore } from '../util/semaphore.js';
import { TOOL_VERSION } from '../util/version.js';
import { type ChunkPool, frameBound } from './chunk-pool.js';
import { readChunks, type RawChunk } from './chunker.js';
import { chunkName, JOURNAL_NAME, MANIFEST_NAME, makeStreamId, splitSnapshotName, streamPrefix, SUMS_NAME } from './keys.js';
import { buildManifest } from './manifest-builder.js';
import { StreamCheck } from './stream-check.js';
import { type Manifest, type ManifestChunk, serializeManifest, sha256sums } from './manifest.js';

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
}

export interface ArchiveWriteOptions {
  backend: Backend;
  input: Readable;
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
  /** Called once the stream is identified; return false to stop (e.g. already archived). */
  onIdentified?(identity: StreamIdentity): Promise<boolean>;
  /** Name of the from-snapshot for the manifest ('' when unknown). */
  fromName?(fromguid: bigint, dataset: string): Promise<string>;
  /** Last check before commit (e.g. `zfs send` exit status, GUIDs against `zfs get guid`). Throw to abort. */
  beforeCommit?(summary: StreamSummary): Promise<void>;
  onProgress?(progress: WriteProgress): void;
}

export type ArchiveWriteResult =
  | { status: 'archived'; identity: StreamIdentity; manifest: Manifest }
  | { status: 'stopped'; identity: StreamIdentity };

/**
 * The send data path (design.md): input → fixed-size chunks → (validator worker, in order)
 * + (chunk workers: zstd frame, SHA-256 raw and stored) → bounded uploads → SHA256SUMS →
 * manifest.json LAST. Any failure before the commit deletes what this run stored.
 */
export async function writeArchiveStream(opts: ArchiveWriteOptions): Promise<ArchiveWriteResult> {
  const run = new StreamWriteRun(opts);
  return run.execute();
}

class StreamWriteRun {
  private readonly startedAt = new Date();
  private readonly chunks: ManifestChunk[] = [];
  private readonly storedKeys: string[] = [];
  private readonly progress: WriteProgress = { rawBytes: 0, storedBytes: 0, chunksStored: 0 };
  private identity?: StreamIdentity;
  private failure?: Error;

  constructor(private readonly o: ArchiveWriteOptions) {}

  async execute(): Promise<ArchiveWriteResult> {
    const check = new StreamCheck();
    // Chunks between "read" and "stored" (compressed bytes waiting for an upload slot count too).
    const inFlight = new Semaphore(this.o.pool.size + this.o.parallel);
    const uploads = new Semaphore(this.o.parallel);
    const buffers = new BufferPool(
      Array.from({ length: this.o.pool.size + 1 }, () => new SharedArrayBuffer(this.o.chunkSize)),
    );
    // Compressed frames: one per worker being written, one per upload in flight. Reused, so the
    // memory of a stream of any size is these two pools.
    const frames = new BufferPool(
      Array.from({ length: this.o.pool.size + this.o.parallel }, () => new SharedArrayBuffer(frameBound(this.o.chunkSize))),
    );
    const tasks: Promise<void>[] = [];
    try {
      for await (const chunk of readChunks(this.o.input, buffers, this.o.chunkSize)) {
        this.progress.rawBytes += chunk.length;
        if (chunk.index === 0 && !(await this.identify(chunk))) {
          buffers.give(chunk.buffer);
          this.o.input.destroy();
          return { status: 'stopped', identity: this.identity! };
        }
        await inFlight.acquire();
        const task = this.processChunk(chunk, check, buffers, frames, inFlight, uploads);
        task.catch((err: Error) => this.fail(err));
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
      return { status: 'archived', identity: this.identity!, manifest };
    } catch (err) {
      this.o.input.destroy();
      await Promise.allSettled(tasks);
      await this.discard();
      throw asInputError(err, this.progress.rawBytes);
    } finally {
      await check.close();
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
  }

  /** Names the stream from its first bytes and writes the in-progress journal. */
  private async identify(chunk: RawChunk): Promise<boolean> {
    const head = new Uint8Array(chunk.buffer, 0, chunk.length);
    const start = peekStreamStart(head);
    if (!start) {
      throw new StreamFormatError(
        chunk.length < this.o.chunkSize ? 'stream ends before its first record is complete' : 'stream header is larger than one chunk; use a larger --chunk-size',
        chunk.length,
      );
    }
    const top = splitSnapshotName(start.toname);
    const dataset = this.o.dataset ?? top.dataset;
    const kind = start.first.fromguid === 0n ? 'full' : 'incr';
    const streamId = makeStreamId(start.first.creationTime, kind, top.snapshot, start.first.toguid);
    this.identity = { dataset, streamId, prefix: streamPrefix(dataset, streamId), start };
    if (this.o.onIdentified && !(await this.o.onIdentified(this.identity))) return false;
    const journal = { streamId, dataset, status: 'in-progress', host: hostname(), pid: process.pid, startedAt: this.startedAt.toISOString() };
    await this.o.backend.put(this.identity.prefix + JOURNAL_NAME, Buffer.from(JSON.stringify(journal, null, 2)));
    this.o.log.info({ dataset, streamId, target: this.o.backend.location }, 'archiving stream');
    return true;
  }

  private async processChunk(
    chunk: RawChunk,
    check: StreamCheck,
    buffers: BufferPool<SharedArrayBuffer>,
    frames: BufferPool<SharedArrayBuffer>,
    inFlight: Semaphore,
    uploads: Semaphore,
  ): Promise<void> {
    const out = await frames.take();
    try {
      const checked = check.feed(chunk.buffer, 0, chunk.length);
      const compressed = this.o.pool.compress({ buffer: chunk.buffer, offset: 0, length: chunk.length, level: this.o.level, out });
      // The raw buffer is reused only after both the validator and the compressor are done with it.
      const settled = await Promise.allSettled([checked, compressed]);
      buffers.give(chunk.buffer);
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      const packed = await compressed;
      if (this.failure) return;
      const frame = Buffer.from(out, 0, packed.length);
      const key = this.identity!.prefix + chunkName(chunk.index);
      this.storedKeys.push(key);
      await uploads.acquire();
      let stored;
      try {
        await this.o.backend.put(key, frame, frame.length);
        stored = await this.o.backend.head(key);
      } finally {
        uploads.release();
      }
      if (stored.size !== frame.length) {
        throw new Error(`${this.o.backend.location}/${key}: stored ${stored.size} bytes, expected ${frame.length}`);
      }
      this.chunks[chunk.index] = {
        index: chunk.index,
        key: chunkName(chunk.index),
        rawSize: chunk.length,
        storedSize: frame.length,
        rawSha256: packed.rawSha256,
        storedSha256: packed.storedSha256,
        level: packed.level,
      };
      this.progress.storedBytes += frame.length;
      this.progress.chunksStored++;
      this.o.onProgress?.({ ...this.progress });
    } finally {
      frames.give(out);
      inFlight.release();
    }
  }

  private async commit(summary: StreamSummary, sha256: string): Promise<Manifest> {
    const identity = this.identity!;
    if (summary.totalBytes !== this.progress.rawBytes) {
      throw new Error(`validator saw ${summary.totalBytes} bytes but ${this.progress.rawBytes} were read`);
    }
    const first = summary.substreams[0];
    const fromName = first && first.fromguid !== 0n && this.o.fromName ? await this.o.fromName(first.fromguid, identity.dataset) : '';
    const manifest = buildManifest({
      identity,
      summary,
      sha256,
      chunks: this.chunks,
      chunkSize: this.o.chunkSize,
      level: this.o.level,
      sendArgs: this.o.sendArgs,
      zfsVersion: this.o.zfsVersion,
      fromName,
      startedAt: this.startedAt,
      toolVersion: TOOL_VERSION,
    });
    await this.o.backend.put(identity.prefix + SUMS_NAME, sha256sums(this.chunks));
    await this.o.backend.put(identity.prefix + MANIFEST_NAME, serializeManifest(manifest));
    await this.o.backend.delete([identity.prefix + JOURNAL_NAME]);
    this.o.log.info({ dataset: identity.dataset, streamId: identity.streamId, rawBytes: manifest.rawBytes, storedBytes: manifest.storedBytes }, 'stream committed');
    return manifest;
  }

  /** Best-effort removal of everything this run stored: nothing half-written stays behind. */
  private async discard(): Promise<void> {
    if (!this.identity) return;
    const keys = [...this.storedKeys, this.identity.prefix + JOURNAL_NAME];
    try {
      await this.o.backend.delete(keys);
    } catch (err) {
      if (!isNotFound(err)) this.o.log.warn({ err: (err as Error).message, prefix: this.identity.prefix }, 'could not remove the partial stream');
    }
  }
}

/** Input that is not a ZFS stream at all (empty, bad magic at offset 0) is bad usage: exit 2. */
function asInputError(err: unknown, bytesRead: number): unknown {
  if (err instanceof StreamFormatError && err.offset === 0 && /magic/i.test(err.reason)) {
    return new UsageError(`input is not a ZFS send stream (${err.reason})`);
  }
  if (err instanceof StreamFormatError && bytesRead < 312 && err.offset <= 312) {
    return new UsageError(`input is not a ZFS send stream (only ${bytesRead} bytes)`);
  }
  return err;
}
