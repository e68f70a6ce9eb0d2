import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DrrType, RECORD_SIZE } from '../../src/stream/records.js';
import { buildStream, compoundSpec, FULL, minimalFullStream, MINIMAL_FULL_SHA256, xdrNvlist } from '../support/synthetic-stream.js';

/** Real `zfs send -Rcew -i` output from the OpenZFS test suite (see test/fixtures/streams/README.md). */
function realCompoundStream(): Uint8Array {
  const file = fileURLToPath(new URL('../fixtures/streams/openzfs-little-endian-all-drr-types-incr-NATIVE.zsend.bz2', import.meta.url));
  return execFileSync('bzip2', ['-dc', file], { maxBuffer: 64 << 20 });
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('synthetic stream builder', () => {
  it('reproduces the golden minimal full stream byte for byte', () => {
    const bytes = minimalFullStream();
    expect(bytes.length).toBe(624);
    expect(sha256(bytes)).toBe(MINIMAL_FULL_SHA256);
    // The END checksum and trailing checksum of the golden minimal stream.
    const view = new DataView(bytes.buffer);
    expect([8, 16, 24, 32].map((o) => view.getBigUint64(312 + o, true))).toEqual([0x250e20833n, 0xa3ccd0aa5dn, 0x17126d7b90e6n, 0x2352de6a35f80n]);
    expect([0, 8, 16, 24].map((o) => view.getBigUint64(312 + 280 + o, true))).toEqual([0x506fa5e78n, 0x1f35e6dbe89n, 0x7062d8812ca3n, 0x12bbf42f26b93bn]);
  });

  it('builds the full recipe in 2,384 bytes', () => {
    const { bytes, records } = buildStream({ substreams: [FULL] });
    expect(bytes.length).toBe(2384);
    expect(records.map((r) => r.type)).toEqual([DrrType.BEGIN, DrrType.OBJECT, DrrType.FREE, DrrType.WRITE, DrrType.FREEOBJECTS, DrrType.END]);
    expect(records[3]).toMatchObject({ offset: 3 * RECORD_SIZE, payloadLength: 512 });
  });

  it('frames a compound stream like libzfs: header END with zero trailing checksum, all-zero conclusion', () => {
    const { bytes, records } = buildStream(compoundSpec());
    const headerEnd = records[1]!;
    expect(headerEnd.type).toBe(DrrType.END);
    expect(bytes.subarray(headerEnd.offset + 280, headerEnd.offset + 312).every((b) => b === 0)).toBe(true);
    const conclusion = bytes.subarray(bytes.length - RECORD_SIZE);
    expect(conclusion[0]).toBe(5);
    expect(conclusion.subarray(1).every((b) => b === 0)).toBe(true);
  });

  it('encodes XDR nvlists exactly as libzfs does (checked against a real compound header)', () => {
    // The header nvlist of the openzfs -Rcew fixture starts with tosnap="clean" and raw.
    const real = realCompoundStream();
    const mine = xdrNvlist({ tosnap: 'clean', raw: true });
    const prefix = mine.length - 8; // everything but the list terminator
    expect(hex(mine.subarray(0, prefix))).toBe(hex(real.subarray(RECORD_SIZE, RECORD_SIZE + prefix)));
    // A uint64 pair as it appears inside that header's fss entry.
    const origin = xdrNvlist({ origin: 0x421d0579cc63e574n }).subarray(12, 12 + 36);
    expect(hex(real.subarray(RECORD_SIZE, RECORD_SIZE + 988))).toContain(hex(origin));
    expect(xdrNvlist({ a: 1n }, { padTo8: true }).length % 8).toBe(0);
  });
});
