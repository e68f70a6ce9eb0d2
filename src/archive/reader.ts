import type { Writable } from 'node:stream';
import { OperationalError } from '../util/errors.js';
import type { ChunkFetcher } from './chunk-fetcher.js';
import type { Manifest } from './manifest.js';

export interface ByteSpan {
  start: number;
  end: number;
}

/** The bytes one chunk contributes to the spans, lent until `release` (see CheckedChunk). */
export interface SpanPieces {
  pieces: Buffer[];
  release(): void;
}

/**
 * The bytes of `spans` of the raw stream, chunk by chunk in order, each chunk checked before
 * any of its bytes is handed out. A damaged or missing chunk throws (a ChunkIntegrityError
 * naming the object) and stops the prefetch.
 */
export async function* readStreamSpans(fetcher: ChunkFetcher, prefix: string, manifest: Manifest, spans: ByteSpan[]): AsyncGenerator<SpanPieces> {
  const offsets: number[] = [];
  let pos = 0;
  for (const c of manifest.chunks) {
    offsets.push(pos);
    pos += c.rawSize;
  }
  const needed = manifest.chunks.filter((c, i) => spans.some((s) => s.start < offsets[i]! + c.rawSize && s.end > offsets[i]!));
  for await (const outcome of fetcher.inOrder(needed.map((chunk) => ({ prefix, chunk })))) {
    if ('error' in outcome) throw outcome.error;
    const base = offsets[outcome.ref.chunk.index]!;
    const pieces: Buffer[] = [];
    for (const s of spans) {
      const from = Math.max(s.start, base);
      const to = Math.min(s.end, base + outcome.raw.length);
      if (from < to) pieces.push(outcome.raw.subarray(from - base, to - base));
    }
    yield { pieces, release: outcome.release };
  }
}

/**
 * Writes a chunk's pieces and releases its buffer once the sink is done with every piece: its
 * write callbacks, not 'drain', say so — a sink may still hold the bytes after it asked for more.
 */
export async function writeReleasing(sink: Writable, pieces: Buffer[], release: () => void): Promise<void> {
  let unfinished = 1; // this function itself, until every piece is handed to the sink
  const finished = (): void => {
    if (--unfinished === 0) release();
  };
  try {
    for (const bytes of pieces) {
      unfinished++;
      if (!sink.write(bytes, finished) && !sink.destroyed) await drained(sink);
      if (sink.destroyed) throw new OperationalError('the receiver closed its input');
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
