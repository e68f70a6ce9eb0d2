import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parses "64M", "64MiB", "1g", "1048576" (binary units). */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid ${what}: ${JSON.stringify(text)} (expected e.g. 64M, 1G, 1048576)`);
  return Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatRatio(stored: number, raw: number): string {
  return raw === 0 ? '-' : `${((stored / raw) * 100).toFixed(1)}%`;
}

/**
 * Copies `bytes` into `target` at `at`. Buffer.copy is a plain memcpy; TypedArray.set into a
 * view of a SharedArrayBuffer (our chunk buffers, archive/pipeline/shared-buffer-pool.ts) takes
 * V8's relaxed-atomic copy, measured ≈ 5× slower: on restore it was the main thread's largest
 * cost after the garbage collector (bench/README.md, "Restore CPU").
 */
export function copyInto(target: Uint8Array, bytes: Uint8Array, at: number): void {
  const from = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  from.copy(target, at);
}
