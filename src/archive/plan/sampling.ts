import { seededRandom, shuffled } from '../../util/random.js';
import type { Manifest, ManifestChunk } from '../format/manifest.js';

export interface SampledChunk {
  manifest: Manifest;
  chunk: ManifestChunk;
}

export type SampleLimit = { percent: number } | { maxBytes: number };

/**
 * A seeded random subset of chunks, up to a share or an amount of stored bytes. Different
 * seeds pick different chunks, so nightly runs cover the whole archive over time. Pure.
 */
export function sampleChunks(manifests: readonly Manifest[], limit: SampleLimit, seed: number): SampledChunk[] {
  const all = manifests.flatMap((manifest) => manifest.chunks.map((chunk) => ({ manifest, chunk })));
  const total = all.reduce((n, c) => n + c.chunk.storedSize, 0);
  const budget = 'percent' in limit ? (total * limit.percent) / 100 : limit.maxBytes;
  const picked: SampledChunk[] = [];
  let bytes = 0;
  for (const c of shuffled(all, seededRandom(seed))) {
    if (bytes >= budget) break;
    // Always check at least one chunk: a tiny share of a small archive must not check nothing.
    if (picked.length > 0 && bytes + c.chunk.storedSize > budget) continue;
    picked.push(c);
    bytes += c.chunk.storedSize;
  }
  return picked;
}
