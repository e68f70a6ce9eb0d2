import { ChunkTable } from './chunk-table.js';
import { chunkName } from './keys.js';
import type { ManifestChunk } from './manifest.js';

/** A stored chunk: as the manifest will record it, plus the server's ETag of the upload. */
export interface JournalChunk extends ManifestChunk {
  etag?: string;
}

const MD5 = 16;
/** `etagSuffix` values: no ETag, or one with no `-<parts>` suffix. */
const NO_ETAG = -1;
const PLAIN = 0;
const STRANGE = -2;
/** An S3 ETag: a quoted MD5, with `-<parts>` for a multipart upload. */
const S3_ETAG = /^"([0-9a-f]{32})(?:-([1-9][0-9]{0,8}))?"$/;

interface Snapshot {
  listed: Uint8Array;
  end: number;
  /** Values overwritten since the snapshot was taken, as they were. */
  kept: Map<number, JournalChunk>;
}

/**
 * The chunks a resume journal lists (journal.ts), ≈ 100 bytes each (issue 17: a 500,000-chunk
 * stream within 256 MiB): the chunk values in a ChunkTable, whether each index is listed in a
 * byte, an S3 ETag as its 16 MD5 bytes and part count; only an ETag of another shape (another
 * server's) is kept as a string. The same list as objects cost ≈ 300 bytes a chunk.
 * Entries are read back as the plain objects journal.json holds (`chunk(i)`).
 */
export class JournalTable {
  private readonly values = new ChunkTable();
  private listed = new Uint8Array(16);
  private etagBytes = Buffer.alloc(16 * MD5);
  private etagSuffix = new Int32Array(16).fill(NO_ETAG);
  private readonly strange = new Map<number, string>();
  private count = 0;
  private snap: Snapshot | undefined;

  /** Chunks listed. */
  get size(): number {
    return this.count;
  }

  /** One past the highest index ever listed (indexes below it may or may not be listed). */
  get end(): number {
    return this.values.length;
  }

  has(index: number): boolean {
    return index < this.listed.length && this.listed[index] === 1;
  }

  set(c: JournalChunk): void {
    const i = c.index;
    if (i >= this.listed.length) this.grow(Math.max(i + 1, this.listed.length * 2));
    // A snapshot being written lists the values this overwrites: it keeps them first.
    if (this.snap && i < this.snap.end && this.snap.listed[i] === 1 && !this.snap.kept.has(i)) this.snap.kept.set(i, this.read(i));
    this.values.set(i, c);
    if (this.listed[i] !== 1) this.count++;
    this.listed[i] = 1;
    this.strange.delete(i);
    const m = c.etag === undefined ? null : S3_ETAG.exec(c.etag);
    if (c.etag === undefined) this.etagSuffix[i] = NO_ETAG;
    else if (m) {
      this.etagBytes.write(m[1]!, i * MD5, MD5, 'hex');
      this.etagSuffix[i] = m[2] === undefined ? PLAIN : Number(m[2]);
    } else {
      this.etagSuffix[i] = STRANGE;
      this.strange.set(i, c.etag);
    }
  }

  delete(index: number): boolean {
    if (!this.has(index)) return false;
    // The values stay (a snapshot being written may still list them); a later set overwrites them.
    this.listed[index] = 0;
    this.count--;
    return true;
  }

  /** The listed chunk at `index`, as journal.json records it (key order included). */
  chunk(index: number): JournalChunk | undefined {
    return this.has(index) ? this.read(index) : undefined;
  }

  /**
   * The chunks listed now, in index order, made one by one as iterated (journal.json's `chunks`),
   * the same each time they are iterated until `release()`, whatever is set or deleted meanwhile
   * (a body hashed in one pass and sent in another: storage/bodies.ts putWhole). Costs a byte a
   * chunk, plus the entries overwritten while it lives. One at a time.
   */
  snapshot(): Iterable<JournalChunk> & { release(): void } {
    const snap: Snapshot = { listed: this.listed.slice(0, this.end), end: this.end, kept: new Map() };
    this.snap = snap;
    const read = (i: number): JournalChunk => snap.kept.get(i) ?? this.read(i);
    return {
      *[Symbol.iterator]() {
        for (let i = 0; i < snap.end; i++) if (snap.listed[i] === 1) yield read(i);
      },
      release: () => {
        if (this.snap === snap) this.snap = undefined;
      },
    };
  }

  private read(index: number): JournalChunk {
    const v = this.values;
    const c: JournalChunk = {
      index,
      key: chunkName(index),
      rawSize: v.rawSize(index),
      storedSize: v.storedSize(index),
      rawSha256: v.rawSha256(index),
      storedSha256: v.storedSha256(index),
      level: v.level(index),
    };
    const suffix = this.etagSuffix[index]!;
    if (suffix === STRANGE) c.etag = this.strange.get(index)!;
    else if (suffix !== NO_ETAG) c.etag = `"${this.etagBytes.toString('hex', index * MD5, (index + 1) * MD5)}${suffix === PLAIN ? '' : `-${suffix}`}"`;
    return c;
  }

  private grow(capacity: number): void {
    const listed = new Uint8Array(capacity);
    listed.set(this.listed);
    const etagBytes = Buffer.alloc(capacity * MD5);
    this.etagBytes.copy(etagBytes);
    const etagSuffix = new Int32Array(capacity).fill(NO_ETAG);
    etagSuffix.set(this.etagSuffix);
    [this.listed, this.etagBytes, this.etagSuffix] = [listed, etagBytes, etagSuffix];
  }
}
