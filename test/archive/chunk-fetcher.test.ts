import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkFetcher, ChunkIntegrityError, type ChunkRef, chunkRanges, type FetchOutcome, inPlaceMargin } from '../../src/archive/pipeline/chunk-fetcher.js';
import { ChunkPool, frameBound } from '../../src/archive/pipeline/chunk-pool.js';
import type { ManifestChunk } from '../../src/archive/format/manifest.js';
import { writeReleasing } from '../../src/archive/pipeline/reader.js';
import { type Backend, type ByteRange, MAX_PARTS_PER_OBJECT, type LoadConsumer, type LoadOptions, StorageError } from '../../src/storage/backend.js';
import { consumeRead, rangeOf } from '../../src/storage/bodies.js';
import { LocalBackend } from '../../src/storage/local.js';
import { RetryingBackend } from '../../src/storage/retrying.js';

/** The retrying wrapper every opened backend has (storage/open.ts), with instant backoff. */
const retrying = (inner: Backend, maxAttempts?: number) => new RetryingBackend(inner, { sleep: async () => undefined, ...(maxAttempts ? { maxAttempts } : {}) });

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PREFIX = 'pool/ds/stream/';

/** Raw chunk `i`: text-like (compresses, exercising compressed blocks in place) or random. */
function rawChunk(i: number, size: number): Buffer {
  if (i % 2 === 1) return randomBytes(size);
  const line = Buffer.from(`chunk ${i} line of fairly repetitive text ${'abcdefgh'.repeat(i % 5)}\n`);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += line.length) line.copy(out, at);
  if (size >= 4) out.writeUInt32LE(i, 0);
  return out;
}

interface Archive {
  chunks: ManifestChunk[];
  raws: Buffer[];
  stored: Buffer[];
}

/** Stores `sizes.length` chunks the way the writer does (worker compression, checksummed frames). */
async function writeChunks(backend: Backend, pool: ChunkPool, sizes: number[], level = 3): Promise<Archive> {
  const archive: Archive = { chunks: [], raws: [], stored: [] };
  for (const [index, size] of sizes.entries()) {
    const raw = rawChunk(index, size);
    const input = new SharedArrayBuffer(Math.max(1, size));
    new Uint8Array(input).set(raw);
    const out = new SharedArrayBuffer(frameBound(size));
    const r = await pool.compress({ buffer: input, offset: 0, length: size, level, out });
    const stored = Buffer.from(new Uint8Array(out, 0, r.length));
    const key = `${String(index).padStart(6, '0')}.zst`;
    await backend.put(PREFIX + key, stored);
    archive.chunks.push({ index, key, rawSize: size, storedSize: stored.length, rawSha256: r.rawSha256, storedSha256: r.storedSha256, level: r.level });
    archive.raws.push(raw);
    archive.stored.push(stored);
  }
  return archive;
}

const refs = (chunks: ManifestChunk[]): ChunkRef[] => chunks.map((chunk) => ({ prefix: PREFIX, chunk }));

/** Consumes every outcome, copying the bytes out before releasing. */
async function collect(fetcher: ChunkFetcher, chunks: ManifestChunk[]): Promise<(Buffer | ChunkIntegrityError)[]> {
  const got: (Buffer | ChunkIntegrityError)[] = [];
  for await (const o of fetcher.inOrder(refs(chunks))) {
    if ('error' in o) {
      if (!(o.error instanceof ChunkIntegrityError)) throw o.error;
      got.push(o.error);
    } else {
      got.push(Buffer.from(o.raw));
      o.release();
    }
  }
  return got;
}

/** A backend whose reads of chosen objects start late (so later chunks finish first) or break midway (once, or always). */
class UnrulyBackend implements Backend {
  readonly location: string;
  readonly connections = 4;
  /** Set: reads of chunks at least twice this size are split into parallel ranges (as over S3). */
  rangedReadBytes?: number;
  readonly gets: string[] = [];
  slow = new Set<string>();
  breakOnce = new Set<string>();
  breakAlways = new Set<string>();
  constructor(readonly inner: Backend) {
    this.location = inner.location;
  }
  async get(key: string, range?: ByteRange): Promise<Readable> {
    this.gets.push(`${key}@${range?.offset ?? 0}`);
    if (this.slow.has(key)) await sleep(60);
    const body = await this.inner.get(key, range);
    if (!this.breakOnce.delete(key) && !this.breakAlways.has(key)) return body;
    // Pass the first piece, then fail the way a reset connection does.
    const out = new PassThrough();
    body.once('data', (piece: Buffer) => {
      body.destroy();
      out.write(piece.subarray(0, 1000));
      setImmediate(() => out.destroy(new StorageError('connection reset', false)));
    });
    return out;
  }
  /** Over this backend's own `get`, as the real backends do it. */
  load(key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    return consumeRead(() => this.get(key, rangeOf(options)), consume, options.signal);
  }
  put = (key: string, body: Buffer | Readable) => this.inner.put(key, body);
  getBuffer = (key: string) => this.inner.getBuffer(key);
  head = (key: string) => this.inner.head(key);
  list = (prefix: string, on: Parameters<Backend['list']>[1]) => this.inner.list(prefix, on);
  delete = (keys: string[]) => this.inner.delete(keys);
  check = () => this.inner.check();
  close = () => this.inner.close();
}

describe('ChunkFetcher over a local directory', () => {
  let root: string;
  let local: LocalBackend;
  let pool: ChunkPool;
  let archive: Archive;
  const SIZES = [300_000, 300_000, 1, 300_000, 123_457, 300_000, 300_000, 0, 200_000, 300_000, 300_000, 300_000];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'zfs-offsite-fetcher-'));
    local = new LocalBackend(root);
    pool = new ChunkPool(2);
    archive = await writeChunks(local, pool, SIZES);
  });
  afterAll(async () => {
    await pool.close();
    await rm(root, { recursive: true, force: true });
  });

  it.each([1, 2, 4, 8])('delivers every chunk intact and in order with parallel %i, even when later chunks arrive first', async (parallel) => {
    const backend = new UnrulyBackend(local);
    backend.slow = new Set([PREFIX + archive.chunks[0]!.key, PREFIX + archive.chunks[4]!.key]);
    const got = await collect(new ChunkFetcher({ backend, pool, parallel }), archive.chunks);
    expect(got.map((b) => sha256(b as Buffer))).toEqual(archive.raws.map(sha256));
  });

  it('decompresses in place at every level, compressible or not (zstd margin is enough)', async () => {
    for (const level of [-7, 1, 19]) {
      const dir = await mkdtemp(join(tmpdir(), 'zfs-offsite-fetcher-level-'));
      const backend = new LocalBackend(dir);
      const a = await writeChunks(backend, pool, [1_000_000, 1_000_000, 131_073, 7], level);
      const got = await collect(new ChunkFetcher({ backend, pool, parallel: 2 }), a.chunks);
      expect(got.map((b) => sha256(b as Buffer))).toEqual(a.raws.map(sha256));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps its buffers within parallel + 1 and the memory budget, however many chunks', async () => {
    const largest = Math.max(...archive.chunks.map((c) => c.rawSize));
    const buffer = largest + inPlaceMargin(largest);
    for (const [parallel, memoryBytes, most] of [
      [1, 1 << 30, 2],
      [3, 1 << 30, 4],
      [8, 3.5 * buffer, 3],
      [8, 1, 2],
    ] as const) {
      const fetcher = new ChunkFetcher({ backend: local, pool, parallel, memoryBytes });
      let peak = 0;
      for await (const o of fetcher.inOrder(refs(archive.chunks))) {
        peak = Math.max(peak, fetcher.buffersAllocated.count);
        if ('release' in o) o.release();
      }
      expect(peak).toBe(most);
      expect(fetcher.buffersAllocated.bytes).toBe(buffer);
    }
  });

  it('waits for the consumer: no chunk is fetched into a buffer still held', async () => {
    const fetcher = new ChunkFetcher({ backend: local, pool, parallel: 4, memoryBytes: 1 });
    const held: { raw: Buffer; copy: Buffer; release(): void }[] = [];
    const iterator = fetcher.inOrder(refs(archive.chunks));
    // Both buffers held by the consumer: the fetcher must stall rather than reuse one.
    for (let i = 0; i < 2; i++) {
      const o = (await iterator.next()).value as FetchOutcome;
      if (!('release' in o)) throw o.error;
      held.push({ raw: o.raw, copy: Buffer.from(o.raw), release: o.release });
    }
    const third = iterator.next();
    const stalled = await Promise.race([third.then(() => false), sleep(300).then(() => true)]);
    expect(stalled).toBe(true);
    for (const h of held) expect(h.raw.equals(h.copy)).toBe(true);
    held[0]!.release();
    const o = (await third).value as FetchOutcome;
    expect('release' in o && sha256(o.raw)).toBe(archive.chunks[2]!.rawSha256);
    await iterator.return(undefined);
  });

  it('hands buffers back only after a slow sink has written every byte (write callbacks, not drain)', async () => {
    const source = Buffer.concat(archive.raws);
    // A sink that accepts lots before asking to drain and finishes each write late: it reads
    // the bytes at the last moment it may, just before its callback, and checks them then.
    let at = 0;
    let damaged = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024 * 1024,
      write(bytes: Buffer, _encoding, done) {
        const offset = at;
        at += bytes.length;
        setTimeout(() => {
          if (!bytes.equals(source.subarray(offset, offset + bytes.length))) damaged++;
          done();
        }, 15);
      },
    });
    const fetcher = new ChunkFetcher({ backend: local, pool, parallel: 6, memoryBytes: 1 });
    for await (const o of fetcher.inOrder(refs(archive.chunks))) {
      if (!('release' in o)) throw o.error;
      // Two pieces per chunk, as a span boundary inside a chunk gives.
      const half = Math.floor(o.raw.length / 2);
      await writeReleasing(sink, [o.raw.subarray(0, half), o.raw.subarray(half)], o.release);
    }
    await new Promise<void>((resolve) => sink.end(resolve));
    expect(at).toBe(source.length);
    expect(damaged).toBe(0);

    // The same sink with buffers handed back as soon as write() returns: the check above sees it.
    at = 0;
    const early = new Writable({ highWaterMark: 64 * 1024 * 1024, write: sink._write.bind(sink) });
    for await (const o of fetcher.inOrder(refs(archive.chunks))) {
      if (!('release' in o)) throw o.error;
      early.write(o.raw);
      o.release();
    }
    await new Promise<void>((resolve) => early.end(resolve));
    expect(damaged).toBeGreaterThan(0);
  });

  it('resumes a read that breaks midway where it stopped', async () => {
    const backend = new UnrulyBackend(local);
    const key = PREFIX + archive.chunks[3]!.key;
    backend.breakOnce.add(key);
    const got = await collect(new ChunkFetcher({ backend: retrying(backend), pool, parallel: 2 }), archive.chunks);
    expect(got.map((b) => sha256(b as Buffer))).toEqual(archive.raws.map(sha256));
    expect(backend.gets.filter((g) => g.startsWith(key))).toEqual([`${key}@0`, `${key}@1000`]);
  });

  it('retries a read that keeps breaking only as often as --retries says: no loop of its own', async () => {
    const backend = new UnrulyBackend(local);
    const key = PREFIX + archive.chunks[3]!.key;
    backend.breakAlways.add(key);
    const outcomes: FetchOutcome[] = [];
    for await (const o of new ChunkFetcher({ backend: retrying(backend, 2), pool, parallel: 2 }).inOrder(refs(archive.chunks))) {
      outcomes.push(o);
      if ('release' in o) o.release();
    }
    const failed = outcomes[3]!;
    expect('error' in failed && failed.error).toBeInstanceOf(StorageError);
    expect(backend.gets.filter((g) => g.startsWith(key))).toEqual([`${key}@0`, `${key}@1000`]);
    expect(outcomes.filter((o) => 'release' in o)).toHaveLength(archive.chunks.length - 1);
  });

  it('stops fetching when the consumer stops, and the next read still gets every buffer', async () => {
    const fetcher = new ChunkFetcher({ backend: local, pool, parallel: 3 });
    for await (const o of fetcher.inOrder(refs(archive.chunks))) {
      if ('release' in o) o.release();
      break;
    }
    await sleep(100);
    const got = [];
    for await (const o of fetcher.inOrder(refs(archive.chunks))) {
      if ('release' in o) got.push(sha256(o.raw));
      if ('release' in o) o.release();
    }
    expect(got).toEqual(archive.raws.map(sha256));
  });

  it('reads a large chunk as parallel ranges into one buffer where the backend asks for it', async () => {
    const backend = new UnrulyBackend(local);
    backend.rangedReadBytes = 50_000;
    backend.slow = new Set([PREFIX + archive.chunks[1]!.key]);
    const got = await collect(new ChunkFetcher({ backend, pool, parallel: 2 }), archive.chunks);
    expect(got.map((b) => sha256(b as Buffer))).toEqual(archive.raws.map(sha256));
    // Chunk 1 is random (stored ≈ 300 kB): four ranges, the first at 0.
    const offsets = backend.gets.filter((g) => g.startsWith(PREFIX + archive.chunks[1]!.key)).map((g) => Number(g.split('@')[1]));
    expect(offsets).toHaveLength(MAX_PARTS_PER_OBJECT);
    expect(offsets.sort((a, b) => a - b)[0]).toBe(0);
  });

  it('chunkRanges: covers every byte once, the last range open-ended, at most MAX_PARTS_PER_OBJECT', () => {
    expect(chunkRanges(10, undefined)).toEqual([{ offset: 0 }]);
    expect(chunkRanges(7_999_999, 4_000_000)).toEqual([{ offset: 0 }]);
    for (const size of [8_000_000, 8_000_001, 16_777_216, 16_777_229, 100_000_000]) {
      const ranges = chunkRanges(size, 4_000_000);
      expect(ranges.length).toBe(Math.min(MAX_PARTS_PER_OBJECT, Math.floor(size / 4_000_000)));
      expect(ranges.at(-1)!.length).toBeUndefined();
      let next = 0;
      for (const r of ranges) {
        expect(r.offset).toBe(next);
        next = r.offset + (r.length ?? size - r.offset);
      }
      expect(next).toBe(size);
    }
  });

  describe.each([
    ['one request per chunk', undefined],
    ['ranged reads', 50_000],
  ])('integrity (%s): each damage is named, its bytes never handed out, the other chunks still are', (_how, rangedReadBytes) => {
    const DAMAGED = 3;
    async function withDamaged(
      // biome-ignore lint/suspicious/noConfusingVoidType: damage callbacks either edit in place (void) or return a new entry
      damage: (c: ManifestChunk, stored: Buffer) => Promise<ManifestChunk | void>,
    ): Promise<{ got: (Buffer | ChunkIntegrityError)[]; error: ChunkIntegrityError; chunk: ManifestChunk }> {
      const chunks = structuredClone(archive.chunks);
      const key = PREFIX + chunks[DAMAGED]!.key;
      const edited = await damage(chunks[DAMAGED]!, archive.stored[DAMAGED]!);
      if (edited) chunks[DAMAGED] = edited;
      try {
        const backend = new UnrulyBackend(local);
        backend.rangedReadBytes = rangedReadBytes;
        const got = await collect(new ChunkFetcher({ backend, pool, parallel: 3 }), chunks);
        for (const [i, b] of got.entries()) if (i !== DAMAGED) expect(sha256(b as Buffer)).toBe(archive.chunks[i]!.rawSha256);
        const error = got[DAMAGED] as ChunkIntegrityError;
        expect(error).toBeInstanceOf(ChunkIntegrityError);
        expect(error.object).toBe(`${local.location}/${key}`);
        expect(error.message).toMatch(/; nothing of this chunk was passed on$/);
        return { got, error, chunk: chunks[DAMAGED]! };
      } finally {
        await local.put(key, archive.stored[DAMAGED]!);
      }
    }

    it('chunk-missing', async () => {
      const { error } = await withDamaged(async (c) => local.delete([PREFIX + c.key]));
      expect(error.kind).toBe('chunk-missing');
    });

    it('chunk-size: shorter and longer objects, with their real size', async () => {
      const short = await withDamaged(async (c, stored) => local.put(PREFIX + c.key, stored.subarray(0, stored.length - 1)));
      expect([short.error.kind, short.error.expected, short.error.found]).toEqual(['chunk-size', String(short.chunk.storedSize), String(short.chunk.storedSize - 1)]);
      const long = await withDamaged(async (c, stored) => local.put(PREFIX + c.key, Buffer.concat([stored, randomBytes(3_000_000)])));
      expect([long.error.kind, long.error.found]).toEqual(['chunk-size', String(long.chunk.storedSize + 3_000_000)]);
    });

    it('chunk-corrupt: a flipped byte, caught before decompressing', async () => {
      const { error, chunk } = await withDamaged(async (c, stored) => {
        const flipped = Buffer.from(stored);
        flipped[flipped.length >> 1]! ^= 0x10;
        await local.put(PREFIX + c.key, flipped);
      });
      expect([error.kind, error.expected]).toEqual(['chunk-corrupt', chunk.storedSha256]);
      expect(error.found).toMatch(/^[0-9a-f]{64}$/);
    });

    it('chunk-undecodable: the recorded bytes are no zstd frame', async () => {
      const garbage = randomBytes(5000);
      const { error } = await withDamaged(async (c) => {
        await local.put(PREFIX + c.key, garbage);
        return { ...c, storedSize: garbage.length, storedSha256: sha256(garbage) };
      });
      expect(error.kind).toBe('chunk-undecodable');
    });

    it('chunk-undecodable: a frame declaring more content than the manifest says', async () => {
      const { error } = await withDamaged(async (c) => ({ ...c, rawSize: c.rawSize - 1 }));
      expect(error.kind).toBe('chunk-undecodable');
      expect(error.problem).toMatch(/content size/);
    });

    it('chunk-raw-mismatch: the decompressed bytes are not the recorded ones', async () => {
      const { error, chunk } = await withDamaged(async (c) => ({ ...c, rawSha256: 'a'.repeat(64) }));
      expect([error.kind, error.expected, error.found]).toEqual(['chunk-raw-mismatch', 'a'.repeat(64), archive.chunks[DAMAGED]!.rawSha256]);
      expect(chunk.rawSha256).toBe('a'.repeat(64));
    });
  });
});
