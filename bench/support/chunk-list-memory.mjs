// The writer's chunk list for N chunks (issue 17): peak RSS of the old way (objects with hex strings, JSON.stringify, SHA256SUMS by join) against ChunkTable + serializeManifest + sha256sums. Usage: node bench/support/chunk-list-memory.mjs old|new N (after npm run build)
import { createHash } from 'node:crypto';
const dist = new URL('../../dist/', import.meta.url).href;
const { ChunkTable } = await import(dist + 'archive/format/chunk-table.js');
const { serializeManifest, sha256sums } = await import(dist + 'archive/format/manifest.js');
const { chunkName } = await import(dist + 'archive/format/keys.js');
const [mode, nArg] = process.argv.slice(2);
const n = Number(nArg);
const hex = (i, s) => createHash('sha256').update(`${s}${i}`).digest('hex');
const base = { format: 'zfs-offsite-manifest', formatVersion: '1.0', streamId: 'x', dataset: 'd', chunkSize: 1048576 };
const rss0 = process.resourceUsage().maxRSS;
let body, sums;
if (mode === 'old') {
  const chunks = [];
  for (let i = 0; i < n; i++) chunks[i] = { index: i, key: chunkName(i), rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3 };
  sums = Buffer.from(chunks.map((c) => `${c.storedSha256}  ${c.key}\n`).join(''));
  body = Buffer.from(`${JSON.stringify({ ...base, chunks }, null, 2)}\n`);
} else {
  const t = new ChunkTable();
  for (let i = 0; i < n; i++) t.set(i, { rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3 });
  const chunks = t.views();
  sums = sha256sums(chunks);
  body = serializeManifest({ ...base, chunks });
}
const rss = process.resourceUsage().maxRSS;
console.log(JSON.stringify({ mode, n, baselineMiB: Math.round(rss0 / 1024), peakMiB: Math.round(rss / 1024), bytesPerChunk: Math.round(((rss - rss0) * 1024) / n), manifestBytes: body.length, sumsBytes: sums.length }));
