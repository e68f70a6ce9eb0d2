/**
 * Object keys of the archive layout (docs/archive-format.md, "Layout"):
 *
 *   zfs-offsite.json                                   archive marker
 *   <dataset path>/<stream id>/manifest.json           written last = commit point
 *   <dataset path>/<stream id>/SHA256SUMS
 *   <dataset path>/<stream id>/000000.zst …            chunk objects
 *   <dataset path>/<stream id>/journal.json            while in progress
 *
 * Keys use only [A-Za-z0-9._-], '%' escapes and '/', which every backend (S3, SFTP,
 * FAT/exFAT removable media) accepts. ZFS names may also hold ':' and ' '.
 */

export const MARKER_KEY = 'zfs-offsite.json';
export const MANIFEST_NAME = 'manifest.json';
export const SUMS_NAME = 'SHA256SUMS';
export const JOURNAL_NAME = 'journal.json';
/** `<dataset path>/lease.json`: who is writing the dataset now (see archive/lease.ts). */
export const LEASE_NAME = 'lease.json';

const SAFE = /[A-Za-z0-9_-]/;

/** Escape one path component: unsafe bytes become %XX; '.' only where it could mean "." or "..". */
export function encodeComponent(component: string): string {
  let out = '';
  for (const byte of Buffer.from(component, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += SAFE.test(ch) || (ch === '.' && out.length > 0) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeComponent(encoded: string): string {
  return decodeURIComponent(encoded);
}

/** `tank/data/home` → `tank/data/home` with each component escaped. */
export function datasetPath(dataset: string): string {
  return dataset.split('/').map(encodeComponent).join('/');
}

export function datasetFromPath(path: string): string {
  return path.split('/').map(decodeComponent).join('/');
}

export function streamPrefix(dataset: string, streamId: string): string {
  return `${datasetPath(dataset)}/${streamId}/`;
}

export function chunkName(index: number): string {
  return `${String(index).padStart(6, '0')}.zst`;
}

/** Hex form of a GUID as 16 lowercase digits. */
export function guidHex(guid: bigint): string {
  return guid.toString(16).padStart(16, '0');
}

function compactUtc(unixSeconds: number): string {
  return new Date(unixSeconds * 1000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export type StreamKind = 'full' | 'incr';

/**
 * Readable, unique stream id: to-snapshot creation time, kind, snapshot name, short toguid,
 * e.g. `20261122T020000Z-incr-daily_2026-11-22-3fa9c1d2`. Sorting ids sorts by time.
 */
export function makeStreamId(creationTime: number, kind: StreamKind, snapshot: string, toguid: bigint): string {
  return `${compactUtc(creationTime)}-${kind}-${encodeComponent(snapshot)}-${guidHex(toguid).slice(0, 8)}`;
}

const STREAM_ID = /^\d{8}T\d{6}Z-(full|incr)-.+-[0-9a-f]{8}$/;

/**
 * Split a manifest key into its dataset and stream id, or undefined when the key is not
 * `<dataset path>/<stream id>/manifest.json`.
 */
export function parseManifestKey(key: string): { dataset: string; streamId: string } | undefined {
  const parts = key.split('/');
  if (parts.length < 3 || parts[parts.length - 1] !== MANIFEST_NAME) return undefined;
  const streamId = parts[parts.length - 2]!;
  if (!STREAM_ID.test(streamId)) return undefined;
  return { dataset: datasetFromPath(parts.slice(0, -2).join('/')), streamId };
}

/** Splits `pool/fs@snap` into dataset and snapshot name. */
export function splitSnapshotName(toname: string): { dataset: string; snapshot: string } {
  const at = toname.indexOf('@');
  if (at < 0) return { dataset: toname, snapshot: '' };
  return { dataset: toname.slice(0, at), snapshot: toname.slice(at + 1) };
}
