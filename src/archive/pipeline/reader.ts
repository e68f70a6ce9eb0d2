import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { StreamValidator } from '../../stream/validator.js';
import { OperationalError, StreamFormatError } from '../../util/errors.js';
import type { ChunkFetcher, ChunkRef } from './chunk-fetcher.js';
import { streamPrefix } from '../format/keys.js';
import type { Manifest } from '../format/manifest.js';

export interface ByteSpan {
  start: number;
  end: number;
}

/** The bytes one chunk contributes to the spans, lent until `release` (see CheckedChunk). */
export interface SpanPieces {
  pieces: Buffer[];
  release(): void;
  /** The last chunk of the spans: a check of the whole can conclude before these bytes go out. */
  last: boolean;
}

/**
 * The chunks of a stream in stream order with the raw offset each starts at: the one layout
 * restore and deep verify both read (parseManifest has proven `chunks[i].index === i` and the
 * sizes summing to rawBytes, so array order, index order and offsets agree).
 */
export function streamChunks(manifest: Manifest): { ref: ChunkRef; start: number }[] {
  const prefix = streamPrefix(manifest.dataset, manifest.streamId);
  let pos = 0;
  return manifest.chunks.map((chunk) => {
    const start = pos;
    pos += chunk.rawSize;
    return { ref: { prefix, chunk }, start };
  });
}

/**
 * The bytes of `spans` of the raw stream, chunk by chunk in order, each chunk checked before
 * any of its bytes is handed out. A damaged or missing chunk throws (a ChunkIntegrityError
 * naming the object) and stops the prefetch.
 */
export async function* readStreamSpans(fetcher: ChunkFetcher, manifest: Manifest, spans: ByteSpan[]): AsyncGenerator<SpanPieces> {
  const needed = streamChunks(manifest).filter(({ ref, start }) => spans.some((s) => s.start < start + ref.chunk.rawSize && s.end > start));
  let k = 0;
  for await (const outcome of fetcher.inOrder(needed.map((n) => n.ref))) {
    if ('error' in outcome) throw outcome.error;
    const base = needed[k++]!.start;
    const pieces: Buffer[] = [];
    for (const s of spans) {
      const from = Math.max(s.start, base);
      const to = Math.min(s.end, base + outcome.raw.length);
      if (from < to) pieces.push(outcome.raw.subarray(from - base, to - base));
    }
    yield { pieces, release: outcome.release, last: k === needed.length };
  }
}

/** The restored bytes are not the archived stream (caught before the last of them went out). */
export class StreamIntegrityError extends OperationalError {
  override name = 'StreamIntegrityError';
  constructor(
    /** `<target>/<stream prefix>`. */
    readonly object: string,
    readonly problem: string,
  ) {
    super(`${object}: ${problem}; the restore is stopped before its end`, { kind: 'stream-integrity', context: { object } });
  }
}

/**
 * Proves that what a restore unit emits is the archived stream, on top of each chunk's own
 * checks: a whole stream by its SHA-256 in the manifest, a cut `-I` part (whose hash the
 * manifest cannot hold) by walking its records and comparing its snapshots and fletcher-4 END
 * checksums with the manifest's. `finish` runs before the last chunk's bytes are written, so a
 * stream that fails never reaches its END record at the destination.
 */
export class UnitCheck {
  private readonly hash?: Hash;
  private readonly walk?: StreamValidator;
  private bytes = 0;

  constructor(
    private readonly manifest: Manifest,
    private readonly unit: { first: number; last: number; whole: boolean; bytes: number },
    private readonly object: string,
  ) {
    if (unit.whole) this.hash = createHash('sha256');
    else this.walk = new StreamValidator();
  }

  update(pieces: readonly Buffer[]): void {
    for (const p of pieces) {
      this.bytes += p.length;
      this.hash?.update(p);
      try {
        this.walk?.push(p);
      } catch (err) {
        if (!(err instanceof StreamFormatError)) throw err;
        throw new StreamIntegrityError(this.object, `the cut stream is not a valid ZFS stream (${err.message})`);
      }
    }
  }

  finish(): void {
    const expected = this.unit.whole ? this.manifest.rawBytes : this.unit.bytes;
    if (this.bytes !== expected) throw new StreamIntegrityError(this.object, `${this.bytes} bytes read, the manifest says ${expected}`);
    if (this.hash) {
      const digest = this.hash.digest('hex');
      if (digest !== this.manifest.sha256) throw new StreamIntegrityError(this.object, `the stream's SHA-256 is ${digest}, the manifest says ${this.manifest.sha256}`);
      return;
    }
    let summary;
    try {
      summary = this.walk!.finish();
    } catch (err) {
      if (!(err instanceof StreamFormatError)) throw err;
      throw new StreamIntegrityError(this.object, `the cut stream is not a valid ZFS stream (${err.message})`);
    }
    const word = (w: bigint) => w.toString(16).padStart(16, '0');
    const got = summary.substreams.map((s) => `${s.fromguid}>${s.toguid}:${s.endChecksum.map(word).join('')}`).join(',');
    const want = this.manifest.substreams
      .slice(this.unit.first, this.unit.last + 1)
      .map((s) => `${s.fromguid}>${s.toguid}:${s.endChecksum.join('')}`)
      .join(',');
    if (got !== want) throw new StreamIntegrityError(this.object, `the cut stream's snapshots and checksums (${got}) are not the manifest's (${want})`);
  }
}

/** Writing to the output failed; `readerGone` when whoever reads it went away (EPIPE, closed pipe). */
export class OutputError extends OperationalError {
  override name = 'OutputError';
  readonly readerGone: boolean;
  constructor(
    /** Bytes passed to the output before it failed (how many of them its reader got is unknown). */
    readonly bytes: number,
    readonly reason?: Error,
  ) {
    const code = (reason as NodeJS.ErrnoException | undefined)?.code;
    const gone = !reason || code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_DESTROYED';
    super(
      gone
        ? `the reader of the output went away${code ? ` (${code})` : ''} after ${bytes} bytes were passed to it: the output is incomplete`
        : `writing the output failed after ${bytes} bytes: ${reason.message}`,
    );
    this.readerGone = gone;
  }
}

/**
 * Follows the writes to one sink: bytes accepted, and the first failure, which a sink may
 * report only through a write callback or an 'error' event (process.stdout on EPIPE stays
 * open and keeps accepting writes it then drops).
 */
export class SinkWatch {
  /** Bytes passed to the sink (write() called). */
  passed = 0;
  private failure?: Error;
  private pending = 0;
  private idle: (() => void)[] = [];

  /** `listen`: also hear the sink's 'error' events (one listener per watch: make one per sink). */
  constructor(
    readonly sink: Writable,
    listen = true,
  ) {
    if (listen) sink.on('error', (err: Error) => (this.failure ??= err));
  }

  get failed(): boolean {
    return this.failure !== undefined || this.sink.destroyed;
  }

  begin(bytes: number): void {
    this.pending++;
    this.passed += bytes;
  }

  end(err: Error | null | undefined): void {
    if (err) this.failure ??= err;
    if (--this.pending === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Throws an OutputError when the sink failed or closed. */
  check(): void {
    if (this.failed) throw new OutputError(this.passed, this.failure);
  }

  /** Waits until every write so far has been answered, then checks. */
  async flushed(): Promise<void> {
    while (this.pending > 0 && !this.failed) await new Promise<void>((resolve) => this.idle.push(resolve));
    this.check();
  }
}

/**
 * Writes a chunk's pieces and releases its buffer once the sink is done with every piece: its
 * write callbacks, not 'drain', say so — a sink may still hold the bytes after it asked for more.
 * A sink that failed or closed stops it with an OutputError.
 */
export async function writeReleasing(sink: Writable, pieces: Buffer[], release: () => void, watch: SinkWatch = new SinkWatch(sink, false)): Promise<void> {
  let unfinished = 1; // this function itself, until every piece is handed to the sink
  const finished = (): void => {
    if (--unfinished === 0) release();
  };
  try {
    for (const bytes of pieces) {
      watch.check();
      unfinished++;
      watch.begin(bytes.length);
      const more = sink.write(bytes, (err) => {
        watch.end(err);
        finished();
      });
      if (!more && !watch.failed) await drained(sink);
      watch.check();
    }
  } finally {
    finished();
  }
}

/** Resolves when the sink wants more, or is gone (the caller checks which). */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      sink.off('drain', done);
      sink.off('close', done);
      sink.off('error', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
    sink.on('error', done);
  });
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
