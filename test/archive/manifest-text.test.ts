/**
 * The manifest, SHA256SUMS and journal bodies made in pieces (issue 17: a 500,000-chunk stream's
 * manifest is 154 MB, never held whole): byte for byte what `JSON.stringify` of the whole gives
 * (test/support/manifest-reference.ts), iterated again the same, and stored the same by putWhole.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChunkTable } from '../../src/archive/format/chunk-table.js';
import { chunkName } from '../../src/archive/format/keys.js';
import type { Manifest, ManifestChunk } from '../../src/archive/format/manifest.js';
import { jsonWithList, manifestPieces, serializeManifest, sha256sumsPieces } from '../../src/archive/format/manifest-text.js';
import { putWhole } from '../../src/storage/bodies.js';
import { LocalBackend } from '../../src/storage/local.js';
import * as reference from '../support/manifest-reference.js';

const root = mkdtempSync(join(tmpdir(), 'zo-manifest-text-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
function chunksOf(n: number): ManifestChunk[] {
  return Array.from({ length: n }, (_, i) => ({ index: i, key: chunkName(i), rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(`r${i}`), storedSha256: hex(`s${i}`), level: 3 }));
}
function manifestOf(chunks: ManifestChunk[]): Manifest {
  return {
    format: 'zfs-offsite-manifest',
    formatVersion: '1.0',
    streamId: 'id "quoted" é',
    dataset: 'pool/ds',
    sendArgs: ['-w', 'ü'],
    from: null,
    substreams: [{ toname: 'pool/ds@a', offset: 0 }],
    chunkSize: 1048576,
    chunks,
  } as unknown as Manifest;
}

describe('bodies made in pieces', () => {
  it.each([0, 1, 2, 3000])('the manifest of %i chunks: pieces of ≤ 256 KiB + one entry, concatenated = JSON.stringify(manifest, null, 2) + newline, twice', (n) => {
    const list = chunksOf(n);
    const viaTable = ChunkTable.from(list).views();
    const expected = reference.serializeManifest(manifestOf(list));
    for (const m of [manifestOf(list), manifestOf(viaTable)]) {
      const pieces = manifestPieces(m);
      const first = [...pieces];
      expect(Buffer.concat(first).equals(expected)).toBe(true);
      expect(Buffer.concat([...pieces]).equals(expected)).toBe(true);
      expect(serializeManifest(m).equals(expected)).toBe(true);
      if (n === 3000) expect(first.length).toBeGreaterThan(2);
      for (const p of first) expect(p.length).toBeLessThan(256 * 1024 + 1024);
    }
    expect(Buffer.concat([...sha256sumsPieces(viaTable)]).equals(reference.sha256sums(list))).toBe(true);
  });

  it('jsonWithList at indent 1 (the journal) gives JSON.stringify(…, null, 1), for an empty list too', () => {
    const head = { format: 'x', n: 1, nested: { a: [1, 2] } };
    for (const list of [[], [{ a: 1, b: 'c' }], chunksOf(2000)]) {
      const text = Buffer.concat([...jsonWithList({ ...head, chunks: [] }, 'chunks', list, 1)]).toString();
      expect(text).toBe(`${JSON.stringify({ ...head, chunks: list }, null, 1)}\n`);
    }
  });

  it('putWhole stores the pieces of a 3,000-chunk manifest byte for byte and returns its size', async () => {
    const backend = new LocalBackend(join(root, 'put'));
    const m = manifestOf(ChunkTable.from(chunksOf(3000)).views());
    const size = await putWhole(backend, 'pool/ds/s/manifest.json', manifestPieces(m));
    const expected = reference.serializeManifest(manifestOf(chunksOf(3000)));
    expect(size).toBe(expected.length);
    expect(readFileSync(join(root, 'put', 'pool/ds/s/manifest.json')).equals(expected)).toBe(true);
  });
});
