/**
 * Incremental fletcher-4, the checksum of ZFS send streams (docs/stream-format.md, "Fletcher-4"):
 *
 *   for each 32-bit word w (in the stream's byte order): a += w; b += a; c += b; d += c   (mod 2^64)
 *
 * It runs over every byte we archive, so it has to be fast. Pure-JS 64-bit arithmetic (BigInt, or
 * split 32-bit halves with carries) is far too slow, so the inner loop is a tiny hand-assembled
 * WebAssembly module using native i64 adds. WebAssembly can only read its own linear memory, so
 * input is staged through a fixed 1 MiB window of it; that bounded memcpy costs a few percent of
 * the loop time and nothing is ever accumulated.
 */

/** The four 64-bit accumulators (a, b, c, d). */
export type Fletcher4Words = [bigint, bigint, bigint, bigint];

/** Linear-memory layout: state a,b,c,d as little-endian i64 at 0..31, then the input window. */
const STATE_BYTES = 32;
const WINDOW_OFFSET = 32;
const WINDOW_BYTES = 1 << 20;
const MEMORY_PAGES = 17; // 17 × 64 KiB ≥ 32 + 1 MiB

/*
 * The module, as WAT. Both functions sum `len` bytes (a multiple of 4) starting at WINDOW_OFFSET
 * into the state at offset 0; `be` differs only in byte-swapping each word first.
 *
 *   (module
 *     (memory (export "memory") 17)
 *     (func (export "le") (param $len i32)            ;; local 0
 *       (local $p i32) (local $end i32) (local $w i32) ;; locals 1, 2, 3
 *       (local $a i64) (local $b i64) (local $c i64) (local $d i64) ;; locals 4..7
 *       (local.set $a (i64.load offset=0 (i32.const 0)))  ... same for $b/8, $c/16, $d/24
 *       (local.set $p (i32.const 32))
 *       (local.set $end (i32.add (local.get $len) (i32.const 32)))
 *       (block $done4 (loop $next4                      ;; 4 words per iteration
 *         (br_if $done4 (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
 *         WORD(0) WORD(4) WORD(8) WORD(12)
 *         (local.set $p (i32.add (local.get $p) (i32.const 16)))
 *         (br $next4)))
 *       (block $done1 (loop $next1                      ;; remaining 0..3 words
 *         (br_if $done1 (i32.ge_u (local.get $p) (local.get $end)))
 *         WORD(0)
 *         (local.set $p (i32.add (local.get $p) (i32.const 4)))
 *         (br $next1)))
 *       (i64.store offset=0 (i32.const 0) (local.get $a))  ... same for $b/8, $c/16, $d/24
 *     )
 *     (func (export "be") ...identical, with WORD_BE instead of WORD...))
 *
 * WORD(k), in stack form (d += c += b += a += word):
 *   local.get $d  local.get $c  local.get $b  local.get $a
 *   local.get $p  i64.load32_u offset=k
 *   i64.add local.tee $a  i64.add local.tee $b  i64.add local.tee $c  i64.add local.set $d
 * WORD_BE(k) loads with i32.load and byte-swaps without a bswap instruction:
 *   w = load; swapped = (rotl(w, 8) & 0x00FF00FF) | (rotr(w, 8) & 0xFF00FF00); i64.extend_i32_u
 */

// Opcodes used below (WebAssembly MVP binary encoding).
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_CONST = 0x41;
const I32_LOAD = 0x28, I64_LOAD = 0x29, I64_LOAD32_U = 0x35, I64_STORE = 0x37;
const I32_GE_U = 0x4f, I32_GT_U = 0x4b, I32_ADD = 0x6a, I32_AND = 0x71, I32_OR = 0x72;
const I32_ROTL = 0x77, I32_ROTR = 0x78, I64_ADD = 0x7c, I64_EXTEND_I32_U = 0xad;
const BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b, VOID = 0x40;
const [LEN, P, END_PTR, W, A, B, C, D] = [0, 1, 2, 3, 4, 5, 6, 7];

function wordLE(k: number): number[] {
  return [
    LOCAL_GET, D, LOCAL_GET, C, LOCAL_GET, B, LOCAL_GET, A,
    LOCAL_GET, P, I64_LOAD32_U, 2, k, // align 2^2, offset k (k < 128: one LEB byte)
    I64_ADD, LOCAL_TEE, A, I64_ADD, LOCAL_TEE, B, I64_ADD, LOCAL_TEE, C, I64_ADD, LOCAL_SET, D,
  ];
}

function wordBE(k: number): number[] {
  return [
    LOCAL_GET, D, LOCAL_GET, C, LOCAL_GET, B, LOCAL_GET, A,
    LOCAL_GET, P, I32_LOAD, 2, k, LOCAL_TEE, W,
    I32_CONST, 8, I32_ROTL, I32_CONST, 0xff, 0x81, 0xfc, 0x07, I32_AND, // & 0x00FF00FF (SLEB128)
    LOCAL_GET, W, I32_CONST, 8, I32_ROTR, I32_CONST, 0x80, 0xfe, 0x83, 0x78, I32_AND, // & 0xFF00FF00
    I32_OR, I64_EXTEND_I32_U,
    I64_ADD, LOCAL_TEE, A, I64_ADD, LOCAL_TEE, B, I64_ADD, LOCAL_TEE, C, I64_ADD, LOCAL_SET, D,
  ];
}

function functionBody(word: (k: number) => number[]): number[] {
  const code = [
    2, 3, 0x7f, 4, 0x7e, // locals: 3 × i32 ($p $end $w), 4 × i64 ($a $b $c $d)
    I32_CONST, 0, I64_LOAD, 3, 0, LOCAL_SET, A,
    I32_CONST, 0, I64_LOAD, 3, 8, LOCAL_SET, B,
    I32_CONST, 0, I64_LOAD, 3, 16, LOCAL_SET, C,
    I32_CONST, 0, I64_LOAD, 3, 24, LOCAL_SET, D,
    I32_CONST, WINDOW_OFFSET, LOCAL_SET, P,
    LOCAL_GET, LEN, I32_CONST, WINDOW_OFFSET, I32_ADD, LOCAL_SET, END_PTR,
    BLOCK, VOID, LOOP, VOID,
    LOCAL_GET, P, I32_CONST, 16, I32_ADD, LOCAL_GET, END_PTR, I32_GT_U, BR_IF, 1,
    ...word(0), ...word(4), ...word(8), ...word(12),
    LOCAL_GET, P, I32_CONST, 16, I32_ADD, LOCAL_SET, P,
    BR, 0, END, END,
    BLOCK, VOID, LOOP, VOID,
    LOCAL_GET, P, LOCAL_GET, END_PTR, I32_GE_U, BR_IF, 1,
    ...word(0),
    LOCAL_GET, P, I32_CONST, 4, I32_ADD, LOCAL_SET, P,
    BR, 0, END, END,
    I32_CONST, 0, LOCAL_GET, A, I64_STORE, 3, 0,
    I32_CONST, 0, LOCAL_GET, B, I64_STORE, 3, 8,
    I32_CONST, 0, LOCAL_GET, C, I64_STORE, 3, 16,
    I32_CONST, 0, LOCAL_GET, D, I64_STORE, 3, 24,
    END,
  ];
  return [...uleb(code.length), ...code];
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    out.push(n === 0 ? low : low | 0x80);
  } while (n !== 0);
  return out;
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

const ascii = (s: string): number[] => [s.length, ...Array.from(s, (ch) => ch.charCodeAt(0))];

function moduleBytes(): Uint8Array {
  const le = functionBody(wordLE);
  const be = functionBody(wordBE);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 1, 0x7f, 0]), // types: [ (func (param i32)) ]
    ...section(3, [2, 0, 0]), // functions: two of type 0
    ...section(5, [1, 0x00, MEMORY_PAGES]), // memory: min 17 pages, no max
    ...section(7, [3, ...ascii('memory'), 0x02, 0, ...ascii('le'), 0x00, 0, ...ascii('be'), 0x00, 1]),
    ...section(10, [2, ...le, ...be]),
  ]);
}

interface Kernel {
  memory: Uint8Array;
  le: (len: number) => void;
  be: (len: number) => void;
}

/**
 * The slice of the WebAssembly JS API used here. Declared locally (module scope, so it shadows
 * nothing global) because neither lib ES2023 nor @types/node 20 types it.
 */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};

let kernel: Kernel | undefined;

/** One instance per thread (module state); compiled on first use, synchronously (it is tiny). */
function getKernel(): Kernel {
  if (!kernel) {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), {});
    const exports = instance.exports as { memory: { buffer: ArrayBuffer }; le: Kernel['le']; be: Kernel['be'] };
    // The memory never grows, so this view stays valid.
    kernel = { memory: new Uint8Array(exports.memory.buffer), le: exports.le, be: exports.be };
  }
  return kernel;
}

/**
 * A running fletcher-4 state. `update()` treats its input as one continuous byte sequence: a
 * partial 32-bit word at the end of one call is completed by the next, so a logical buffer may be
 * fed in pieces of any size. ZFS ignores 1–3 trailing bytes of each *logical* buffer it sums;
 * call `endBuffer()` where such a buffer ends to drop them.
 */
export class Fletcher4 {
  /** a, b, c, d as little-endian u64s: the same bytes the WebAssembly kernel keeps. */
  private readonly state = new Uint8Array(STATE_BYTES);
  private readonly partial = new Uint8Array(4);
  private partialLength = 0;
  private streamLittleEndian: boolean;

  /** `littleEndian`: byte order of the 32-bit words, i.e. of the stream being summed. */
  constructor(littleEndian = true) {
    this.streamLittleEndian = littleEndian;
  }

  /** Checksum of one complete logical buffer from a zero state. */
  static of(data: Uint8Array, littleEndian = true): Fletcher4Words {
    return new Fletcher4(littleEndian).update(data).endBuffer().digest();
  }

  get littleEndian(): boolean {
    return this.streamLittleEndian;
  }

  /** Bytes of an incomplete word carried over to the next `update()` (0..3). */
  get pendingBytes(): number {
    return this.partialLength;
  }

  /** Back to the zero state, optionally switching byte order (every BEGIN re-detects it). */
  reset(littleEndian = this.streamLittleEndian): this {
    this.state.fill(0);
    this.partialLength = 0;
    this.streamLittleEndian = littleEndian;
    return this;
  }

  update(data: Uint8Array): this {
    const length = data.length;
    if (length === 0) return this;
    let pos = 0;
    if (this.partialLength > 0) {
      pos = Math.min(4 - this.partialLength, length);
      this.partial.set(data.subarray(0, pos), this.partialLength);
      this.partialLength += pos;
      if (this.partialLength < 4) return this;
    }
    const k = getKernel();
    const sum = this.streamLittleEndian ? k.le : k.be;
    k.memory.set(this.state, 0);
    if (this.partialLength === 4) {
      k.memory.set(this.partial, WINDOW_OFFSET);
      sum(4);
      this.partialLength = 0;
    }
    while (length - pos >= 4) {
      const piece = Math.min(length - pos, WINDOW_BYTES) & ~3;
      k.memory.set(data.subarray(pos, pos + piece), WINDOW_OFFSET);
      sum(piece);
      pos += piece;
    }
    this.state.set(k.memory.subarray(0, STATE_BYTES));
    if (pos < length) {
      this.partial.set(data.subarray(pos), 0);
      this.partialLength = length - pos;
    }
    return this;
  }

  /** End of a logical buffer: drop its 1–3 trailing bytes, as ZFS does. */
  endBuffer(): this {
    this.partialLength = 0;
    return this;
  }

  /** Current (a, b, c, d); bytes of an incomplete trailing word are not included. */
  digest(): Fletcher4Words {
    const view = new DataView(this.state.buffer, this.state.byteOffset, STATE_BYTES);
    return [
      view.getBigUint64(0, true),
      view.getBigUint64(8, true),
      view.getBigUint64(16, true),
      view.getBigUint64(24, true),
    ];
  }

  /** Does the state equal the 4 × u64 stored at `buf[offset..offset+32)` in the stream's byte order? */
  matches(buf: Uint8Array, offset: number): boolean {
    const s = this.state;
    if (this.streamLittleEndian) {
      for (let i = 0; i < STATE_BYTES; i++) if (buf[offset + i] !== s[i]) return false;
    } else {
      for (let i = 0; i < STATE_BYTES; i++) if (buf[offset + i] !== s[(i & ~7) + 7 - (i & 7)]) return false;
    }
    return true;
  }

  /** Store the state as 4 × u64 in the stream's byte order (how ZFS writes checksums). */
  writeTo(buf: Uint8Array, offset: number): void {
    const s = this.state;
    for (let i = 0; i < STATE_BYTES; i++) {
      buf[offset + i] = this.streamLittleEndian ? s[i]! : s[(i & ~7) + 7 - (i & 7)]!;
    }
  }
}
