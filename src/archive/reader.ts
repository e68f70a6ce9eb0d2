import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { OperationalError } from '../util/errors.js';
import type { ChunkPool } from './chunk-pool.js';
import type { Manifest, ManifestChunk } from './manifest.js';

export type ChunkProblem = 'chunk-missing' | 'chunk-size' | 'chunk-corrupt' | 'chunk-undecodable' | 'chunk-raw-mismatch';

/** A chunk object is missing or its bytes are not the ones archived. */
export class ChunkIntegrityError extends OperationalError {
  override name = 'ChunkIntegrityError';
  constructor(
    readonly object: string,
    readonly kind: ChunkProblem,
    readonly problem: string,
    readonly expected?: string,
    readonly found?: string,
  ) {
    super(`${object}: ${problem}; nothing of this chunk was passed on`);
  }
}

export interface ByteSpan {
  start: number;
  end: number;
}

export interface ReadOptions {
  backend: Backend;
  pool: ChunkPool;
  /** Key prefix of the stream: `<dataset path>/<stream id>/`. */
  prefix: string;
  manifest: Manifest;
  /** Chunks fetched and decompressed ahead of the one being written. */
  parallel: number;
}

/**
 * Fetches, checks (stored SHA-256 → zstd frame checksum → raw SHA-256) and decompresses the
 * chunks covering `spans` of the raw stream, and yields those bytes in order. Up to
 * `parallel` chunks are prefetched; a chunk's bytes are yielded only after all its checks
 * passed, so a damaged chunk never reaches the receiver.
 */
export async function* readStreamSpans(o: ReadOptions, spans: ByteSpan[]): AsyncGenerator<Buffer> {
  const offsets: number[] = [];
  let pos = 0;
  for (const c of o.manifest.chunks) {
    offsets.push(pos);
    pos += c.rawSize;
  }
  const needed = o.manifest.chunks.filter((c, i) => spans.some((s) => s.start < offsets[i]! + c.rawSize && s.end > offsets[i]!));
  const inFlight = new Map<number, Promise<Buffer>>();
  const start = (k: number): void => {
    const chunk = needed[k];
    if (!chunk || inFlight.has(k)) return;
    const p = fetchChunk(o, chunk);
    p.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
    inFlight.set(k, p);
  };
  for (let k = 0; k < needed.length; k++) {
    for (let ahead = k; ahead < k + Math.max(1, o.parallel); ahead++) start(ahead);
    const chunk = needed[k]!;
    const raw = await inFlight.get(k)!;
    inFlight.delete(k);
    const base = offsets[chunk.index]!;
    for (const s of spans) {
      const from = Math.max(s.start, base);
      const to = Math.min(s.end, base + raw.length);
      if (from < to) yield raw.subarray(from - base, to - base);
    }
  }
}

/** One chunk, fetched and checked (stored SHA-256, zstd frame checksum, raw SHA-256), decompressed. */
export async function fetchChunk(o: Omit<ReadOptions, 'parallel'>, chunk: ManifestChunk): Promise<Buffer> {
  const key = o.prefix + chunk.key;
  const object = `${o.backend.location}/${key}`;
  let stored: Buffer;
  try {
    stored = await o.backend.getBuffer(key);
  } catch (err) {
    if (isNotFound(err)) throw new ChunkIntegrityError(object, 'chunk-missing', 'chunk object is missing');
    throw err;
  }
  if (stored.length !== chunk.storedSize) {
    throw new ChunkIntegrityError(object, 'chunk-size', `size ${stored.length} bytes, the manifest says ${chunk.storedSize}`, String(chunk.storedSize), String(stored.length));
  }
  let out;
  try {
    out = await o.pool.decompress(stored, chunk.storedSha256, chunk.rawSize);
  } catch (err) {
    throw new ChunkIntegrityError(object, 'chunk-undecodable', `cannot be decompressed (${(err as Error).message})`);
  }
  if (out.storedSha256 !== chunk.storedSha256) {
    throw new ChunkIntegrityError(object, 'chunk-corrupt', `SHA-256 is ${out.storedSha256}, the manifest says ${chunk.storedSha256}`, chunk.storedSha256, out.storedSha256);
  }
  if (out.rawSha256 !== chunk.rawSha256 || out.raw.length !== chunk.rawSize) {
    throw new ChunkIntegrityError(object, 'chunk-raw-mismatch', `decompressed bytes do not match the manifest (SHA-256 ${out.rawSha256}, expected ${chunk.rawSha256})`, chunk.rawSha256, out.rawSha256);
  }
  return out.raw;
}

/** The byte spans of substreams first..last, with the compound framing rebuilt around them. */
export function unitSpans(manifest: Manifest, first: number, last: number, whole: boolean): ByteSpan[] {
  if (whole) return [{ start: 0, end: manifest.rawBytes }];
  const subs = manifest.substreams;
  const body = { start: subs[first]!.offset, end: subs[last]!.offset + subs[last]!.bytes };
  if (!manifest.compound) return [body];
  // Header BEGIN + nvlist + END precede the first substream; the conclusion END is the last record.
  return [{ start: 0, end: subs[0]!.offset }, body, { start: manifest.rawBytes - 312, end: manifest.rawBytes }];
}
