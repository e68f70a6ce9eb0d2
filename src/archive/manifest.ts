import { OperationalError } from '../util/errors.js';
import type { StreamKind } from './keys.js';

/**
 * The manifest of one archived stream: the commit point (design.md). Written LAST, only
 * when every chunk is stored and checked. GUIDs are decimal strings, as `zfs get -Hp guid`
 * prints them (JSON numbers cannot hold 64 bits).
 */
export const MANIFEST_FORMAT = 'zfs-offsite-manifest';
export const MANIFEST_MAJOR = 1;
export const MANIFEST_VERSION = '1.0';

export interface ManifestSnapshot {
  /** Short snapshot name (after '@'), or a bookmark name starting with '#'; '' when unknown. */
  name: string;
  guid: string;
  /** ISO time of the snapshot's creation (from the BEGIN record). */
  creation?: string;
}

export interface ManifestSubstream {
  toname: string;
  toguid: string;
  fromguid: string;
  creation: string;
  objsetType: 'filesystem' | 'volume' | 'other';
  features: string[];
  featureFlags: number;
  beginFlags: number;
  raw: boolean;
  clone: boolean;
  /** Where this substream starts in the stream (after a compound header) and its length. */
  offset: number;
  bytes: number;
  records: number;
  /** fletcher-4 END checksum, 4 words of 16 hex digits: the substream's content fingerprint. */
  endChecksum: string[];
}

export interface ManifestChunk {
  index: number;
  key: string;
  rawSize: number;
  storedSize: number;
  rawSha256: string;
  storedSha256: string;
  /** zstd level actually used (a cheaper one for incompressible chunks). */
  level: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: string;
  toolVersion: string;
  streamId: string;
  dataset: string;
  kind: StreamKind;
  to: ManifestSnapshot;
  from: ManifestSnapshot | null;
  raw: boolean;
  compound: boolean;
  substreams: ManifestSubstream[];
  /** The exact `zfs send` arguments, or null for a stream piped into `put`. */
  sendArgs: string[] | null;
  zfsVersion: string | null;
  host: string;
  startedAt: string;
  finishedAt: string;
  rawBytes: number;
  storedBytes: number;
  sha256: string;
  compression: { algorithm: 'zstd'; level: number; checksum: true };
  chunkSize: number;
  chunks: ManifestChunk[];
}

/** Parse and check a manifest; refuses an unknown major format version. */
export function parseManifest(text: string | Buffer, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text.toString());
  } catch (err) {
    throw new OperationalError(`${where}: manifest is not valid JSON (${(err as Error).message})`);
  }
  const m = data as Partial<Manifest>;
  if (typeof m !== 'object' || m === null || m.format !== MANIFEST_FORMAT || typeof m.formatVersion !== 'string') {
    throw new OperationalError(`${where}: not a zfs-offsite manifest`);
  }
  const major = Number(m.formatVersion.split('.')[0]);
  if (major !== MANIFEST_MAJOR) {
    throw new OperationalError(
      `${where}: manifest format ${m.formatVersion} is not supported by this version (supports ${MANIFEST_MAJOR}.x); upgrade zfs-offsite`,
    );
  }
  for (const field of ['dataset', 'streamId', 'kind', 'to', 'chunks', 'substreams', 'sha256'] as const) {
    if (m[field] === undefined) throw new OperationalError(`${where}: manifest lacks "${field}"`);
  }
  return m as Manifest;
}

export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
}

/** coreutils `sha256sum` format: "<hex>  <name>" — `sha256sum -c SHA256SUMS` checks the objects. */
export function sha256sums(chunks: readonly ManifestChunk[]): Buffer {
  return Buffer.from(chunks.map((c) => `${c.storedSha256}  ${c.key.split('/').pop()}\n`).join(''));
}
