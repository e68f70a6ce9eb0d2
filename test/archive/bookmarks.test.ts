/** Per-target base protection (issue 19): bookmark names, the bases a target may use, what it removes, what is reported. */
import { describe, expect, it } from 'vitest';
import { selectBase } from '../../src/archive/plan/base-selection.js';
import { baseCandidates, orphanedBookmarks, parseProtectiveBookmark, planProtection, protectiveBookmark } from '../../src/archive/plan/bookmarks.js';
import type { SnapshotInfo } from '../../src/zfs/zfs.js';

const DS = 'tank/ds';
const snap = (name: string, guid: number, txg: number): SnapshotInfo => ({ name: `${DS}@${name}`, kind: 'snapshot', guid: BigInt(guid), createtxg: BigInt(txg), creation: txg });
const mark = (name: string, guid: number, txg: number): SnapshotInfo => ({ name: `${DS}#${name}`, kind: 'bookmark', guid: BigInt(guid), createtxg: BigInt(txg), creation: txg });
const A = 'aaaa0001';
const B = 'bbbb0002';

describe('protective bookmark names', () => {
  it('carry the target id; without one they are the legacy name', () => {
    expect(protectiveBookmark(DS, 's1', A)).toBe(`${DS}#zfs-offsite-${A}_s1`);
    expect(protectiveBookmark(DS, 's1')).toBe(`${DS}#zfs-offsite_s1`);
  });

  it('parse back, and never confuse the two forms or another tool', () => {
    expect(parseProtectiveBookmark(`${DS}#zfs-offsite-${A}_s_1`)).toEqual({ dataset: DS, targetId: A, snapshot: 's_1' });
    // A legacy bookmark of a snapshot whose name looks like an id is still legacy.
    expect(parseProtectiveBookmark(`${DS}#zfs-offsite_${A}_s1`)).toEqual({ dataset: DS, snapshot: `${A}_s1` });
    expect(parseProtectiveBookmark(`${DS}#zfs-offsite-XYZ_s1`)).toBeUndefined();
    expect(parseProtectiveBookmark(`${DS}#zfs-offsite-${A}_`)).toBeUndefined();
    expect(parseProtectiveBookmark(`${DS}#syncoid_s1`)).toBeUndefined();
    expect(parseProtectiveBookmark(`${DS}@zfs-offsite_s1`)).toBeUndefined();
  });
});

describe('base selection per target', () => {
  const target = snap('s3', 3, 300);
  const archived = new Map([
    ['1', { raw: false }],
    ['2', { raw: false }],
  ]);

  it("uses its own bookmark, never another target's", () => {
    const source = [mark(`zfs-offsite-${A}_s1`, 1, 100), mark(`zfs-offsite-${B}_s2`, 2, 200), target];
    expect(selectBase({ target, source: baseCandidates(source, A), archived, raw: false })?.name).toBe(`${DS}#zfs-offsite-${A}_s1`);
    expect(selectBase({ target, source: baseCandidates(source, B), archived, raw: false })?.name).toBe(`${DS}#zfs-offsite-${B}_s2`);
  });

  it('uses snapshots, legacy and other tools’ bookmarks for any target', () => {
    const source = [snap('s1', 1, 100), mark('zfs-offsite_s2', 2, 200), mark('other_s2', 2, 200), target];
    expect(
      baseCandidates(source, A)
        .map((s) => s.name)
        .sort(),
    ).toEqual([`${DS}#other_s2`, `${DS}#zfs-offsite_s2`, `${DS}@s1`, `${DS}@s3`]);
    expect(selectBase({ target, source: baseCandidates(source, B), archived, raw: false })?.guid).toBe(2n);
  });

  it('a target without an id yet (no archive) uses no target bookmark', () => {
    expect(baseCandidates([mark(`zfs-offsite-${A}_s1`, 1, 100)], undefined)).toEqual([]);
  });
});

describe('planProtection', () => {
  const bookmarks = [mark(`zfs-offsite-${A}_s1`, 1, 100), mark(`zfs-offsite-${B}_s1`, 1, 100), mark('zfs-offsite_s0', 9, 50), mark('syncoid_s1', 1, 100), mark(`zfs-offsite-${A}_s2`, 2, 200)];

  it("removes only this target's older bookmarks", () => {
    const plan = planProtection(DS, 's2', A, bookmarks, () => false);
    expect(plan).toEqual({ keep: `${DS}#zfs-offsite-${A}_s2`, remove: [`${DS}#zfs-offsite-${A}_s1`] });
  });

  it('removes a legacy bookmark only when the caller vouches for it', () => {
    expect(planProtection(DS, 's3', B, bookmarks, (b) => b.guid === 9n).remove).toEqual([`${DS}#zfs-offsite-${B}_s1`, `${DS}#zfs-offsite_s0`]);
    expect(planProtection(DS, 's3', B, bookmarks, () => false).remove).toEqual([`${DS}#zfs-offsite-${B}_s1`]);
  });

  it('never touches another dataset’s bookmarks', () => {
    const child = { ...mark(`zfs-offsite-${A}_s1`, 1, 100), name: `${DS}/child#zfs-offsite-${A}_s1` };
    expect(planProtection(DS, 's2', A, [child], () => true).remove).toEqual([]);
  });
});

describe('orphanedBookmarks', () => {
  it('names the bookmarks of targets not in the config; legacy and foreign ones are not orphans', () => {
    const source = [snap('s1', 1, 100), mark(`zfs-offsite-${A}_s1`, 1, 100), mark(`zfs-offsite-${B}_s1`, 1, 100), mark('zfs-offsite_s1', 1, 100), mark('other', 1, 100)];
    expect(orphanedBookmarks(source, new Set([A]))).toEqual([`${DS}#zfs-offsite-${B}_s1`]);
    expect(orphanedBookmarks(source, new Set([A, B]))).toEqual([]);
  });
});
