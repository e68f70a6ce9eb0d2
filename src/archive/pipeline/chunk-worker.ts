/**
 * Worker thread for the CPU-heavy chunk work, so every core works:
 * - compress: a raw chunk (shared memory) → an independent zstd frame with the content
 *   checksum, written into a shared output buffer; SHA-256 of both;
 * - decompress: a stored object in shared memory → raw bytes in shared memory (zstd checks its
 *   frame checksum); SHA-256 of both.
 * Buffers are shared and reused by the caller, never copied or allocated per chunk: at these
 * sizes copies and page faults cost more than the hashing.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import { evenParts, MAX_PARTS_PER_OBJECT } from '../../storage/backend.js';
import { errorMessage, toWire } from '../../util/errors.js';
import { type ChunkJob, ChunkJobError, type ChunkReply } from './chunk-pool.js';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** zstd level used for chunks whose sample does not compress: fastest that still makes a frame. */
const INCOMPRESSIBLE_LEVEL = -7;
const SAMPLE_BYTES = 256 * 1024;
/** A sample that saves less than this fraction is treated as incompressible (raw encrypted data). */
const MIN_SAVING = 0.02;

const contexts = new Map<number, import('zstd-napi/binding.js').CCtx>();
function context(level: number): import('zstd-napi/binding.js').CCtx {
  let c = contexts.get(level);
  if (!c) {
    c = new zstd.CCtx();
    c.setParameter(zstd.CParameter.compressionLevel, level);
    c.setParameter(zstd.CParameter.checksumFlag, 1);
    c.setParameter(zstd.CParameter.contentSizeFlag, 1);
    contexts.set(level, c);
  }
  return c;
}
const dctx = new zstd.DCtx();
const sampleOut = Buffer.allocUnsafeSlow(zstd.compressBound(SAMPLE_BYTES));

function chooseLevel(raw: Uint8Array, level: number): number {
  if (raw.length < SAMPLE_BYTES * 4) return level;
  // Sample the middle: stream headers at the start compress well even in raw sends.
  const start = Math.floor(raw.length / 2);
  const packed = context(level).compress2(sampleOut, raw.subarray(start, start + SAMPLE_BYTES));
  return packed > SAMPLE_BYTES * (1 - MIN_SAVING) ? INCOMPRESSIBLE_LEVEL : level;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function run(job: ChunkJob): ChunkReply {
  if (job.op === 'compress') {
    const raw = new Uint8Array(job.buffer, job.offset, job.length);
    const rawSha256 = sha256(raw);
    // Resuming: the interrupted run already stored exactly these bytes.
    if (rawSha256 === job.skipIfRawSha256) return { id: job.id, length: -1, rawSha256, storedSha256: '', level: 0 };
    const level = chooseLevel(raw, job.level);
    const out = new Uint8Array(job.out);
    const length = context(level).compress2(out, raw);
    const frame = out.subarray(0, length);
    // Part hashes cost one more pass over the frame, here off the main thread; they let each
    // part of a parallel upload be checked by the server as the whole frame would be.
    const parts = job.partBytes ? evenParts(length, job.partBytes, MAX_PARTS_PER_OBJECT) : [];
    const partSha256s = parts.length > 1 ? parts.map((p) => sha256(frame.subarray(p.offset, p.offset + p.length))) : undefined;
    return { id: job.id, length, rawSha256, storedSha256: sha256(frame), level, ...(partSha256s ? { partSha256s } : {}) };
  }
  const stored = new Uint8Array(job.stored, job.storedOffset, job.storedLength);
  const storedSha256 = sha256(stored);
  if (storedSha256 !== job.expectStoredSha256) {
    // Never decompress bytes that are not the ones stored: zstd errors would hide the real cause.
    return { id: job.id, length: 0, rawSha256: '', storedSha256, level: 0 };
  }
  const size = zstd.getFrameContentSize(stored);
  const capacity = Math.min(job.maxRawSize, job.raw.byteLength);
  if (size === null || size > capacity) throw new ChunkJobError('frame-invalid', `frame declares ${size ?? 'no'} content size (expected at most ${capacity})`);
  const raw = new Uint8Array(job.raw, 0, size);
  const length = dctx.decompress(raw, stored);
  return { id: job.id, length, rawSha256: sha256(raw.subarray(0, length)), storedSha256, level: 0 };
}

parentPort!.on('message', (job: ChunkJob) => {
  try {
    parentPort!.postMessage(run(job));
  } catch (err) {
    // zstd's own errors mean the same as ours here: these bytes are no frame we can use.
    const typed = err instanceof ChunkJobError ? err : new ChunkJobError(job.op === 'decompress' ? 'frame-invalid' : 'compress-failed', errorMessage(err));
    parentPort!.postMessage({ id: job.id, error: toWire(typed) });
  }
});
