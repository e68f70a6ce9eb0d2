import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { type ContentRecord, FULL, RAW_FEATURES, streamParts } from './synthetic-stream.js';

/** Writes a raw-like (incompressible) full stream of about `mib` MiB of `toname` to `path`. */
export function writeRandomStream(path: string, mib: number, toname: string): void {
  const records: ContentRecord[] = Array.from({ length: mib * 8 }, (_, i) => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 }));
  const fd = openSync(path, 'w');
  try {
    for (const part of streamParts({ substreams: [{ ...FULL, toname, features: RAW_FEATURES, records }] })) writeSync(fd, part);
  } finally {
    closeSync(fd);
  }
}
