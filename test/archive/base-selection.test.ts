import { describe, expect, it } from 'vitest';
import { selectBase } from '../../src/archive/plan/base-selection.js';
import type { SnapshotInfo } from '../../src/zfs/zfs.js';

const snap = (name: string, guid: bigint, txg: bigint, kind: SnapshotInfo['kind'] = 'snapshot'): SnapshotInfo => ({
  name: `tank/ds${kind === 'snapshot' ? '@' : '#'}${name}`,
  kind,
  guid,
  createtxg: txg,
  creation: Number(txg),
});

const s1 = snap('s1', 11n, 100n);
const s2 = snap('s2', 22n, 200n);
const s3 = snap('s3', 33n, 300n);
const s4 = snap('s4', 44n, 400n);
const archivedRaw = (...guids: bigint[]) => new Map(guids.map((g) => [g.toString(), { raw: true }]));

describe('selectBase', () => {
  it('sends a full when the archive holds nothing', () => {
    expect(selectBase({ target: s3, source: [s1, s2, s3], archived: new Map(), raw: true })).toBeUndefined();
  });

  it('picks the newest archived snapshot that still exists and is older than the target', () => {
    expect(selectBase({ target: s4, source: [s1, s2, s3, s4], archived: archivedRaw(11n, 22n), raw: true })).toBe(s2);
  });

  it('never picks the target itself or anything newer', () => {
    expect(selectBase({ target: s2, source: [s1, s2, s3], archived: archivedRaw(11n, 22n, 33n), raw: true })).toBe(s1);
  });

  it('falls back to a bookmark when the archived snapshot is gone from the source', () => {
    const bm = snap('s2', 22n, 200n, 'bookmark');
    expect(selectBase({ target: s4, source: [s1, bm, s3, s4], archived: archivedRaw(11n, 22n), raw: true })).toBe(bm);
  });

  it('prefers a snapshot over its own bookmark', () => {
    const bm = snap('s2', 22n, 200n, 'bookmark');
    expect(selectBase({ target: s4, source: [bm, s2, s4], archived: archivedRaw(22n), raw: true })).toBe(s2);
    expect(selectBase({ target: s4, source: [s2, bm, s4], archived: archivedRaw(22n), raw: true })).toBe(s2);
  });

  it('ignores archived snapshots that no longer exist on the source (diverged/destroyed)', () => {
    expect(selectBase({ target: s4, source: [s1, s4], archived: archivedRaw(22n, 33n), raw: true })).toBeUndefined();
  });

  it('never mixes raw and non-raw links', () => {
    const plain = new Map([
      ['22', { raw: false }],
      ['11', { raw: true }],
    ]);
    expect(selectBase({ target: s4, source: [s1, s2, s4], archived: plain, raw: true })).toBe(s1);
    expect(selectBase({ target: s4, source: [s1, s2, s4], archived: plain, raw: false })).toBe(s2);
  });

  it('does not trust names: a recreated snapshot with the same name but another GUID is no base', () => {
    const recreated = snap('s2', 99n, 250n);
    expect(selectBase({ target: s4, source: [s1, recreated, s4], archived: archivedRaw(11n, 22n), raw: true })).toBe(s1);
  });
});
