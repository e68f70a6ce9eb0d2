import type { Manifest, ManifestChunk } from './manifest.js';

/**
 * The manifest's JSON text, as `JSON.stringify(manifest, null, 2)` writes it plus a newline, the
 * chunk entries written one by one (never the chunks as objects). The writer and copy send
 * `manifestPieces` instead (never the whole body in memory: issue 17).
 */
export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.concat([...manifestPieces(manifest)]);
}

/** Pieces of about this many bytes: a streamed body never holds more than one (storage/bodies.ts). */
const PIECE_BYTES = 64 * 1024;

/**
 * `serializeManifest`'s bytes as a sequence of Buffers of ≈ 64 KiB, made as they are asked for
 * (issue 17: the body of a 500,000-chunk stream is 154 MB; `putWhole` hashes one pass and
 * sends another, never holding it whole). Iterable again from the start, each time the same bytes.
 */
export function manifestPieces(manifest: Manifest): Iterable<Buffer> {
  return jsonWithList({ ...manifest, chunks: [] }, 'chunks', manifest.chunks, 2);
}

/**
 * The text of `JSON.stringify(object with list, null, indent)` followed by a newline, with the list
 * (a top-level field, written where `key` stands in `object`) made entry by entry in pieces.
 * Shared by the manifest and the resume journal (journal.ts).
 */
export function jsonWithList(object: object, key: string, list: Iterable<unknown>, indent: number): Iterable<Buffer> {
  const mark = '\u0000list\u0000';
  const text = `${JSON.stringify({ ...object, [key]: mark }, null, indent)}\n`;
  const at = text.indexOf(JSON.stringify(mark));
  const [head, tail] = [text.slice(0, at), text.slice(at + JSON.stringify(mark).length)];
  const pad = ' '.repeat(2 * indent);
  return {
    *[Symbol.iterator]() {
      let piece = head;
      let first = true;
      for (const entry of list) {
        piece += `${first ? '[\n' : ',\n'}${pad}${JSON.stringify(entry, null, indent).replaceAll('\n', `\n${pad}`)}`;
        first = false;
        if (piece.length >= PIECE_BYTES) {
          yield Buffer.from(piece);
          piece = '';
        }
      }
      yield Buffer.from(`${piece}${first ? '[]' : `\n${' '.repeat(indent)}]`}${tail}`);
    },
  };
}

/** coreutils `sha256sum` format: "<hex>  <name>" — `sha256sum -c SHA256SUMS` checks the objects. */
export function sha256sums(chunks: readonly ManifestChunk[]): Buffer {
  return Buffer.concat([...sha256sumsPieces(chunks)]);
}

/** `sha256sums` as pieces of ≈ 64 KiB, made as asked for (see manifestPieces). */
export function sha256sumsPieces(chunks: readonly ManifestChunk[]): Iterable<Buffer> {
  return {
    *[Symbol.iterator]() {
      let piece = '';
      for (const c of chunks) {
        piece += `${c.storedSha256}  ${c.key.split('/').pop()}\n`;
        if (piece.length >= PIECE_BYTES) {
          yield Buffer.from(piece);
          piece = '';
        }
      }
      if (piece !== '' || chunks.length === 0) yield Buffer.from(piece);
    },
  };
}
