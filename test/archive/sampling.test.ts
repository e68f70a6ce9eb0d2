import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { sampleChunks } from '../../src/archive/plan/sampling.js';

const manifests = [0, 1, 2].map(
  (m) =>
    ({
      streamId: `s${m}`,
      chunks: Array.from({ length: 20 }, (_, i) => ({ index: i, key: `${i}.zst`, storedSize: 100 })),
    }) as unknown as Manifest,
);
const keys = (seed: number, percent = 10) => sampleChunks(manifests, { percent }, seed).map((c) => `${c.manifest.streamId}/${c.chunk.key}`);

describe('sampleChunks', () => {
  it('is deterministic for a seed', () => {
    expect(keys(42)).toEqual(keys(42));
  });

  it('takes the requested share of stored bytes', () => {
    expect(keys(1, 10)).toHaveLength(6); // 10 % of 60 chunks of equal size
    expect(sampleChunks(manifests, { maxBytes: 250 }, 1)).toHaveLength(2);
    expect(keys(1, 100)).toHaveLength(60);
  });

  it('checks at least one chunk even when the share is tiny', () => {
    expect(sampleChunks(manifests, { percent: 0.001 }, 7)).toHaveLength(1);
  });

  it('picks different chunks for different seeds and covers everything over nightly runs', () => {
    expect(keys(1)).not.toEqual(keys(2));
    const covered = new Set<string>();
    for (let night = 0; night < 60; night++) for (const k of keys(1000 + night)) covered.add(k);
    expect(covered.size).toBe(60);
  });
});
