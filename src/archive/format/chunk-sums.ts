import { chunkIndexOfName } from './listed-objects.js';

const HASH = 32;
const NL = 0x0a;
/** One line's digest while it is checked (a line with a bad digit leaves the table as it was). */
const scratch = Buffer.alloc(HASH);

/** Value of a lowercase hex digit byte, or −1 (SHA256SUMS lines have lowercase digests: manifest.ts sha256sums). */
function nibble(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  return -1;
}

/**
 * What SHA256SUMS says of the chunks `000000.zst` … of a stream of `count` chunks, read piece by
 * piece (Backend.load) without its text: 32 bytes a chunk (issue 17: SHA256SUMS of 500,000
 * chunks is 38.5 MB of text, as much again as a string). A line counts as `sha256sum` writes it,
 * `<64 lowercase hex> <space or *><name>`, the last line for a name winning; every other line,
 * and every name that is not one of those chunks, says nothing about them and is skipped.
 */
export class ChunkSums {
  private readonly digests: Buffer;
  private readonly present: Uint8Array;
  private rest: Buffer | undefined;

  constructor(readonly count: number) {
    this.digests = Buffer.alloc(count * HASH);
    this.present = new Uint8Array(count);
  }

  /** The whole text at once (a SHA256SUMS already read). */
  static parse(text: string | Buffer, count: number): ChunkSums {
    const sums = new ChunkSums(count);
    sums.push(typeof text === 'string' ? Buffer.from(text) : text);
    sums.finish();
    return sums;
  }

  /** The next piece of the text. */
  push(piece: Buffer): void {
    let at = 0;
    if (this.rest) {
      const end = piece.indexOf(NL);
      if (end < 0) {
        this.rest = Buffer.concat([this.rest, piece]);
        return;
      }
      this.line(Buffer.concat([this.rest, piece.subarray(0, end)]), 0, this.rest.length + end);
      this.rest = undefined;
      at = end + 1;
    }
    for (;;) {
      const end = piece.indexOf(NL, at);
      if (end < 0) break;
      this.line(piece, at, end);
      at = end + 1;
    }
    // A partial line is kept until its end comes (a copy: the piece's memory may be reused).
    if (at < piece.length) this.rest = Buffer.from(piece.subarray(at));
  }

  /** The text ended: its last line, when it had no newline. */
  finish(): void {
    if (this.rest) this.line(this.rest, 0, this.rest.length);
    this.rest = undefined;
  }

  private line(b: Buffer, start: number, end: number): void {
    const name = start + 66;
    // The longest chunk name (chunkIndexOfName): 10 digits and `.zst`.
    if (end - name < 10 || end - name > 14 || b[start + 64] !== 0x20 || (b[start + 65] !== 0x20 && b[start + 65] !== 0x2a)) return;
    const i = chunkIndexOfName(b.toString('latin1', name, end));
    if (i === undefined || i >= this.count) return;
    const digest = scratch;
    for (let k = 0; k < HASH; k++) {
      const hi = nibble(b[start + 2 * k]!);
      const lo = nibble(b[start + 2 * k + 1]!);
      if (hi < 0 || lo < 0) return;
      digest[k] = hi * 16 + lo;
    }
    digest.copy(this.digests, i * HASH);
    this.present[i] = 1;
  }

  /** The hex digest SHA256SUMS gives chunk `index`, or undefined when it names none. */
  digest(index: number): string | undefined {
    return this.present[index] ? this.digests.toString('hex', index * HASH, index * HASH + HASH) : undefined;
  }
}
