import { UsageError } from './errors.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90s", "30m", "6h", "7d", "2w" or "0" into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$/i.exec(text);
  if (!m || (m[2] === '' && Number(m[1]) !== 0)) {
    throw new UsageError(`invalid ${what}: ${JSON.stringify(text)} (expected e.g. 30m, 6h, 7d)`);
  }
  return Math.round(Number(m[1]) * (UNIT_MS[m[2]!.toLowerCase()] ?? 0));
}
