import { describe, expect, it } from 'vitest';
import { decideFull, protectiveBookmark, snapshotName } from '../../src/archive/plan/cadence.js';
import type { Manifest } from '../../src/archive/format/manifest.js';

const DAY = 86_400_000;
const now = new Date('2026-11-22T02:00:00Z');
let n = 0;
function stream(kind: 'full' | 'incr', from: string, to: string, daysAgo: number): Manifest {
  const finishedAt = new Date(now.getTime() - daysAgo * DAY).toISOString();
  return {
    streamId: `${String(n++).padStart(3, '0')}-${kind}`,
    kind,
    finishedAt,
    raw: true,
    compound: false,
    rawBytes: 1,
    substreams: [{ fromguid: from, toguid: to, toname: `tank/ds@${to}`, raw: true, offset: 0, bytes: 1, creation: finishedAt }],
  } as unknown as Manifest;
}

describe('decideFull', () => {
  const chain = [stream('full', '0', 'a', 10), stream('incr', 'a', 'b', 9), stream('incr', 'b', 'c', 8)];

  it('sends a full when the archive has none', () => {
    expect(decideFull('tank/ds', [], {}, now)).toEqual({ full: true, reason: 'the archive holds no full stream of this dataset' });
  });

  it('sends incrementals by default', () => {
    expect(decideFull('tank/ds', chain, {}, now).full).toBe(false);
  });

  it('honours full_every from the newest full', () => {
    expect(decideFull('tank/ds', chain, { fullEveryMs: 10 * DAY }, now)).toMatchObject({ full: true, reason: expect.stringMatching(/10 day\(s\) ago/) });
    expect(decideFull('tank/ds', chain, { fullEveryMs: 11 * DAY }, now).full).toBe(false);
    const withNewFull = [...chain, stream('full', '0', 'd', 1)];
    expect(decideFull('tank/ds', withNewFull, { fullEveryMs: 7 * DAY }, now).full).toBe(false);
  });

  it('honours max_chain on the chain of the newest snapshot', () => {
    expect(decideFull('tank/ds', chain, { maxChain: 2 }, now)).toMatchObject({ full: true, reason: expect.stringMatching(/2 incremental/) });
    expect(decideFull('tank/ds', chain, { maxChain: 3 }, now).full).toBe(false);
  });

  it('starts over when the newest snapshot is not restorable', () => {
    const broken = [stream('full', '0', 'a', 10), stream('incr', 'x', 'y', 1)];
    expect(decideFull('tank/ds', broken, { maxChain: 5 }, now)).toMatchObject({ full: true, reason: expect.stringMatching(/broken chain/) });
  });
});

describe('names', () => {
  it('makes sortable snapshot names and protective bookmarks', () => {
    expect(snapshotName('offsite', now)).toBe('offsite_20261122T020000Z');
    expect(protectiveBookmark('tank/ds', 'offsite_20261122T020000Z')).toBe('tank/ds#zfs-offsite_offsite_20261122T020000Z');
  });
});
