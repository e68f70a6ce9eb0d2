import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { planRestore } from '../../src/archive/plan/restore-plan.js';

let clock = 0;
/** A manifest with the given links (from, to, snapshot name); -I streams have several. */
function stream(id: string, links: [from: string, to: string, name: string][], opts: { raw?: boolean; dataset?: string; clone?: boolean } = {}): Manifest {
  const ds = opts.dataset ?? 'tank/ds';
  const compound = links.length > 1;
  let offset = compound ? 624 : 0;
  const substreams = links.map(([fromguid, toguid, name]) => {
    const s = {
      fromguid,
      toguid,
      toname: `${name.includes('@') ? name : `${ds}@${name}`}`,
      raw: opts.raw ?? true,
      clone: (opts.clone ?? false) && fromguid === links[0]![0],
      offset,
      bytes: 1000,
      creation: new Date(1_700_000_000_000 + clock++ * 1000).toISOString(),
    };
    offset += 1000;
    return s;
  });
  return {
    streamId: id,
    dataset: ds,
    compound,
    raw: opts.raw ?? true,
    rawBytes: offset + (compound ? 312 : 0),
    substreams,
  } as unknown as Manifest;
}

const ids = (plan: ReturnType<typeof planRestore>) => plan.units.map((u) => `${u.manifest.streamId}[${u.first}-${u.last}]${u.whole ? '' : '*'}`);
const plan = (streams: Manifest[], snapshot?: string, present: string[] = []) => planRestore({ dataset: 'tank/ds', streams, snapshot, present: new Set(present) });

describe('planRestore', () => {
  const full = stream('01-full-a', [['0', 'A', 'a']]);
  const ab = stream('02-incr-b', [['A', 'B', 'b']]);
  const bc = stream('03-incr-c', [['B', 'C', 'c']]);
  const cd = stream('04-incr-d', [['C', 'D', 'd']]);

  it('restores a linear chain to the newest snapshot by default', () => {
    const p = plan([cd, full, bc, ab]);
    expect(p.target).toEqual({ name: 'd', guid: 'D' });
    expect(ids(p)).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]', '03-incr-c[0-0]', '04-incr-d[0-0]']);
    expect(p.startsAfter).toBeNull();
    expect(p.units.map((u) => u.toname)).toEqual(['tank/ds@a', 'tank/ds@b', 'tank/ds@c', 'tank/ds@d']);
  });

  it('stops at the requested snapshot', () => {
    expect(ids(plan([full, ab, bc, cd], 'b'))).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]']);
    expect(ids(plan([full, ab, bc, cd], 'a'))).toEqual(['01-full-a[0-0]']);
  });

  it('prefers the shortest path: a newer full beats a long chain', () => {
    const fullC = stream('05-full-c', [['0', 'C', 'c']]);
    expect(ids(plan([full, ab, bc, cd, fullC], 'd'))).toEqual(['05-full-c[0-0]', '04-incr-d[0-0]']);
  });

  it('on equal length takes the newest full', () => {
    const fullA2 = stream('00-full-a-older', [['0', 'A', 'a']]);
    const fullA3 = stream('09-full-a-newer', [['0', 'A', 'a']]);
    expect(ids(plan([fullA2, fullA3, ab], 'b'))).toEqual(['09-full-a-newer[0-0]', '02-incr-b[0-0]']);
    expect(ids(plan([fullA3, fullA2, ab], 'b'))).toEqual(['09-full-a-newer[0-0]', '02-incr-b[0-0]']);
  });

  it('receives a whole -I stream as one unit, and only its first part for an intermediate snapshot', () => {
    const bcd = stream('03-incr-I-d', [
      ['B', 'C', 'c'],
      ['C', 'D', 'd'],
    ]);
    expect(ids(plan([full, ab, bcd], 'd'))).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]', '03-incr-I-d[0-1]']);
    const toC = plan([full, ab, bcd], 'c');
    expect(ids(toC)).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]', '03-incr-I-d[0-0]*']);
    // Partial compound: header (624) + the substream (1000) + conclusion END (312).
    expect(toC.units[2]!.bytes).toBe(624 + 1000 + 312);
  });

  it('enters a -I stream in the middle when the destination holds an intermediate snapshot', () => {
    const abcd = stream('02-incr-I-d', [
      ['A', 'B', 'b'],
      ['B', 'C', 'c'],
      ['C', 'D', 'd'],
    ]);
    const p = plan([full, abcd], 'd', ['A', 'B']);
    expect(ids(p)).toEqual(['02-incr-I-d[1-2]*']);
    expect(p.startsAfter).toEqual({ guid: 'B' });
  });

  it('starts after the newest snapshot the destination already holds', () => {
    const p = plan([full, ab, bc, cd], 'd', ['A', 'B']);
    expect(ids(p)).toEqual(['03-incr-c[0-0]', '04-incr-d[0-0]']);
    expect(p.startsAfter).toEqual({ guid: 'B' });
  });

  it('plans nothing when the destination already holds the target', () => {
    const p = plan([full, ab], 'b', ['A', 'B']);
    expect(p.units).toEqual([]);
    expect(p.startsAfter).toEqual({ guid: 'B' });
  });

  it('ignores destination snapshots that are not on any path (unrelated GUIDs)', () => {
    expect(ids(plan([full, ab], 'b', ['X', 'Y']))).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]']);
  });

  it('follows the right branch after a rollback on the source', () => {
    // a → b → c archived; source rolled back to b, new snapshot c2 taken: b → c2.
    const bc2 = stream('05-incr-c2', [['B', 'C2', 'c2']]);
    expect(ids(plan([full, ab, bc, bc2], 'c2'))).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]', '05-incr-c2[0-0]']);
    expect(ids(plan([full, ab, bc, bc2], 'c'))).toEqual(['01-full-a[0-0]', '02-incr-b[0-0]', '03-incr-c[0-0]']);
    expect(plan([full, ab, bc, bc2]).target.name).toBe('c2');
  });

  it('never mixes raw and non-raw links', () => {
    const plainFull = stream('01-full-a-plain', [['0', 'A', 'a']], { raw: false });
    const plainB = stream('02-incr-b-plain', [['A', 'B', 'b']], { raw: false });
    const rawC = stream('03-incr-c', [['B', 'C', 'c']], { raw: true });
    expect(() => plan([plainFull, plainB, rawC], 'c')).toThrow(/no chain of streams of one kind \(raw or not\)/);
    const rawFull = stream('00-full-a', [['0', 'A', 'a']], { raw: true });
    const rawB = stream('02-incr-b', [['A', 'B', 'b']], { raw: true });
    const p = plan([plainFull, plainB, rawFull, rawB, rawC], 'c');
    expect(ids(p)).toEqual(['00-full-a[0-0]', '02-incr-b[0-0]', '03-incr-c[0-0]']);
    expect(p.raw).toBe(true);
    expect(plan([plainFull, plainB, rawFull], 'b').raw).toBe(false);
  });

  it('names the missing link when a base stream was deleted', () => {
    expect(() => plan([full, bc, cd], 'd')).toThrow('cannot restore tank/ds@d (guid D): stream 03-incr-c needs base snapshot guid B, which no archived stream provides (missing or deleted stream)');
  });

  it('refuses snapshots that are not in the archive, and empty archives', () => {
    expect(() => plan([full, ab], 'zzz')).toThrow('snapshot tank/ds@zzz is not in the archive (see: zfs-offsite list)');
    expect(() => plan([], undefined)).toThrow('the archive holds no streams of dataset tank/ds');
  });

  it('terminates on cycles from a damaged archive', () => {
    const loop1 = stream('01-x', [['B', 'A', 'a']]);
    const loop2 = stream('02-y', [['A', 'B', 'b']]);
    expect(() => plan([loop1, loop2], 'b')).toThrow(/no chain of streams/);
  });

  it('copes with the same snapshot archived twice (duplicate GUIDs)', () => {
    const ab2 = stream('07-incr-b-again', [['A', 'B', 'b']]);
    const p = plan([full, ab, ab2, bc], 'c');
    expect(p.units).toHaveLength(3);
    expect(p.units[2]!.manifest.streamId).toBe('03-incr-c');
  });

  it('picks the newest of two snapshots that share a name (destroyed and re-created)', () => {
    const full2 = stream('08-full-b-recreated', [['0', 'B2', 'b']]);
    expect(plan([full, ab, full2], 'b').target.guid).toBe('B2');
  });

  it('restores the newest of a chain made in one second by default, whatever ids, names and GUIDs say', () => {
    const second = new Date(1_800_000_000_000).toISOString();
    const chain = Array.from({ length: 12 }, (_, i) => {
      const m = stream(`20270115T080000Z-${i === 0 ? 'full' : 'incr'}-s${i}-${String(99 - i).padStart(8, '0')}`, [[i === 0 ? '0' : `G${99 - i + 1}`, `G${99 - i}`, `s${i}`]]);
      (m.substreams[0] as { creation: string }).creation = second;
      return m;
    });
    const catalogOrder = [...chain].sort((a, b) => a.streamId.localeCompare(b.streamId));
    const p = plan(catalogOrder);
    expect(p.target).toEqual({ name: 's11', guid: 'G88' });
    expect(p.units.map((u) => u.manifest)).toEqual(chain);
  });

  it('on equal length takes the newest full by the snapshot order, not by stream id', () => {
    // Two fulls of one second; createtxg says which is newer, the ids (names) say the opposite.
    const older = stream('20270101T000000Z-full-zzz', [['0', 'X', 'zzz']]);
    const newer = stream('20270101T000000Z-full-aaa', [['0', 'Y', 'aaa']]);
    const fromOlder = stream('20270101T000001Z-incr-t-1', [['X', 'T', 't']]);
    const fromNewer = stream('20270101T000001Z-incr-t-2', [['Y', 'T', 't']]);
    for (const [m, txg] of [
      [older, '10'],
      [newer, '20'],
      [fromOlder, '30'],
      [fromNewer, '30'],
    ] as const) {
      Object.assign(m.substreams[0]!, { createtxg: txg, creation: '2027-01-01T00:00:00.000Z' });
    }
    expect(ids(plan([older, newer, fromOlder, fromNewer], 't'))).toEqual(['20270101T000000Z-full-aaa[0-0]', '20270101T000001Z-incr-t-2[0-0]']);
    expect(ids(plan([fromNewer, fromOlder, newer, older], 't'))).toEqual(['20270101T000000Z-full-aaa[0-0]', '20270101T000001Z-incr-t-2[0-0]']);
  });

  it('treats a multi-dataset -R package as one whole unit', () => {
    const r = stream('01-full-R', [
      ['0', 'A', 'a'],
      ['0', 'K', 'tank/ds/child@a'],
    ]);
    const p = plan([r, ab], 'b');
    expect(ids(p)).toEqual(['01-full-R[0-1]', '02-incr-b[0-0]']);
    expect(p.units[0]!.toname).toBe('tank/ds@a');
  });

  it("starts a clone's chain at its origin when the destination pool holds it", () => {
    const zone = stream(
      '01-incr-I-snap',
      [
        ['ORIGIN', 'Z1', 'z1'],
        ['Z1', 'Z2', 'z2'],
      ],
      { clone: true, dataset: 'tank/ds' },
    );
    expect(() => plan([zone], 'z2')).toThrow(/it is a clone, and its origin \(snapshot guid ORIGIN\) is not in the destination pool; restore the origin's dataset first/);
    const p = planRestore({ dataset: 'tank/ds', streams: [zone], snapshot: 'z2', origins: new Set(['ORIGIN', 'OTHER']) });
    expect(ids(p)).toEqual(['01-incr-I-snap[0-1]']);
    expect(p.startsAfter).toEqual({ guid: 'ORIGIN' });
  });

  it('never starts a non-clone incremental from a snapshot of another dataset', () => {
    const incr = stream('02-incr-b', [['A', 'B', 'b']]);
    expect(() => planRestore({ dataset: 'tank/ds', streams: [incr], snapshot: 'b', origins: new Set(['A']) })).toThrow(/needs base snapshot guid A/);
  });
});
