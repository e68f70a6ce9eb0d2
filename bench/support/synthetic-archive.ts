/**
 * Synthetic archives for the scale bench (issue 17): chains of tiny streams written straight into
 * an S3 bucket prefix, thousands per minute, instead of running `put` thousands of times (each
 * takes a lease, waits for it and commits). Every stream is a real, valid send stream
 * (test/support/synthetic-stream.ts) walked by the project's validator, its one chunk a zstd frame
 * with content size and checksum, its manifest built by `buildManifest` and serialised by
 * `serializeManifest`, with SHA256SUMS from `sha256sums`: what `put` itself would have stored, so
 * list, verify (quick and deep) and restore accept it. Each dataset gets the stream index `put`
 * leaves (src/archive/format/stream-index.ts): an entry per stream with its manifest and SHA256SUMS
 * as the server reports them, in segments, written once the dataset's streams are stored.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import * as zstd from 'zstd-napi';
import { ARCHIVE_FORMAT, ARCHIVE_MAJOR } from '../../src/archive/format/catalog.js';
import { chunkName, MANIFEST_NAME, MARKER_KEY, makeStreamId, SUMS_NAME, streamPrefix } from '../../src/archive/format/keys.js';
import { type Manifest, serializeManifest, sha256sums } from '../../src/archive/format/manifest.js';
import { entryOf, type IndexEntry, writeIndex } from '../../src/archive/format/stream-index.js';
import type { Backend } from '../../src/storage/backend.js';
import { buildManifest } from '../../src/archive/format/manifest-builder.js';
import { StreamValidator } from '../../src/stream/validator.js';
import { TOOL_VERSION } from '../../src/util/version.js';
import { buildStream, patternBytes, recipeRecords, type SubstreamSpec, writeRecords } from '../../test/support/synthetic-stream.js';

const LEVEL = 3;
const CHUNK_SIZE = 16 * 1024 * 1024;
const DAY = 86_400;
/** 2026-01-01T02:00:00Z: the first snapshot of every chain. */
const EPOCH = 1_767_232_800;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A distinct non-zero GUID for stream `i` of dataset number `d`. */
export const guidOf = (d: number, i: number): bigint => 0x5ca1e00000000000n | (BigInt(d) << 32n) | BigInt(i + 1);

/** The send stream of snapshot `i` of a chain (`i` = 0: the full), as `zfs send [-i prev]` would make it. */
export function chainStream(dataset: string, d: number, i: number): { bytes: Uint8Array; spec: SubstreamSpec } {
  const spec: SubstreamSpec = {
    toname: `${dataset}@daily-${String(i).padStart(6, '0')}`,
    toguid: guidOf(d, i),
    creationTime: EPOCH + i * DAY,
    ...(i === 0 ? { records: recipeRecords(patternBytes(512, d)) } : { fromguid: guidOf(d, i - 1), records: writeRecords(1, patternBytes(512, i)) }),
  };
  return { bytes: buildStream({ substreams: [spec] }).bytes, spec };
}

const compressor = new zstd.Compressor();
compressor.setParameters({ compressionLevel: LEVEL, checksumFlag: true });

/** The objects `put` would store for stream `i` of the chain: chunk, SHA256SUMS, manifest (in this order), and the manifest. */
export function streamObjects(dataset: string, d: number, i: number): { streamId: string; manifest: Manifest; objects: { key: string; body: Buffer }[] } {
  const { bytes, spec } = chainStream(dataset, d, i);
  const validator = new StreamValidator();
  validator.push(bytes);
  const summary = validator.finish();
  const stored = compressor.compress(Buffer.from(bytes));
  const chunk = { index: 0, key: chunkName(0), rawSize: bytes.length, storedSize: stored.length, rawSha256: sha256(bytes), storedSha256: sha256(stored), level: LEVEL };
  const streamId = makeStreamId(spec.creationTime!, i === 0 ? 'full' : 'incr', spec.toname.split('@')[1]!, spec.toguid);
  const manifest = buildManifest({
    identity: { dataset, streamId },
    summary,
    sha256: chunk.rawSha256,
    chunks: [chunk],
    chunkSize: CHUNK_SIZE,
    level: LEVEL,
    sendArgs: null,
    zfsVersion: null,
    fromName: i === 0 ? '' : `daily-${String(i - 1).padStart(6, '0')}`,
    startedAt: new Date((EPOCH + i * DAY + 60) * 1000),
    toolVersion: TOOL_VERSION,
  });
  const prefix = streamPrefix(dataset, streamId);
  return {
    streamId,
    manifest,
    objects: [
      { key: `${prefix}${chunk.key}`, body: stored },
      { key: `${prefix}${SUMS_NAME}`, body: sha256sums([chunk]) },
      { key: `${prefix}${MANIFEST_NAME}`, body: serializeManifest(manifest) },
    ],
  };
}

/** The ETag as src/storage/s3.ts reports it (list and head): without quotes. */
const bareEtag = (etag: string | undefined): string | undefined => etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1') || undefined;

export interface ArchiveShape {
  /** Dataset names, e.g. `scale/ds-000`; dataset number d = its index. */
  datasets: string[];
  /** Streams per dataset (a full and count − 1 incrementals). */
  streams: number;
}

/**
 * Writes the archive marker and every stream of `shape` under `prefix` (no trailing slash) of
 * `bucket`, `concurrency` streams at a time, straight to the server (not through the WAN proxy);
 * with `index` (a backend on the same prefix), each dataset's stream index as `put` leaves it.
 */
export async function writeSyntheticArchive(client: S3Client, bucket: string, prefix: string, shape: ArchiveShape, concurrency = 32, index?: Backend): Promise<number> {
  const marker = { format: ARCHIVE_FORMAT, formatVersion: `${ARCHIVE_MAJOR}.0`, created: new Date().toISOString(), createdBy: `zfs-offsite ${TOOL_VERSION} (bench)`, host: hostname() };
  const put = async (key: string, body: Buffer) => {
    const res = await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}`, Body: body }));
    const etag = bareEtag(res.ETag);
    return { key, size: body.length, ...(etag ? { etag } : {}) };
  };
  await put(MARKER_KEY, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`));
  const jobs = function* (): Generator<[string, number, number]> {
    for (const [d, dataset] of shape.datasets.entries()) for (let i = 0; i < shape.streams; i++) yield [dataset, d, i];
  };
  const it = jobs();
  const entries = new Map<string, Map<string, IndexEntry>>();
  const writes: Promise<void>[] = [];
  let objects = 1;
  const worker = async (): Promise<void> => {
    for (let next = it.next(); !next.done; next = it.next()) {
      const [dataset, d, i] = next.value;
      const { streamId, manifest, objects: stored } = streamObjects(dataset, d, i);
      // The chunk and SHA256SUMS side by side, the manifest (the commit point) after them.
      const [, sums] = await Promise.all([put(stored[0]!.key, stored[0]!.body), put(stored[1]!.key, stored[1]!.body)]);
      const listed = await put(stored[2]!.key, stored[2]!.body);
      objects += 3;
      if (!index) continue;
      const mine = entries.get(dataset) ?? new Map<string, IndexEntry>();
      entries.set(dataset, mine);
      mine.set(streamId, entryOf(manifest, listed, sums));
      if (mine.size === shape.streams) {
        entries.delete(dataset);
        writes.push(writeIndex(index, dataset, mine));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await Promise.all(writes);
  return objects;
}
