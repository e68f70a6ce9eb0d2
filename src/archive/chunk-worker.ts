/**
 * Worker thread for the CPU-heavy chunk work, so every core works:
 * - compress: one raw chunk → an independent zstd frame (content checksum on), SHA-256 of both;
 * - decompress: one stored object → raw bytes (zstd checks its frame checksum), SHA-256 of both.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { ChunkJob, ChunkReply } from './chunk-pool.js';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi') as typeof import('zstd-napi');

/** zstd level used for chunks whose sample does not compress: fastest that still makes a frame. */
export const INCOMPRESSIBLE_LEVEL = -7;
const SAMPLE_BYTES = 256 * 1024;
/** A sample that saves less than this fraction is treated as incompressible (raw encrypted data). */
const MIN_SAVING = 0.02;

const compressors = new Map<number, import('zstd-napi').Compressor>();
function compressor(level: number): import('zstd-napi').Compressor {
  let c = compressors.get(level);
  if (!c) {
    c = new zstd.Compressor();
    c.setParameters({ compressionLevel: level, checksumFlag: true, contentSizeFlag: true });
    compressors.set(level, c);
  }
  return c;
}
const decompressor = new zstd.Decompressor();

function chooseLevel(raw: Buffer, level: number): number {
  if (raw.length < SAMPLE_BYTES * 4) return level;
  // Sample the middle: stream headers at the start compress well even in raw sends.
  const start = Math.floor(raw.length / 2);
  const sample = raw.subarray(start, start + SAMPLE_BYTES);
  const packed = compressor(level).compress(sample);
  return packed.length > sample.length * (1 - MIN_SAVING) ? INCOMPRESSIBLE_LEVEL : level;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The Buffer's bytes as a transferable ArrayBuffer, without a copy when it owns all of it. */
function transferable(b: Buffer): ArrayBuffer {
  const own = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
  return (own ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) as ArrayBuffer;
}

function run(job: ChunkJob): ChunkReply {
  if (job.op === 'compress') {
    const raw = Buffer.from(job.buffer, job.offset, job.length);
    const level = chooseLevel(raw, job.level);
    const stored = compressor(level).compress(raw);
    return { id: job.id, data: transferable(stored), rawSha256: sha256(raw), storedSha256: sha256(stored), level };
  }
  const stored = Buffer.from(job.data);
  const storedSha256 = sha256(stored);
  if (storedSha256 !== job.expectStoredSha256) {
    // Never decompress bytes that are not the ones stored: zstd errors would hide the real cause.
    return { id: job.id, data: new ArrayBuffer(0), rawSha256: '', storedSha256, level: 0 };
  }
  const raw = decompressor.decompress(stored);
  return { id: job.id, data: transferable(raw), rawSha256: sha256(raw), storedSha256, level: 0 };
}

parentPort!.on('message', (job: ChunkJob) => {
  try {
    const reply = run(job);
    parentPort!.postMessage(reply, [reply.data]);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
