/**
 * Worker thread: compresses one raw chunk as an independent zstd frame (content checksum
 * on) and hashes raw and stored bytes. Runs off the main thread so every core works.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { ChunkJob, ChunkResult } from './chunk-pool.js';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi') as typeof import('zstd-napi');

/** zstd level used for chunks whose sample does not compress: fastest that still makes a frame. */
const INCOMPRESSIBLE_LEVEL = -7;
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

function chooseLevel(raw: Buffer, level: number): number {
  if (raw.length < SAMPLE_BYTES * 4) return level;
  // Sample the middle: stream headers at the start compress well even in raw sends.
  const start = Math.floor(raw.length / 2);
  const sample = raw.subarray(start, start + SAMPLE_BYTES);
  const packed = compressor(level).compress(sample);
  return packed.length > sample.length * (1 - MIN_SAVING) ? INCOMPRESSIBLE_LEVEL : level;
}

parentPort!.on('message', (job: ChunkJob) => {
  try {
    const raw = Buffer.from(job.buffer, job.offset, job.length);
    const rawSha256 = createHash('sha256').update(raw).digest('hex');
    const level = chooseLevel(raw, job.level);
    const stored = compressor(level).compress(raw);
    const storedSha256 = createHash('sha256').update(stored).digest('hex');
    // Hand the bytes over without a copy when the Buffer owns its whole ArrayBuffer.
    const own = stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength;
    const data = own ? (stored.buffer as ArrayBuffer) : stored.buffer.slice(stored.byteOffset, stored.byteOffset + stored.byteLength);
    const result: ChunkResult = { id: job.id, data: data as ArrayBuffer, rawSha256, storedSha256, level };
    parentPort!.postMessage(result, [data as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
