import { chunkName } from './keys.js';
import type { ManifestChunk } from './manifest.js';

/** One chunk's values as the manifest records them, without its index and key (fixed by its place). */
export type ChunkValues = Pick<ManifestChunk, 'rawSize' | 'storedSize' | 'rawSha256' | 'storedSha256' | 'level'>;

const HASH = 32;

/**
 * The chunk list of one stream in ≈ 76 bytes a chunk (issue 17: peak RSS ≤ 256 MiB for a stream
 * of 500,000 chunks): both SHA-256s as 32 raw bytes each in one Buffer, sizes and levels in typed
 * arrays. The same list as plain objects with two 64-digit hex strings and a key each costs
 * ≈ 300 bytes a chunk in V8, and the manifest's JSON text as much again.
 *
 * `views()` gives the list as `ManifestChunk`s that read from the table (an object of two fields
 * each, the hex strings made when asked for), so every reader of `Manifest.chunks` works unchanged.
 * Sizes fit 32 bits: a chunk is at most 1 GiB (manifest.ts MAX_CHUNK_SIZE) and its frame at most
 * zstd's bound of it. Hex digests must be lowercase (parseManifest checks them before they get here).
 */
export class ChunkTable {
  private count = 0;
  private hashes: Buffer;
  private sizes: Uint32Array;
  private levels: Int32Array;
  private list: ManifestChunk[] | undefined;

  constructor(capacity = 16) {
    const cap = Math.max(1, capacity);
    this.hashes = Buffer.alloc(cap * 2 * HASH);
    this.sizes = new Uint32Array(cap * 2);
    this.levels = new Int32Array(cap);
  }

  static from(chunks: readonly ChunkValues[]): ChunkTable {
    const t = new ChunkTable(chunks.length);
    for (const [i, c] of chunks.entries()) t.set(i, c);
    return t;
  }

  get length(): number {
    return this.count;
  }

  /** Sets chunk `index` (the table grows to hold it; chunks may come in any order, as uploads finish). */
  set(index: number, c: ChunkValues): void {
    if (index >= this.levels.length) this.grow(Math.max(index + 1, this.levels.length * 2));
    this.count = Math.max(this.count, index + 1);
    this.list = undefined;
    this.hashes.write(c.rawSha256, index * 2 * HASH, HASH, 'hex');
    this.hashes.write(c.storedSha256, index * 2 * HASH + HASH, HASH, 'hex');
    this.sizes[index * 2] = c.rawSize;
    this.sizes[index * 2 + 1] = c.storedSize;
    this.levels[index] = c.level;
  }

  push(c: ChunkValues): void {
    this.set(this.count, c);
  }

  private grow(capacity: number): void {
    const hashes = Buffer.alloc(capacity * 2 * HASH);
    this.hashes.copy(hashes, 0, 0, this.count * 2 * HASH);
    const sizes = new Uint32Array(capacity * 2);
    sizes.set(this.sizes.subarray(0, this.count * 2));
    const levels = new Int32Array(capacity);
    levels.set(this.levels.subarray(0, this.count));
    [this.hashes, this.sizes, this.levels] = [hashes, sizes, levels];
  }

  rawSize(i: number): number {
    return this.sizes[i * 2]!;
  }

  storedSize(i: number): number {
    return this.sizes[i * 2 + 1]!;
  }

  rawSha256(i: number): string {
    return this.hashes.toString('hex', i * 2 * HASH, i * 2 * HASH + HASH);
  }

  storedSha256(i: number): string {
    return this.hashes.toString('hex', i * 2 * HASH + HASH, (i + 1) * 2 * HASH);
  }

  level(i: number): number {
    return this.levels[i]!;
  }

  /** Chunk `i` as a plain object (what the manifest's JSON holds). */
  chunk(i: number): ManifestChunk {
    return { index: i, key: chunkName(i), rawSize: this.rawSize(i), storedSize: this.storedSize(i), rawSha256: this.rawSha256(i), storedSha256: this.storedSha256(i), level: this.level(i) };
  }

  /** Sum of the raw sizes, and of the stored sizes. */
  totals(): { rawBytes: number; storedBytes: number } {
    let rawBytes = 0;
    let storedBytes = 0;
    for (let i = 0; i < this.count; i++) {
      rawBytes += this.sizes[i * 2]!;
      storedBytes += this.sizes[i * 2 + 1]!;
    }
    return { rawBytes, storedBytes };
  }

  /** The chunks as a list of `ManifestChunk`s backed by this table (made once, until the next set). */
  views(): ManifestChunk[] {
    if (!this.list) {
      const list: ManifestChunk[] = new Array(this.count);
      for (let i = 0; i < this.count; i++) list[i] = new ChunkView(this, i);
      this.list = list;
    }
    return this.list;
  }
}

/**
 * A chunk of a ChunkTable as a read-only `ManifestChunk`: two fields (the table, the index), the
 * rest read from the table when asked; `toJSON` gives the plain entry the manifest stores.
 */
class ChunkView implements ManifestChunk {
  constructor(
    private readonly table: ChunkTable,
    readonly index: number,
  ) {}
  get key(): string {
    return chunkName(this.index);
  }
  get rawSize(): number {
    return this.table.rawSize(this.index);
  }
  get storedSize(): number {
    return this.table.storedSize(this.index);
  }
  get rawSha256(): string {
    return this.table.rawSha256(this.index);
  }
  get storedSha256(): string {
    return this.table.storedSha256(this.index);
  }
  get level(): number {
    return this.table.level(this.index);
  }
  toJSON(): ManifestChunk {
    return this.table.chunk(this.index);
  }
}
