import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/streams/', import.meta.url));

/** Every real `zfs send` fixture (see test/fixtures/streams/README.md), by file name. */
export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.zfs') || f.endsWith('.zsend.bz2'))
    .sort();
}

const cache = new Map<string, Buffer>();

/** The stream bytes of a fixture (bzip2-compressed ones decompressed). */
export function fixtureBytes(name: string): Buffer {
  let bytes = cache.get(name);
  if (!bytes) {
    const path = FIXTURE_DIR + name;
    bytes = name.endsWith('.bz2') ? execFileSync('bzip2', ['-dc', path], { maxBuffer: 1 << 30 }) : readFileSync(path);
    cache.set(name, bytes);
  }
  return bytes;
}

/**
 * toguid/fromguid of the first real substream, read straight from the bytes (independent of
 * the validator under test): LE only, skipping a compound header (BEGIN + payload + END).
 */
export function firstBeginGuids(stream: Buffer): { toguid: bigint; fromguid: bigint; compound: boolean } {
  const compound = (stream.readBigUInt64LE(16) & 3n) === 2n;
  const at = compound ? 312 + stream.readUInt32LE(4) + 312 : 0;
  return { toguid: stream.readBigUInt64LE(at + 40), fromguid: stream.readBigUInt64LE(at + 48), compound };
}
