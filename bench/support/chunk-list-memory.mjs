// The writer's memory for a stream of N chunks (issue 17). Usage (after npm run build):
//   node bench/support/chunk-list-memory.mjs old|new N      the chunk list, then the manifest text and SHA256SUMS
//   node bench/support/chunk-list-memory.mjs journal N dir; … resume 0 dir   a rerun opening the journal of N chunks
//   node bench/support/chunk-list-memory.mjs writer N [dir]  the writer's path to a local directory: the resume
//     journal records N chunks (S3-style ETags) and is saved as it grows, then the commit writes SHA256SUMS and the
//     manifest (putWhole) and the journal is read back by a resume (ResumeJournal.open)
// `old` fills plain objects with hex strings and JSON.stringify (before ChunkTable); `new` and `writer` use this build.
// `writer` also runs against an older build (DIST=/path/to/dist/): it then sends the whole Buffers that build made.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dist = process.env.DIST ?? new URL('../../dist/', import.meta.url).href;
const { ChunkTable } = await import(dist + 'archive/format/chunk-table.js');
const manifestModule = await import(dist + 'archive/format/manifest.js');
const { serializeManifest, sha256sums } = manifestModule;
const { chunkName } = await import(dist + 'archive/format/keys.js');
const [mode, nArg, dirArg] = process.argv.slice(2);
const n = Number(nArg);
const hex = (i, s) => createHash('sha256').update(`${s}${i}`).digest('hex');
const md5 = (i) => createHash('md5').update(`e${i}`).digest('hex');
const base = { format: 'zfs-offsite-manifest', formatVersion: '1.0', streamId: 'x', dataset: 'd', chunkSize: 1048576 };
const rss0 = process.resourceUsage().maxRSS;
const mib = (kib) => Math.round(kib / 1024);
let body, sums;
let extra = {};
if (mode === 'old') {
  const chunks = [];
  for (let i = 0; i < n; i++) chunks[i] = { index: i, key: chunkName(i), rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3 };
  sums = Buffer.from(chunks.map((c) => `${c.storedSha256}  ${c.key}\n`).join(''));
  body = Buffer.from(`${JSON.stringify({ ...base, chunks }, null, 2)}\n`);
} else if (mode === 'new') {
  const t = new ChunkTable();
  for (let i = 0; i < n; i++) t.set(i, { rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3 });
  const chunks = t.views();
  sums = sha256sums(chunks);
  body = serializeManifest({ ...base, chunks });
} else if (mode === 'writer') {
  const { LocalBackend } = await import(dist + 'storage/local.js');
  const { ResumeJournal } = await import(dist + 'archive/format/journal.js');
  const { putWhole } = await import(dist + 'storage/bodies.js');
  const { silentLogger } = await import(dist + 'util/logger.js');
  const dir = dirArg ?? mkdtempSync(join(tmpdir(), 'chunk-list-memory-'));
  const backend = new LocalBackend(dir);
  const id = { streamId: 'x', dataset: 'd', prefix: 'd/x/', chunkSize: 1048576, sendArgs: null };
  const journal = await ResumeJournal.open(backend, id, silentLogger());
  const t = new ChunkTable();
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const c = { index: i, key: chunkName(i), rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3, etag: `"${md5(i)}"` };
    await journal.record(c);
    t.set(i, c);
    // Let the journal's timer run now and then, as uploads do.
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await journal.flush();
  const recorded = process.resourceUsage().maxRSS;
  const chunks = t.views();
  const manifest = { ...base, chunks };
  const pieces = manifestModule.manifestPieces;
  if (pieces) {
    await putWhole(backend, `${id.prefix}SHA256SUMS`, manifestModule.sha256sumsPieces(chunks));
    await putWhole(backend, `${id.prefix}manifest.json`, pieces(manifest));
  } else {
    await putWhole(backend, `${id.prefix}SHA256SUMS`, sha256sums(chunks));
    await putWhole(backend, `${id.prefix}manifest.json`, serializeManifest(manifest));
  }
  const committed = process.resourceUsage().maxRSS;
  // A resume of the same stream reads the journal back (chunk objects absent here: nothing is reused).
  await backend.delete([`${id.prefix}SHA256SUMS`, `${id.prefix}manifest.json`]);
  const resumed = await ResumeJournal.open(backend, id, silentLogger());
  await resumed.flush();
  const { size: journalBytes } = await backend.head(`${id.prefix}journal.json`);
  extra = { recordedPeakMiB: mib(recorded), commitPeakMiB: mib(committed), journalBytes, seconds: Math.round((performance.now() - started) / 1000) };
  if (!dirArg) rmSync(dir, { recursive: true, force: true });
} else if (mode === 'journal') {
  // Writes the journal an interrupted run of N chunks leaves (format 1.0 text) into dir, for `resume`.
  const { createWriteStream } = await import('node:fs');
  const { mkdirSync } = await import('node:fs');
  const { jsonWithList } = await import(dist + 'archive/format/manifest-text.js');
  mkdirSync(join(dirArg, 'd/x'), { recursive: true });
  const out = createWriteStream(join(dirArg, 'd/x/journal.json'));
  const data = { format: 'zfs-offsite-journal', formatVersion: '1.0', streamId: 'x', dataset: 'd', chunkSize: 1048576, sendArgs: null, host: 'h', pid: 1, startedAt: '', updatedAt: '' };
  const chunks = { *[Symbol.iterator]() { for (let i = 0; i < n; i++) yield { index: i, key: chunkName(i), rawSize: 1048576, storedSize: 1000 + (i % 97), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3, etag: `"${md5(i)}"` }; } };
  for (const piece of jsonWithList({ ...data, chunks: [] }, 'chunks', chunks, 1)) if (!out.write(piece)) await new Promise((r) => out.once('drain', r));
  await new Promise((r) => out.end(r));
} else if (mode === 'resume') {
  // A rerun opening that journal in a fresh process (its chunk objects are absent: nothing is reused).
  const { LocalBackend } = await import(dist + 'storage/local.js');
  const { ResumeJournal } = await import(dist + 'archive/format/journal.js');
  const { silentLogger } = await import(dist + 'util/logger.js');
  const started = performance.now();
  await ResumeJournal.open(new LocalBackend(dirArg), { streamId: 'x', dataset: 'd', prefix: 'd/x/', chunkSize: 1048576, sendArgs: null }, silentLogger());
  extra = { seconds: Math.round((performance.now() - started) / 1000) };
} else throw new Error('mode: old | new | writer | journal | resume');
const rss = process.resourceUsage().maxRSS;
console.log(JSON.stringify({ mode, n, baselineMiB: mib(rss0), peakMiB: mib(rss), bytesPerChunk: Math.round(((rss - rss0) * 1024) / n), ...(body ? { manifestBytes: body.length, sumsBytes: sums.length } : {}), ...extra }));
