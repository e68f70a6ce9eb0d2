/**
 * Object keys of the archive layout (docs/archive-format.md, "Layout"):
 *
 *   zfs-offsite.json                                   archive marker
 *   <dataset path>/<stream id>/manifest.json           written last = commit point
 *   <dataset path>/<stream id>/SHA256SUMS
 *   <dataset path>/<stream id>/000000.zst …            chunk objects
 *   <dataset path>/<stream id>/journal.json            while in progress
 *   <dataset path>/<stream id>/attachment.<name>       files kept with the stream
 *   <dataset path>/~index.json, ~index-000001.json …   stream index segments: a cache (stream-index.ts)
 *   ~zfs-offsite-check/…                               probes of `zfs-offsite check` (jobs/check.ts)
 *   <dataset path>/~verify.json, ~drill.json           last recorded results, display only (status-record.ts)
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
/**
 * `<dataset path>/~index.json`: the dataset's stream index (format/stream-index.ts). `~` is a
 * character `encodeComponent` always escapes, so no dataset or stream directory is ever named so,
 * and its parent (a dataset directory) is never shaped like a stream id.
 */
export const INDEX_NAME = '~index.json';

/**
 * The stream index is kept in segments (format/index-segments.ts): segment 0 is `~index.json`
 * (the only one before segments existed), segment n ≥ 1 is `~index-<n, 6 digits>.json`.
 */
export function indexSegmentName(n: number): string {
  return n === 0 ? INDEX_NAME : `~index-${String(n).padStart(6, '0')}.json`;
}

/** The segment number an object name (the part after the last `/`) names, or undefined when it names none. */
export function indexSegmentNumber(name: string): number | undefined {
  if (name === INDEX_NAME) return 0;
  const m = /^~index-(\d{6,})\.json$/.exec(name);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= 1 && Number.isSafeInteger(n) && indexSegmentName(n) === name ? n : undefined;
}
/**
 * Where `zfs-offsite check` writes its probe objects (jobs/check.ts). It removes them, unless the
 * credentials cannot delete (an append-only key): then they stay, and every reader passes over
 * them. `~` is escaped in every dataset directory's name, so no dataset can be named so.
 */
export const CHECK_PREFIX = '~zfs-offsite-check/';

/**
 * `<dataset path>/~verify.json`, `<dataset path>/~drill.json`: the last result of a recorded
 * verify or drill of the dataset (format/status-record.ts), shown by `status`; named as the index is.
 */
export const STATUS_NAMES = { verify: '~verify.json', drill: '~drill.json' } as const;

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

/**
 * The one reading of an escaped component, or why the component is not one `encodeComponent`
 * writes. Only the exact encoding is accepted: another spelling of a name (`%41` for `A`,
 * lower-case hex) would be a second directory for one dataset, and a component decoding to
 * `/`, `.`, `..` or nothing would alias or climb to another. Anything else in the target was
 * not written by this program (issue 15).
 */
export function decodeComponent(encoded: string): { name: string } | { invalid: string } {
  if (encoded === '') return { invalid: 'an empty path component' };
  const bad = /%(?![0-9A-F]{2})|[^A-Za-z0-9._%-]/.exec(encoded);
  if (bad)
    return {
      invalid: bad[0] === '%' ? `${JSON.stringify(encoded.slice(bad.index, bad.index + 3))} is not a %XX escape with upper-case hex` : `${JSON.stringify(bad[0])} is not allowed in an archive key`,
    };
  const bytes = Buffer.from(
    encoded.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    'latin1',
  );
  const name = bytes.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(bytes)) return { invalid: 'the escapes are not valid UTF-8' };
  if (name === '.' || name === '..' || name.includes('/')) return { invalid: `decodes to ${JSON.stringify(name)}, which would name another directory` };
  if ([...name].some((ch) => ch < ' ' || ch === '\u007f')) return { invalid: 'decodes to a control character' };
  if (encodeComponent(name) !== encoded) return { invalid: `not escaped the way zfs-offsite writes it (${JSON.stringify(encodeComponent(name))})` };
  return { name };
}

/**
 * A key as shown in a message: control characters (which a hostile name may hold, and which
 * would rewrite the terminal or forge a line) as `\xNN`; anything else as it is.
 */
export function shownKey(key: string): string {
  return [...key].map((ch) => (ch < ' ' || ch === '\u007f' ? `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}` : ch)).join('');
}

/** `tank/data/home` → `tank/data/home` with each component escaped. */
export function datasetPath(dataset: string): string {
  return dataset.split('/').map(encodeComponent).join('/');
}

/** `tank/my%20data` → `tank/my data`, or why the path is not one `datasetPath` writes. */
export function datasetFromPath(path: string): { dataset: string } | { invalid: string } {
  const names: string[] = [];
  for (const part of path.split('/')) {
    const decoded = decodeComponent(part);
    if ('invalid' in decoded) return { invalid: `dataset path component ${JSON.stringify(part)}: ${decoded.invalid}` };
    names.push(decoded.name);
  }
  return { dataset: names.join('/') };
}

/** A name `datasetPath` turns into a path that reads back as that name (what a manifest's `dataset` must be). */
export function isArchivableDataset(dataset: string): boolean {
  const back = datasetFromPath(datasetPath(dataset));
  return 'dataset' in back && back.dataset === dataset;
}

export function streamPrefix(dataset: string, streamId: string): string {
  return `${datasetPath(dataset)}/${streamId}/`;
}

/** An attachment's name: a safe file name of its own (no '/', no leading '.', no escapes needed). */
const ATTACHMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isAttachmentName(name: string): boolean {
  return ATTACHMENT_NAME.test(name);
}

/** `attachment.<name>`: never a chunk, manifest, SHA256SUMS or journal name. */
export function attachmentKey(name: string): string {
  return `attachment.${name}`;
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

/** What a stream id looks like; parseStreamId says whether it is one makeStreamId writes. */
const STREAM_ID_SHAPE = /^(\d{8}T\d{6}Z)-(full|incr)-(.+)-([0-9a-f]{8})$/;

/** The parts of a stream id, or why it is not one makeStreamId writes (undefined: not shaped like one). */
export function parseStreamId(id: string): { kind: StreamKind; snapshot: string; guidPrefix: string } | { invalid: string } | undefined {
  const m = STREAM_ID_SHAPE.exec(id);
  if (!m) return undefined;
  const snapshot = decodeComponent(m[3]!);
  if ('invalid' in snapshot) return { invalid: `snapshot part ${JSON.stringify(m[3])} of stream id ${JSON.stringify(id)}: ${snapshot.invalid}` };
  return { kind: m[2] as StreamKind, snapshot: snapshot.name, guidPrefix: m[4]! };
}

/** A stream directory named by its key: dataset and stream id, or why the key is not a valid archive key. */
export type StreamKey = { dataset: string; streamId: string } | { invalid: string };

/**
 * Reads `<dataset path>/<stream id>/<name>`: undefined when the key is in no stream directory
 * (its parent is not shaped like a stream id), `invalid` when it is shaped like one but the
 * dataset path or the stream id is not spelt the way this program writes it (a bad or
 * non-canonical escape): a problem of that directory alone, never of the whole listing.
 */
export function parseStreamKey(key: string): StreamKey | undefined {
  const parts = key.split('/');
  if (parts.length < 3) return undefined;
  const streamId = parts[parts.length - 2]!;
  const id = parseStreamId(streamId);
  if (!id) return undefined;
  if ('invalid' in id) return id;
  const dataset = datasetFromPath(parts.slice(0, -2).join('/'));
  if ('invalid' in dataset) return dataset;
  return { dataset: dataset.dataset, streamId };
}

/**
 * Split a manifest key into its dataset and stream id (or why it is invalid: parseStreamKey), or
 * undefined when the key is not `<dataset path>/<stream id>/manifest.json`.
 */
export function parseManifestKey(key: string): StreamKey | undefined {
  return key.endsWith(`/${MANIFEST_NAME}`) ? parseStreamKey(key) : undefined;
}

/** Splits `pool/fs@snap` into dataset and snapshot name. */
export function splitSnapshotName(toname: string): { dataset: string; snapshot: string } {
  const at = toname.indexOf('@');
  if (at < 0) return { dataset: toname, snapshot: '' };
  return { dataset: toname.slice(0, at), snapshot: toname.slice(at + 1) };
}
