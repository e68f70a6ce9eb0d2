import { describe, expect, it } from 'vitest';
import { buildChains } from '../../src/archive/plan/chains.js';
import { makeStreamId } from '../../src/archive/format/keys.js';
import type { Manifest } from '../../src/archive/format/manifest.js';

function stream(id: string, links: [from: string, to: string, name: string][]): Manifest {
  return {
    streamId: id,
    substreams: links.map(([fromguid, toguid, name]) => ({ fromguid, toguid, toname: `tank/ds@${name}` })),
  } as unknown as Manifest;
}

describe('buildChains', () => {
  it('links incrementals to their full by GUID, in time order', () => {
    const full = stream('1-full', [['0', '10', 'a']]);
    const i1 = stream('2-incr', [['10', '20', 'b']]);
    const i2 = stream('3-incr', [
      ['20', '30', 'c'],
      ['30', '40', 'd'],
    ]); // -I stream: two links
    const { chains, broken } = buildChains([i2, full, i1]);
    expect(broken).toEqual([]);
    expect(chains).toHaveLength(1);
    expect(chains[0]!.streams.map((s) => s.streamId)).toEqual(['1-full', '2-incr', '3-incr']);
    expect(chains[0]!.snapshots).toEqual(['a', 'b', 'c', 'd']);
  });

  it('lists a chain made in one second in chain order (s8 → s9 → s10 → s11), not by stream id', () => {
    const second = Date.UTC(2026, 5, 1) / 1000;
    const chain = Array.from({ length: 12 }, (_, i) =>
      stream(makeStreamId(second, i === 0 ? 'full' : 'incr', `s${i}`, BigInt(1000 + i)), [[i === 0 ? '0' : String(1000 + i - 1), String(1000 + i), `s${i}`]]),
    );
    const catalogOrder = [...chain].sort((a, b) => a.streamId.localeCompare(b.streamId));
    const { chains } = buildChains(catalogOrder);
    expect(chains).toHaveLength(1);
    expect(chains[0]!.snapshots).toEqual(chain.map((_, i) => `s${i}`));
    expect(chains[0]!.streams).toEqual(chain);
  });

  it('keeps separate fulls as separate chains', () => {
    const { chains } = buildChains([stream('1', [['0', '10', 'a']]), stream('2', [['10', '20', 'b']]), stream('3', [['0', '30', 'c']])]);
    expect(chains.map((c) => c.root!.streamId)).toEqual(['1', '3']);
  });

  it('reports incrementals whose base is not archived as broken', () => {
    const { chains, broken } = buildChains([stream('1', [['0', '10', 'a']]), stream('2', [['99', '20', 'b']]), stream('3', [['20', '30', 'c']])]);
    expect(chains).toHaveLength(1);
    expect(broken.map((b) => b.streamId)).toEqual(['2', '3']);
  });

  it('survives cycles from edited manifests', () => {
    const { chains, broken } = buildChains([stream('1', [['20', '10', 'a']]), stream('2', [['10', '20', 'b']])]);
    expect(chains).toEqual([]);
    expect(broken).toHaveLength(2);
  });

  it("roots a clone's stream at an origin archived under another dataset", () => {
    const clone = stream('1', [['ORIGIN', '10', 'z1']]);
    (clone.substreams[0] as { clone?: boolean }).clone = true;
    expect(buildChains([clone]).broken).toHaveLength(1);
    const { chains, broken } = buildChains([clone], new Set(['ORIGIN']));
    expect(broken).toEqual([]);
    expect(chains[0]!.snapshots).toEqual(['z1']);
  });
});
