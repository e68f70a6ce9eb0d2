/**
 * Reads a manifest's JSON piece by piece without holding its chunk list as text or objects
 * (issue 17: a stream of 500,000 chunks has a manifest of ≈ 150 MB, ≈ 300 bytes of JSON a chunk).
 *
 * The scanner follows the JSON structure byte by byte (strings and escapes, nesting depth, the
 * root object's keys). The value of a root key `chunks` that is an array is taken apart here:
 * each element's text is parsed on its own with JSON.parse and handed to `onChunk`, the separators
 * between elements are checked, and the array is replaced by `[]` in the skeleton: the rest of the
 * document, which the caller parses with JSON.parse. So the document is valid JSON exactly when
 * the skeleton and every element are (a syntax error is never hidden), and every value is what
 * JSON.parse of the whole text would give (a later duplicate `chunks` key starts the list anew,
 * as JSON.parse keeps the last). Any other value of `chunks` stays in the skeleton unchanged.
 *
 * Structural characters are ASCII, so pieces cut inside a multi-byte UTF-8 character are fine.
 */
export class SyntaxFault extends Error {
  override name = 'SyntaxFault';
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

export interface ChunkSink {
  /** A new `chunks` array starts (a later duplicate key replaces the earlier list). */
  onChunks(): void;
  /** Element `index` of the `chunks` array, as JSON.parse gives it. */
  onChunk(index: number, value: unknown): void;
}

export class ManifestScanner {
  private readonly skeleton: Buffer[] = [];
  private skeletonBytes = 0;
  private total = 0;
  /** Depth of nesting outside the chunks array. */
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** In the root object, where a key may start (after `{` or `,`). */
  private keyPosition = false;
  /** Bytes of the root key being read, and the last root key read. */
  private key: number[] | undefined;
  private lastKey: string | undefined;
  /** After `"chunks":` in the root object, before its value. */
  private awaitingChunks = false;
  /** Inside the chunks array: between elements, or inside one. */
  private array: 'between' | 'element' | undefined;
  /** Between elements: right after a `,` (a `]` is then an error). */
  private afterComma = false;
  private element: Buffer[] = [];
  private elementDepth = 0;
  private index = 0;

  constructor(private readonly sink: ChunkSink) {}

  /** Bytes read so far; bytes of the skeleton. */
  get sizes(): { total: number; skeleton: number } {
    return { total: this.total, skeleton: this.skeletonBytes };
  }

  push(piece: Buffer): void {
    this.total += piece.length;
    // Inside the chunks array nothing is kept until its `]`.
    let copyFrom = this.array === undefined ? 0 : piece.length;
    let i = 0;
    while (i < piece.length) {
      if (this.array === undefined) {
        this.structureByte(piece[i]!);
        i++;
        if (this.array !== undefined) {
          // The chunks array's `[` ends the skeleton's part of this piece; its content is not kept.
          this.keep(piece.subarray(copyFrom, i));
          copyFrom = piece.length;
        }
        continue;
      }
      const end = this.arrayBytes(piece, i);
      if (end < piece.length) {
        // Its `]`: kept, and the skeleton goes on after it (the `[` was never counted in depth).
        copyFrom = end;
        i = end + 1;
      } else i = piece.length;
    }
    if (copyFrom < piece.length) this.keep(piece.subarray(copyFrom));
  }

  /** The skeleton's text; throws SyntaxFault when the input ended inside the chunks array. */
  finish(): string {
    if (this.array !== undefined) throw new SyntaxFault('Unexpected end of JSON input (in the chunks list)');
    return Buffer.concat(this.skeleton, this.skeletonBytes).toString();
  }

  private keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.skeleton.push(Buffer.from(bytes));
    this.skeletonBytes += bytes.length;
  }

  /** One byte outside the chunks array: strings, nesting, and the root object's `"chunks":`. */
  private structureByte(b: number): void {
    if (this.inString) {
      if (this.key) this.key.push(b);
      if (this.escaped) this.escaped = false;
      else if (b === BACKSLASH) this.escaped = true;
      else if (b === QUOTE) {
        this.inString = false;
        if (this.key) {
          try {
            this.lastKey = JSON.parse(Buffer.from(this.key).toString()) as string;
          } catch {
            this.lastKey = undefined; // not a valid string: the skeleton's JSON.parse says so
          }
          this.key = undefined;
        }
      }
      return;
    }
    if (isSpace(b)) return;
    if (this.awaitingChunks) {
      this.awaitingChunks = false;
      if (b === 0x5b && this.depth === 1) {
        this.sink.onChunks();
        this.array = 'between';
        this.afterComma = false;
        this.index = 0;
        return;
      }
    }
    switch (b) {
      case QUOTE:
        this.inString = true;
        if (this.depth === 1 && this.keyPosition) {
          this.key = [b];
          this.keyPosition = false;
        }
        return;
      case 0x7b: // {
      case 0x5b: // [
        this.depth++;
        this.keyPosition = this.depth === 1 && b === 0x7b;
        return;
      case 0x7d: // }
      case 0x5d: // ]
        this.depth--;
        this.keyPosition = false;
        return;
      case 0x2c: // ,
        if (this.depth === 1) this.keyPosition = true;
        return;
      case 0x3a: // :
        if (this.depth === 1) {
          this.awaitingChunks = this.lastKey === 'chunks';
          this.lastKey = undefined;
        }
        return;
      default:
        return;
    }
  }

  /**
   * The chunks array's bytes from `i`: returns the offset of its closing `]`, or the piece's
   * length when the piece ends first. Elements are delimited by nesting depth outside strings.
   */
  private arrayBytes(piece: Buffer, i: number): number {
    while (i < piece.length) {
      if (this.array === 'element') {
        const from = i;
        for (; i < piece.length; i++) {
          const b = piece[i]!;
          if (this.inString) {
            if (this.escaped) this.escaped = false;
            else if (b === BACKSLASH) this.escaped = true;
            else if (b === QUOTE) this.inString = false;
          } else if (b === QUOTE) this.inString = true;
          else if (b === 0x7b || b === 0x5b) this.elementDepth++;
          else if (b === 0x7d || b === 0x5d) {
            if (this.elementDepth === 0) break; // the array's own `]` (or a stray `}`)
            this.elementDepth--;
          } else if (b === 0x2c && this.elementDepth === 0) break;
        }
        this.element.push(Buffer.from(piece.subarray(from, i)));
        if (i === piece.length) return i;
        this.endElement();
        const b = piece[i]!;
        if (b === 0x5d) return this.close(i);
        if (b !== 0x2c) throw new SyntaxFault(`Unexpected token '}' in the chunks list (after element ${this.index - 1})`);
        this.array = 'between';
        this.afterComma = true;
        i++;
        continue;
      }
      const b = piece[i]!;
      if (isSpace(b)) {
        i++;
        continue;
      }
      if (b === 0x5d && !this.afterComma) return this.close(i);
      if (b === 0x2c || b === 0x5d || b === 0x7d) throw new SyntaxFault(`Unexpected token '${String.fromCharCode(b)}' in the chunks list (element ${this.index})`);
      this.array = 'element';
      this.elementDepth = 0;
    }
    return i;
  }

  private endElement(): void {
    const text = Buffer.concat(this.element).toString();
    this.element = [];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new SyntaxFault(`${(err as Error).message} (chunks element ${this.index})`);
    }
    this.sink.onChunk(this.index++, value);
  }

  private close(i: number): number {
    this.array = undefined;
    this.afterComma = false;
    return i;
  }
}
