import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { baseOf, linksByFrom, linksByTo, linksOf, mainSubstreams, ownLinksOf, streamsByToGuid } from '../../src/archive/plan/chain-graph.js';

/** A manifest with the given substreams (from, to, `dataset@snap`). */
function stream(id: string, subs: [from: string, to: string, toname: string][], raw = false): Manifest {
  return {
    streamId: id,
    dataset: 'tank/ds',
    raw,
    substreams: subs.map(([fromguid, toguid, toname]) => ({ fromguid, toguid, toname, raw, clone: false, creation: '2026-01-01T00:00:00.000Z' })),
  } as unknown as Manifest;
}

const steps = (links: { from: string; to: string; wholeOnly: boolean; index: number }[]) => links.map((l) => `${l.from}>${l.to}${l.wholeOnly ? ' whole' : ''} @${l.index}`);

describe('chain graph', () => {
  const full = stream('01-full-a', [['0', 'A', 'tank/ds@a']]);
  const incI = stream('02-incr-c', [
    ['A', 'B', 'tank/ds@b'],
    ['B', 'C', 'tank/ds@c'],
  ]);
  // -R -I package: own substreams a→b→c, a child's in between.
  const pkg = stream(
    '03-incr-R',
    [
      ['A', 'B', 'tank/ds@b'],
      ['KA', 'KB', 'tank/ds/kid@b'],
      ['B', 'C', 'tank/ds@c'],
    ],
    true,
  );

  it('gives a -I stream one link per substream, which a restore may cut between', () => {
    expect(steps(linksOf(incI))).toEqual(['A>B @0', 'B>C @1']);
  });

  it('gives a multi-dataset -R package one whole link to its own last snapshot', () => {
    const [link, ...rest] = linksOf(pkg);
    expect(rest).toEqual([]);
    expect(steps([link!])).toEqual(['A>C whole @2']);
    expect(link).toMatchObject({ raw: true, toname: 'tank/ds@c' });
  });

  it('keeps every own snapshot of a package for the snapshot order, never a child', () => {
    expect(mainSubstreams(pkg).map((s) => s.toguid)).toEqual(['B', 'C']);
    expect(steps(ownLinksOf(pkg))).toEqual(['A>B @0', 'B>C @2']);
  });

  it('indexes links by base and by target in input order', () => {
    const links = [full, incI, pkg].flatMap(linksOf);
    expect([...linksByFrom(links).get('A')!].map((l) => l.manifest.streamId)).toEqual(['02-incr-c', '03-incr-R']);
    expect([...linksByTo(links).get('C')!].map((l) => l.manifest.streamId)).toEqual(['02-incr-c', '03-incr-R']);
    expect(
      linksByFrom(links)
        .get('0')!
        .map((l) => l.to),
    ).toEqual(['A']);
  });

  it('knows which stream leads to any snapshot, children of a package included', () => {
    const by = streamsByToGuid([full, pkg]);
    expect(by.get('KB')?.streamId).toBe('03-incr-R');
    expect(by.get('A')?.streamId).toBe('01-full-a');
    expect([baseOf(full), baseOf(pkg)]).toEqual(['0', 'A']);
  });
});
