import { hostname } from 'node:os';
import type { Backend, ObjectInfo } from '../../storage/backend.js';
import { isNotFound } from '../../storage/backend.js';
import { putWhole } from '../../storage/bodies.js';
import type { Logger } from '../../util/logger.js';
import { deleteOrLeave } from '../leftovers.js';
import { type JournalChunk, JournalTable } from './journal-table.js';
import { ManifestScanner, SyntaxFault } from './manifest-scan.js';
import { chunkName, JOURNAL_NAME } from './keys.js';
import type { ManifestChunk } from './manifest.js';
import { jsonWithList } from './manifest-text.js';
import { proveStored, type StoredProof } from './stored-proof.js';

/**
 * The resume journal of an in-progress stream (docs/archive-format.md, "Journal"): which chunks are stored, with their
 * raw and stored SHA-256 (and, where the server keeps one, the ETag it gave the object right
 * after the upload). A rerun of the same stream (same id, chunk size and send arguments)
 * hashes each regenerated chunk and skips the upload where the journal already holds those
 * exact raw bytes and the object is proven to still hold the frame stored (stored-proof.ts).
 * Journals written before ETags were recorded still work: their chunks are proven by reading.
 */
export type { JournalChunk } from './journal-table.js';

/** The chunk as the manifest records it (the ETag is only the journal's business). */
export function manifestChunk(c: JournalChunk): ManifestChunk {
  const { etag: _etag, ...chunk } = c;
  return chunk;
}

interface JournalData {
  format: 'zfs-offsite-journal';
  formatVersion: '1.0';
  streamId: string;
  dataset: string;
  chunkSize: number;
  sendArgs: string[] | null;
  host: string;
  pid: number;
  startedAt: string;
  updatedAt: string;
  chunks: JournalChunk[];
}

export interface JournalIdentity {
  streamId: string;
  dataset: string;
  prefix: string;
  chunkSize: number;
  sendArgs: string[] | null;
}

export class ResumeJournal {
  /** The chunks listed, compact (journal-table.ts: ≈ 100 bytes a chunk, not a 300-byte object). */
  private readonly entries: JournalTable;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private lastSave = 0;
  private spacingMs = 250;
  private failure: Error | undefined;
  private readonly startedAt = new Date().toISOString();
  /** Chunks found reusable when the journal was opened. */
  readonly resumable: number;

  private constructor(
    private readonly backend: Backend,
    private readonly id: JournalIdentity,
    reusable: JournalTable,
    /** The stream's objects as listed when the journal was opened. */
    private readonly listed: Map<string, ObjectInfo>,
  ) {
    this.entries = reusable;
    this.resumable = reusable.size;
  }

  /**
   * Opens the journal of a stream: keeps what an interrupted run stored and may be reused
   * (full chunks, objects present with the recorded size; their content is proven when reused,
   * see prove()); anything else of that run is deleted.
   */
  static async open(backend: Backend, id: JournalIdentity, log: Logger): Promise<ResumeJournal> {
    const objects = new Map<string, ObjectInfo>();
    await backend.list(id.prefix, (o) => objects.set(o.key, o));
    let reusable = new JournalTable();
    // A short chunk was the tail of an interrupted stream, not a chunk of the whole one.
    const candidate = (c: Partial<JournalChunk>): c is JournalChunk => wellFormed(c) && c.rawSize === id.chunkSize && objects.get(id.prefix + c.key)?.size === c.storedSize;
    const old = await readJournal(backend, id.prefix + JOURNAL_NAME, candidate);
    if (old) {
      const compatible = old.streamId === id.streamId && old.chunkSize === id.chunkSize && JSON.stringify(old.sendArgs) === JSON.stringify(id.sendArgs);
      if (compatible) {
        reusable = old.chunks;
        log.warn({ stream: id.streamId, chunks: reusable.size }, `resuming an interrupted upload: ${reusable.size} stored chunk(s) can be reused if the stream is the same and each is proven intact`);
      } else log.warn({ stream: id.streamId }, 'discarding an interrupted upload made with other settings (chunk size or zfs send arguments)');
    }
    const keep = new Set([id.prefix + JOURNAL_NAME]);
    for (let i = 0; i < reusable.end; i++) if (reusable.has(i)) keep.add(id.prefix + chunkName(i));
    const stale = [...objects.keys()].filter((k) => !keep.has(k));
    // Overwritten or left as strays when they cannot be deleted (append-only credentials: archive/leftovers.ts).
    await deleteOrLeave(backend, stale, log, `${stale.length} object(s) of an earlier upload of ${id.streamId}`);
    const journal = new ResumeJournal(backend, id, reusable, objects);
    await journal.save();
    return journal;
  }

  /** Chunks the journal lists as stored (what a rerun may reuse). */
  get size(): number {
    return this.entries.size;
  }

  /** The interrupted run's chunk at this index, a candidate for reuse once prove() says so. */
  reusable(index: number): JournalChunk | undefined {
    return this.entries.chunk(index);
  }

  /** Whether the stored object of a reusable chunk still holds the frame that was uploaded. */
  prove(chunk: JournalChunk): Promise<StoredProof> {
    const key = this.id.prefix + chunk.key;
    return proveStored(this.backend, key, chunk, this.listed.get(key));
  }

  /**
   * Records a stored chunk. Each write rewrites the whole journal (atomically), so writes are
   * coalesced and spaced in proportion to its size (≥ 250 ms, ≈ 1 s per 256 KB): otherwise a
   * stream of n chunks writes O(n²) bytes of journal (a 1 TiB stream: terabytes). A chunk
   * stored but not yet journaled when the run dies is uploaded again by the rerun (the
   * journal's open deletes it), never trusted. A failed journal write fails the next call.
   */
  record(chunk: JournalChunk): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.entries.set(chunk);
    this.schedule();
    return Promise.resolve();
  }

  /** A stored chunk proven damaged: no longer vouched for (it is being uploaded again). */
  forget(index: number): void {
    if (this.entries.delete(index)) this.schedule();
  }

  private schedule(): void {
    this.dirty = true;
    this.timer ??= setTimeout(
      () => {
        this.timer = undefined;
        this.save().catch((err: Error) => (this.failure ??= err));
      },
      Math.max(0, this.lastSave + this.spacingMs - performance.now()),
    );
  }

  /**
   * The stream differs from the interrupted run from `index` on: forget those chunks. Written
   * at once: the old objects at those keys are about to be overwritten, and the journal must
   * never vouch for an object whose bytes changed.
   */
  forgetFrom(index: number): Promise<void> {
    for (let i = index; i < this.entries.end; i++) this.entries.delete(i);
    return this.save();
  }

  private save(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    this.lastSave = performance.now();
    const data: Omit<JournalData, 'chunks'> = {
      format: 'zfs-offsite-journal',
      formatVersion: '1.0',
      streamId: this.id.streamId,
      dataset: this.id.dataset,
      chunkSize: this.id.chunkSize,
      sendArgs: this.id.sendArgs,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
    };
    // `JSON.stringify({ ...data, chunks }, null, 1)` made in pieces from the table as it is when
    // the write starts, hashed in one pass and sent in another (issue 17: at 500,000 chunks the
    // text is 140 MB, never held whole). With its SHA-256 an S3 backend sends it as one
    // PutObject, never as a multipart upload (a big stream's journal exceeds a part) that
    // prune's cleanup of old ones could abort.
    const write = async (): Promise<void> => {
      const chunks = this.entries.snapshot();
      try {
        const size = await putWhole(this.backend, this.id.prefix + JOURNAL_NAME, jsonWithList({ ...data, chunks: [] }, 'chunks', chunks, 1));
        this.spacingMs = Math.max(250, size / 256);
      } finally {
        chunks.release();
      }
    };
    this.writing = this.writing.catch(() => undefined).then(write);
    return this.writing;
  }

  /** Writes what is not written yet and waits for it. */
  async flush(): Promise<void> {
    if (this.dirty) await this.save();
    await this.writing;
    if (this.failure) throw this.failure;
  }
}

/**
 * Reads a journal piece by piece (issue 17: 140 MB at 500,000 chunks, never held whole as text
 * or objects; the manifest's scanner, manifest-scan.ts): its chunk entries that `keep` accepts go
 * into a journal table as they are read, the rest of it is parsed at the end. Not a journal
 * (absent, not JSON, another format): undefined.
 */
async function readJournal(backend: Backend, key: string, keep: (c: Partial<JournalChunk>) => c is JournalChunk): Promise<(Omit<JournalData, 'chunks'> & { chunks: JournalTable }) | undefined> {
  let chunks = new JournalTable();
  const scanner = new ManifestScanner({
    onChunks: () => {
      chunks = new JournalTable();
    },
    onChunk: (_index, value) => {
      if (typeof value === 'object' && value !== null && keep(value)) chunks.set(value);
    },
  });
  try {
    await backend.load(key, (piece) => scanner.push(piece));
    const data = JSON.parse(scanner.finish()) as Partial<JournalData>;
    return data.format === 'zfs-offsite-journal' && Array.isArray(data.chunks) ? { ...(data as JournalData), chunks } : undefined;
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError || err instanceof SyntaxFault) return undefined;
    throw err;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff_ffff;

/**
 * An entry the journal table can hold exactly (journal-table.ts): anything else is not reused (its
 * chunk is uploaded again), as a chunk whose object does not match never was.
 */
function wellFormed(c: Partial<JournalChunk>): c is JournalChunk {
  return (
    isCount(c.index) &&
    c.key === chunkName(c.index) &&
    isCount(c.rawSize) &&
    isCount(c.storedSize) &&
    typeof c.rawSha256 === 'string' &&
    HEX64.test(c.rawSha256) &&
    typeof c.storedSha256 === 'string' &&
    HEX64.test(c.storedSha256) &&
    Number.isSafeInteger(c.level) &&
    (c.etag === undefined || typeof c.etag === 'string')
  );
}
