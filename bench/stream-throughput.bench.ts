/**
 * Throughput of the checksum and the validator (they run inline on every archived byte).
 * Part of `npm run bench`; measures, asserts nothing about speed.
 * Quick by default; `STREAM_BENCH=1 npm run bench` uses the full sizes
 * (256 MiB for fletcher-4, 1 GiB of large WRITE records for the validator).
 */
import { describe, expect, it } from 'vitest';
import { Fletcher4 } from '../src/stream/fletcher4.js';
import { Feature, RECORD_SIZE } from '../src/stream/records.js';
import { StreamValidator } from '../src/stream/validator.js';
import { concat, FULL, patternBytes, streamParts, writeRecords } from '../test/support/synthetic-stream.js';

const FULL_SIZE = process.env.STREAM_BENCH === '1';
const MiB = 1024 * 1024;

function mibPerSecond(bytes: number, run: () => void, repeats = 3): number {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return bytes / MiB / (best / 1000);
}

describe('throughput', () => {
  it('fletcher-4', () => {
    const size = (FULL_SIZE ? 256 : 32) * MiB;
    const buf = patternBytes(size, 1);
    for (const littleEndian of [true, false]) {
      const rate = mibPerSecond(size, () => Fletcher4.of(buf, littleEndian));
      console.log(`fletcher-4 ${littleEndian ? 'LE' : 'BE'} on ${size / MiB} MiB: ${rate.toFixed(0)} MiB/s`);
    }
  });

  it('validator on large WRITE records', { timeout: 120_000 }, () => {
    const total = (FULL_SIZE ? 1024 : 64) * MiB;
    const cases = [
      [128 * 1024, true],
      [1 * MiB, true],
      [16 * MiB, true],
      [1 * MiB, false],
    ] as const;
    for (const [recordSize, littleEndian] of cases) {
      const block = patternBytes(recordSize, 2);
      const records = writeRecords(total / recordSize, block);
      const spec = { littleEndian, substreams: [{ ...FULL, features: Feature.SA_SPILL | Feature.LARGE_BLOCKS, records }] };
      const stream = concat([...streamParts(spec)]);
      expect(stream.length).toBe(total + (total / recordSize + 2) * RECORD_SIZE);
      for (const chunkSize of [64 * 1024, 64 * MiB]) {
        const rate = mibPerSecond(
          stream.length,
          () => {
            const v = new StreamValidator();
            for (let pos = 0; pos < stream.length; pos += chunkSize) v.push(stream.subarray(pos, pos + chunkSize));
            v.finish();
          },
          2,
        );
        console.log(`validator (${littleEndian ? 'LE' : 'BE'}): ${(stream.length / MiB) | 0} MiB of ${recordSize / 1024} KiB WRITEs ` + `in ${chunkSize / 1024} KiB chunks: ${rate.toFixed(0)} MiB/s`);
      }
    }
  });
});
