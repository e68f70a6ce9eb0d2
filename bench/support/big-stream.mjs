// One synthetic stream of N chunks in a local archive (issue 17, "peak RSS ≤ 256 MiB for a stream
// of 500,000 chunks"): the manifest as `put` writes it (buildManifest + serializeManifest of the
// built dist/), its SHA256SUMS, and (unless CHUNK_FILES=0) every chunk object as a small file of its
// recorded stored size, so that list, quick verify, restore --dry-run and prune --dry-run can be
// measured on it without a 500 GiB put. Usage: node bench/support/big-stream.mjs DIR N [CHUNK_SIZE]
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
const dist = new URL('../../dist/', import.meta.url);
const { chunkName, MANIFEST_NAME, MARKER_KEY, makeStreamId, SUMS_NAME, streamPrefix } = await import(new URL('archive/format/keys.js', dist));
const manifestModule = await import(new URL('archive/format/manifest.js', dist));
const { serializeManifest, sha256sums } = manifestModule;

const [dir, nArg, sizeArg] = process.argv.slice(2);
const n = Number(nArg);
const chunkSize = Number(sizeArg ?? 1024 * 1024);
const dataset = 'big/one';
const toguid = 0x5ca1e000000000abn;
const creation = 1_767_232_800;
const streamId = makeStreamId(creation, 'full', 'huge', toguid);
const prefix = streamPrefix(dataset, streamId);
const hex = (i, salt) => createHash('sha256').update(`${salt}${i}`).digest('hex');
const stored = (i) => 40 + (i % 97);
const rawBytes = n * chunkSize;
const chunks = [];
for (let i = 0; i < n; i++) chunks.push({ index: i, key: chunkName(i), rawSize: chunkSize, storedSize: stored(i), rawSha256: hex(i, 'r'), storedSha256: hex(i, 's'), level: 3 });
const time = new Date(creation * 1000).toISOString();
const manifest = {
  format: 'zfs-offsite-manifest', formatVersion: '1.0', toolVersion: 'bench', streamId, dataset, kind: 'full',
  to: { name: 'huge', guid: toguid.toString(), creation: time }, from: null, raw: false, compound: false,
  substreams: [{ toname: `${dataset}@huge`, toguid: toguid.toString(), fromguid: '0', creation: time, objsetType: 'filesystem', features: [], featureFlags: 4, beginFlags: 12, raw: false, clone: false, offset: 0, bytes: rawBytes, records: 3, endChecksum: ['0', '0', '0', '0'].map(() => '0'.repeat(16)) }],
  sendArgs: null, zfsVersion: null, host: 'bench', startedAt: time, finishedAt: time, rawBytes,
  storedBytes: chunks.reduce((s, c) => s + c.storedSize, 0), sha256: hex(0, 'all'), compression: { algorithm: 'zstd', level: 3, checksum: true }, chunkSize, chunks,
};
mkdirSync(join(dir, prefix), { recursive: true });
writeFileSync(join(dir, MARKER_KEY), `${JSON.stringify({ format: 'zfs-offsite-archive', formatVersion: '1.0', created: time, createdBy: 'bench', host: 'bench' })}\n`);
const body = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
writeFileSync(join(dir, prefix, SUMS_NAME), sha256sums(chunks));
writeFileSync(join(dir, prefix, MANIFEST_NAME), body);
if (process.env.CHUNK_FILES !== '0') {
  const pad = Buffer.alloc(200, 7);
  for (const c of chunks) writeFileSync(join(dir, prefix, c.key), pad.subarray(0, c.storedSize));
}
console.log(JSON.stringify({ dir, prefix, chunks: n, manifestBytes: body.length }));
