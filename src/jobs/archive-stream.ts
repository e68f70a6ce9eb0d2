import type { ByteSource } from '../util/byte-source.js';
import { ensureArchiveMarker, loadCatalog } from '../archive/catalog.js';
import type { ChunkPool } from '../archive/chunk-pool.js';
import { MANIFEST_NAME } from '../archive/keys.js';
import type { Manifest } from '../archive/manifest.js';
import { type StreamIdentity, writeArchiveStream } from '../archive/writer.js';
import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import type { StreamSummary } from '../stream/validator.js';
import type { Logger } from '../util/logger.js';
import { Progress } from '../util/progress.js';

export interface ArchiveSettings {
  chunkSize: number;
  level: number;
  parallel: number;
  progress: boolean;
  /** No input for this long is an error (a stalled zfs send); 0 = wait forever. */
  stallMs: number;
}

/**
 * 16 MiB: peak memory stays under 256 MiB (≈ 115 MiB + 6 chunks) and objects stay large enough
 * that per-request costs vanish (bench: 16 MiB and 64 MiB chunks upload at the same speed).
 */
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_LEVEL = 3;
export const DEFAULT_PARALLEL = 2;
export const DEFAULT_STALL_TIMEOUT = '15m';

export interface ArchiveStreamResult {
  status: 'archived' | 'already-archived';
  dataset: string;
  streamId: string;
  manifest?: Manifest;
  seconds: number;
  /** Stored bytes sent by this run, and chunks an interrupted run had stored already. */
  uploadedBytes: number;
  chunksReused: number;
}

export interface ArchiveStreamJob {
  backend: Backend;
  input: ByteSource;
  pool: ChunkPool;
  settings: ArchiveSettings;
  log: Logger;
  dataset?: string;
  sendArgs: string[] | null;
  zfsVersion: string | null;
  fromName?(fromguid: bigint, dataset: string): Promise<string>;
  beforeCommit?(summary: StreamSummary): Promise<void>;
}

/** Shared by `put` and `send`: one stream into the archive, refusing to archive twice. */
export async function archiveStream(job: ArchiveStreamJob): Promise<ArchiveStreamResult> {
  const started = Date.now();
  await job.backend.check();
  await ensureArchiveMarker(job.backend);
  const progress = new Progress(job.settings.progress && Boolean(process.stderr.isTTY));
  let alreadyArchived = false;
  try {
    const result = await writeArchiveStream({
      backend: job.backend,
      input: job.input,
      dataset: job.dataset,
      chunkSize: job.settings.chunkSize,
      level: job.settings.level,
      parallel: job.settings.parallel,
      stallMs: job.settings.stallMs,
      pool: job.pool,
      log: job.log,
      sendArgs: job.sendArgs,
      zfsVersion: job.zfsVersion,
      onIdentified: async (identity: StreamIdentity) => {
        alreadyArchived = await exists(job.backend, identity.prefix + MANIFEST_NAME);
        return !alreadyArchived;
      },
      fromName: job.fromName ?? ((guid, dataset) => fromNameInArchive(job.backend, guid, dataset)),
      beforeCommit: job.beforeCommit,
      onProgress: (p) => progress.update({ rawBytes: p.rawBytes, storedBytes: p.storedBytes, label: 'archiving' }),
    });
    const seconds = (Date.now() - started) / 1000;
    const { dataset, streamId } = result.identity;
    if (result.status === 'stopped') {
      return { status: alreadyArchived ? 'already-archived' : 'archived', dataset, streamId, seconds, uploadedBytes: 0, chunksReused: 0 };
    }
    const { uploadedBytes, chunksReused } = result.progress;
    return { status: 'archived', dataset, streamId, manifest: result.manifest, seconds, uploadedBytes, chunksReused };
  } finally {
    progress.done();
  }
}

async function exists(backend: Backend, key: string): Promise<boolean> {
  try {
    await backend.head(key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** A piped stream carries only the base GUID; its name comes from the archived stream that leads to it. */
async function fromNameInArchive(backend: Backend, guid: bigint, dataset: string): Promise<string> {
  const { streams } = await loadCatalog(backend, dataset);
  for (const m of streams) {
    for (const s of m.substreams) if (s.toguid === guid.toString()) return s.toname.slice(s.toname.indexOf('@') + 1);
  }
  return '';
}
