import type { ObjectInfo } from '../../storage/backend.js';
import { chunkName } from './keys.js';
import { chunkDigest } from './stream-index.js';

/** Below 2³² − 1: an index kept in a Uint32Array slot. */
const MAX_INDEX = 0xffff_fffe;

/** The chunk index `name` is the canonical name of (chunkName), else undefined. */
export function chunkIndexOfName(name: string): number | undefined {
  if (name.length < 10 || !name.endsWith('.zst')) return undefined;
  for (let i = 0; i < name.length - 4; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  const index = Number(name.slice(0, -4));
  return index <= MAX_INDEX && chunkName(index) === name ? index : undefined;
}

/**
 * The objects a listing showed in one stream directory, in ≈ 24 bytes a chunk (issue 17: peak
 * RSS ≤ 256 MiB for a stream of 500,000 chunks; an ObjectInfo with its key and Date costs
 * 150–200 bytes, and a Map of names as much again). Objects named as chunks (`NNNNNN.zst`,
 * format/keys.ts chunkName) are kept as their index, stored size and modification time in typed
 * arrays; every other object (manifest, SHA256SUMS, journal, attachments, strays) as listed.
 * Chunk ETags are not kept: nothing decides on them from a listing of a stream directory.
 *
 * Looked up by name it answers as a Map of the listing would: the last object listed under a
 * name wins, names come in the order they were first listed. `count`, `bytes` and the times
 * count every entry listed, as the list of ObjectInfos did.
 */
export class ListedObjects {
  private n = 0;
  private index = new Uint32Array(16);
  private sizes = new Float64Array(16);
  private times = new Float64Array(16);
  /** Position of each chunk entry in the listing (for names in listing order). */
  private seqs = new Uint32Array(16);
  /** Non-chunk objects by name, with the position they were first listed at. */
  private readonly others = new Map<string, { info: ObjectInfo; seq: number }>();
  private sealed = true;
  private listed = 0;
  private total = 0;
  private newestKnown = Number.NEGATIVE_INFINITY;
  private unknownTimes = 0;

  constructor(readonly prefix: string) {}

  /** One listed object of this directory (its key starts with `prefix`). */
  add(info: ObjectInfo): void {
    const name = info.key.slice(this.prefix.length);
    const seq = this.listed++;
    this.total += info.size;
    const t = info.modified?.getTime();
    if (t === undefined) this.unknownTimes++;
    else this.newestKnown = Math.max(this.newestKnown, t);
    const i = chunkIndexOfName(name);
    if (i === undefined) {
      const had = this.others.get(name);
      this.others.set(name, { info, seq: had ? had.seq : seq });
      return;
    }
    if (this.n === this.index.length) this.grow(this.n * 2);
    this.index[this.n] = i;
    this.sizes[this.n] = info.size;
    this.times[this.n] = t ?? Number.NaN;
    this.seqs[this.n] = seq;
    if (this.n > 0 && this.index[this.n - 1]! >= i) this.sealed = false;
    this.n++;
  }

  private grow(capacity: number): void {
    const more = <T extends Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a.subarray(0, this.n));
      return b;
    };
    this.index = more(this.index, (c) => new Uint32Array(c));
    this.sizes = more(this.sizes, (c) => new Float64Array(c));
    this.times = more(this.times, (c) => new Float64Array(c));
    this.seqs = more(this.seqs, (c) => new Uint32Array(c));
  }

  /**
   * Chunk entries sorted by index, one per index: the values listed last under it, the
   * position listed first (a Map's order). A listing in key order needs no sorting.
   */
  private seal(): void {
    if (this.sealed) return;
    this.sealed = true;
    const order = Uint32Array.from({ length: this.n }, (_, k) => k).sort((a, b) => this.index[a]! - this.index[b]! || a - b);
    const index = new Uint32Array(this.n);
    const sizes = new Float64Array(this.n);
    const times = new Float64Array(this.n);
    const seqs = new Uint32Array(this.n);
    let m = 0;
    for (const k of order) {
      if (m > 0 && index[m - 1] === this.index[k]) {
        sizes[m - 1] = this.sizes[k]!;
        times[m - 1] = this.times[k]!;
        continue;
      }
      index[m] = this.index[k]!;
      sizes[m] = this.sizes[k]!;
      times[m] = this.times[k]!;
      seqs[m] = this.seqs[k]!;
      m++;
    }
    this.index = index;
    this.sizes = sizes;
    this.times = times;
    this.seqs = seqs;
    this.n = m;
  }

  /** Where chunk `i` is among the sorted entries, or −1. */
  private find(i: number): number {
    this.seal();
    if (i < this.n && this.index[i] === i) return i; // a whole stream lists as 0 … n−1
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.index[mid]!;
      if (at === i) return mid;
      if (at < i) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Entries listed, duplicates included (what a list of the listing's objects has as length). */
  get count(): number {
    return this.listed;
  }

  /** Sum of the sizes of every entry listed. */
  get bytes(): number {
    return this.total;
  }

  /** Newest modification time listed (ms); undefined when no entry has one. */
  get newest(): number | undefined {
    return this.newestKnown === Number.NEGATIVE_INFINITY ? undefined : this.newestKnown;
  }

  /** Whether some entry was listed without a modification time. */
  get someTimeUnknown(): boolean {
    return this.unknownTimes > 0;
  }

  /** The size listed under `name`, the last one listed under it. */
  sizeOf(name: string): number | undefined {
    const i = chunkIndexOfName(name);
    return i === undefined ? this.others.get(name)?.info.size : this.chunkSize(i);
  }

  /** As listed, for a name that is not a chunk's (manifest, SHA256SUMS, journal, attachment). */
  info(name: string): ObjectInfo | undefined {
    return this.others.get(name)?.info;
  }

  has(name: string): boolean {
    const i = chunkIndexOfName(name);
    return i === undefined ? this.others.has(name) : this.find(i) >= 0;
  }

  /** Stored size listed for chunk `i`, or undefined when none was listed. */
  chunkSize(i: number): number | undefined {
    const at = this.find(i);
    return at < 0 ? undefined : this.sizes[at];
  }

  /**
   * The names listed, each once, in the order first listed, leaving out the chunks 0 … below − 1
   * (those a manifest of `below` chunks names): what is left to check for strays.
   */
  namesBeyond(below: number): string[] {
    this.seal();
    const found: { name: string; seq: number }[] = [];
    for (const [name, o] of this.others) found.push({ name, seq: o.seq });
    for (let k = 0; k < this.n; k++) if (this.index[k]! >= below) found.push({ name: chunkName(this.index[k]!), seq: this.seqs[k]! });
    return found.sort((a, b) => a.seq - b.seq).map((f) => f.name);
  }

  /** Every name listed, each once, in the order first listed. */
  names(): string[] {
    return this.namesBeyond(0);
  }

  /**
   * format/stream-index.ts chunkDigest of the chunk objects listed, when exactly chunks 0 … count − 1
   * are among them; else undefined.
   */
  chunkDigest(count: number): string | undefined {
    this.seal();
    for (let i = 0; i < count; i++) if (this.find(i) < 0) return undefined;
    const sizeOf = (i: number): number => this.sizes[this.find(i)]!;
    return chunkDigest(
      (function* () {
        for (let i = 0; i < count; i++) yield { key: chunkName(i), storedSize: sizeOf(i) };
      })(),
    );
  }
}
