import type { ObjectInfo } from '../../storage/backend.js';
import { buildChains } from './chains.js';
import { CHECK_PREFIX, chunkName, indexSegmentNumber, JOURNAL_NAME, LEASE_NAME, MANIFEST_NAME, MARKER_KEY, parseStreamKey, shownKey, SUMS_NAME } from '../format/keys.js';
import { isStatusRecordKey } from '../format/status-record.js';
import type { DamagedStream } from '../format/catalog.js';
import type { Manifest, ManifestSummary } from '../format/manifest.js';
import type { IndexedStream } from '../format/stream-index.js';

/**
 * The quick audit (README, "`verify`: proving the archive"): what the listing, the manifests and SHA256SUMS say,
 * without downloading data. Pure: listing and parsed files in, problems out.
 */

export type ProblemKind =
  | 'manifest-unreadable'
  | 'manifest-invalid'
  | 'key-invalid'
  | 'chunk-missing'
  | 'chunk-size'
  | 'sums-missing'
  | 'sums-mismatch'
  | 'chain-broken'
  | 'orphan-object'
  | 'stale-in-progress'
  | 'chunk-corrupt'
  | 'chunk-undecodable'
  | 'chunk-raw-mismatch'
  | 'stream-invalid'
  | 'stream-hash-mismatch'
  | 'unsafe-entry'
  | 'not-archived'
  | 'retention-short'
  | 'attachment-missing'
  | 'attachment-size'
  | 'attachment-corrupt';

export interface Problem {
  kind: ProblemKind;
  dataset: string;
  stream?: string;
  object?: string;
  /** For a damaged manifest: the offending field (`chunks[3].rawSize`). */
  field?: string;
  expected?: string;
  found?: string;
  message: string;
}

/** One stream directory as found in the archive. */
export interface StreamDir {
  dataset: string;
  streamId: string;
  /** `<dataset path>/<stream id>/` */
  prefix: string;
  objects: ObjectInfo[];
  manifest?: Manifest;
  /**
   * Instead of `manifest` (and `sums`), unread: the stream index entry the listing matches in
   * full — same manifest object, exactly its chunk objects with their sizes, the SHA256SUMS its
   * writer recorded (Repository.listStreams with `index`).
   */
  indexed?: IndexedStream;
  /** The manifest exists but is unusable (catalog.ts readManifest says why). */
  damaged?: DamagedStream;
  /** SHA256SUMS text, or undefined when absent. */
  sums?: string;
}

/** A directory shaped like a stream directory whose key is invalid (format/keys.ts parseStreamKey). */
export interface InvalidDir {
  /** `<key prefix>/` as listed. */
  prefix: string;
  /** Why the key is invalid. */
  reason: string;
  objects: ObjectInfo[];
}

/**
 * Groups a listing into stream directories; objects outside any stream are returned apart, and
 * so are directories whose key is invalid (never read: a problem of that directory alone).
 */
export function groupByStream(objects: readonly ObjectInfo[]): { streams: Map<string, StreamDir>; loose: ObjectInfo[]; invalid: Map<string, InvalidDir>; indexes: ObjectInfo[] } {
  const streams = new Map<string, StreamDir>();
  const invalid = new Map<string, InvalidDir>();
  const loose: ObjectInfo[] = [];
  const indexes: ObjectInfo[] = [];
  for (const o of objects) {
    const slash = o.key.lastIndexOf('/');
    const dir = o.key.slice(0, slash + 1);
    const parsed = slash > 0 ? parseStreamKey(`${dir}${MANIFEST_NAME}`) : undefined;
    // A dataset's stream index (format/stream-index.ts): a cache beside its stream directories
    // (`~` is always escaped in their names, format/keys.ts). One inside a stream directory is not.
    if (!parsed && slash > 0 && indexSegmentNumber(o.key.slice(slash + 1)) !== undefined) {
      indexes.push(o);
      continue;
    }
    if (!parsed) {
      // The archive marker, a dataset's lease (held by a running job), its recorded verify and
      // drill results (format/status-record.ts) and the probes `check` could not remove with an
      // append-only key (format/keys.ts) belong where they are.
      if (o.key !== MARKER_KEY && !o.key.endsWith(`/${LEASE_NAME}`) && !o.key.startsWith(CHECK_PREFIX) && !isStatusRecordKey(o.key)) loose.push(o);
      continue;
    }
    if ('invalid' in parsed) {
      const d = invalid.get(dir) ?? { prefix: dir, reason: parsed.invalid, objects: [] };
      d.objects.push(o);
      invalid.set(dir, d);
      continue;
    }
    let s = streams.get(dir);
    if (!s) {
      s = { ...parsed, prefix: dir, objects: [] };
      streams.set(dir, s);
    }
    s.objects.push(o);
  }
  return { streams, loose, invalid, indexes };
}

/**
 * SHA256SUMS as a lookup by chunk name, the last line for a name winning. The digests of the
 * chunks `000000.zst` … of a stream of `count` chunks are kept as 32 bytes each in one Buffer,
 * not as a Map of strings: SHA256SUMS of 500,000 chunks is 40 MB of text (issue 17).
 */
function parseSums(text: string, count: number): (name: string, index: number) => string | undefined {
  const digests = Buffer.alloc(count * 32);
  const present = new Uint8Array(count);
  const others = new Map<string, string>();
  for (let at = 0; at < text.length; ) {
    const end = text.indexOf('\n', at);
    const line = text.slice(at, end < 0 ? text.length : end);
    at = end < 0 ? text.length : end + 1;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) continue;
    const i = chunkIndexOf(m[2]!, count);
    if (i === undefined) others.set(m[2]!, m[1]!);
    else {
      digests.write(m[1]!, i * 32, 32, 'hex');
      present[i] = 1;
    }
  }
  return (name, index) => (present[index] && name === chunkName(index) ? digests.toString('hex', index * 32, index * 32 + 32) : others.get(name));
}

/** The index of `name` when it is the name of chunk 0 … count − 1 (chunkName), else undefined. */
function chunkIndexOf(name: string, count: number): number | undefined {
  if (!/^[0-9]{6,}\.zst$/.test(name)) return undefined;
  const i = Number(name.slice(0, -4));
  return i < count && chunkName(i) === name ? i : undefined;
}

/** Whether a stream of `count` chunks has an object of this name: the manifest, SHA256SUMS or a chunk. */
function isStreamObject(name: string, count: number): boolean {
  return name === MANIFEST_NAME || name === SUMS_NAME || chunkIndexOf(name, count) !== undefined;
}

export interface QuickAuditInput {
  streams: Iterable<StreamDir>;
  loose: readonly ObjectInfo[];
  /** Links and special files found inside the target: never followed, always reported. */
  unsafe?: readonly { key: string; type: string }[];
  /** Directories with an invalid key: one `key-invalid` problem each. */
  invalid?: readonly InvalidDir[];
  now: Date;
  /** In-progress streams (journal, no manifest) younger than this are not problems. */
  staleAfterMs: number;
  location: string;
}

function attachmentKeys(m: ManifestSummary): string[] {
  return (m.attachments ?? []).map((a) => a.key);
}

/** Quick verify of a stream's attachments: each present with the size its manifest names. */
function attachmentProblems(m: ManifestSummary, prefix: string, names: Map<string, ObjectInfo>, where: (key: string) => string): Problem[] {
  const problems: Problem[] = [];
  for (const a of m.attachments ?? []) {
    const o = names.get(a.key);
    const base = { dataset: m.dataset, stream: m.streamId, object: where(prefix + a.key) };
    if (!o) problems.push({ ...base, kind: 'attachment-missing', message: `attachment ${a.name} is missing` });
    else if (o.size !== a.size) {
      problems.push({ ...base, kind: 'attachment-size', expected: String(a.size), found: String(o.size), message: `attachment ${a.name} has ${o.size} bytes, the manifest says ${a.size}` });
    }
  }
  return problems;
}

export function quickAudit(input: QuickAuditInput): Problem[] {
  const problems: Problem[] = [];
  const where = (key: string) => `${input.location}/${key}`;
  const ageOf = (objects: ObjectInfo[]) => {
    const newest = Math.max(...objects.map((o) => o.modified?.getTime() ?? input.now.getTime()));
    return input.now.getTime() - newest;
  };
  const committed = new Map<string, ManifestSummary[]>();
  for (const s of input.streams) {
    const names = new Map(s.objects.map((o) => [o.key.slice(s.prefix.length), o]));
    const base = { dataset: s.dataset, stream: s.streamId };
    if (s.indexed) {
      // The listing matched the index entry: every chunk present with its size, SHA256SUMS as
      // its writer left it. Only objects beyond those are left to report.
      const m = s.indexed;
      committed.set(m.dataset, [...(committed.get(m.dataset) ?? []), m]);
      const attached = new Set(attachmentKeys(m));
      problems.push(...attachmentProblems(m, s.prefix, names, where));
      for (const [name, o] of names)
        if (name !== JOURNAL_NAME && !isStreamObject(name, m.chunkCount) && !attached.has(name))
          problems.push({ ...base, kind: 'orphan-object', object: where(o.key), message: 'object not listed in the manifest' });
      continue;
    }
    if (!s.manifest) {
      if (s.damaged) {
        const d = s.damaged;
        problems.push({ ...base, kind: d.kind, object: d.object, ...(d.field === undefined ? {} : { field: d.field }), message: d.message });
        continue;
      }
      const age = ageOf(s.objects);
      if (age >= input.staleAfterMs) {
        const what = names.has(JOURNAL_NAME) ? 'in-progress stream (journal, no manifest)' : 'objects without a manifest';
        problems.push({
          ...base,
          kind: names.has(JOURNAL_NAME) ? 'stale-in-progress' : 'orphan-object',
          object: where(s.prefix),
          found: `${Math.round(age / 1000)} s old`,
          message: `${what}, ${formatAge(age)} old: an interrupted upload (rerun it, or prune it)`,
        });
      }
      continue;
    }
    const m = s.manifest;
    committed.set(m.dataset, [...(committed.get(m.dataset) ?? []), m]);
    const attached = new Set(attachmentKeys(m));
    problems.push(...attachmentProblems(m, s.prefix, names, where));
    for (const c of m.chunks) {
      const o = names.get(c.key);
      if (!o) problems.push({ ...base, kind: 'chunk-missing', object: where(s.prefix + c.key), message: 'chunk object is missing' });
      else if (o.size !== c.storedSize) {
        problems.push({
          ...base,
          kind: 'chunk-size',
          object: where(s.prefix + c.key),
          expected: String(c.storedSize),
          found: String(o.size),
          message: `chunk object has ${o.size} bytes, the manifest says ${c.storedSize}`,
        });
      }
    }
    if (s.sums === undefined) {
      problems.push({ ...base, kind: 'sums-missing', object: where(s.prefix + SUMS_NAME), message: 'SHA256SUMS is missing' });
    } else {
      const sums = parseSums(s.sums, m.chunks.length);
      for (const c of m.chunks) {
        const listed = sums(c.key, c.index);
        if (listed !== c.storedSha256) {
          problems.push({
            ...base,
            kind: 'sums-mismatch',
            object: where(s.prefix + c.key),
            expected: c.storedSha256,
            found: listed ?? 'absent',
            message: `SHA256SUMS and the manifest disagree about ${c.key}`,
          });
        }
      }
    }
    for (const [name, o] of names) {
      if (!isStreamObject(name, m.chunks.length) && name !== JOURNAL_NAME && !attached.has(name)) {
        problems.push({ ...base, kind: 'orphan-object', object: where(o.key), message: 'object not listed in the manifest' });
      }
    }
  }
  const everywhere = new Set([...committed.values()].flat().flatMap((m) => m.substreams.map((s) => s.toguid)));
  for (const [dataset, manifests] of committed) {
    for (const m of buildChains(manifests, everywhere).broken) {
      const first = m.substreams[0];
      problems.push({
        dataset,
        stream: m.streamId,
        kind: 'chain-broken',
        expected: first?.fromguid,
        message: `incremental stream whose base snapshot (guid ${first?.fromguid}) is in no archived stream of ${dataset}`,
      });
    }
  }
  for (const u of input.unsafe ?? []) {
    const message = `${u.type === 'symlink' ? 'a symbolic link' : `a ${u.type}`} inside the target: never followed or read; remove it or find out who put it there`;
    problems.push({ dataset: '', kind: 'unsafe-entry', object: where(u.key), found: u.type, message });
  }
  for (const d of input.invalid ?? []) {
    problems.push({
      dataset: '',
      kind: 'key-invalid',
      object: where(shownKey(d.prefix)),
      message: `not a valid archive key (${d.reason}): not written by zfs-offsite; its ${d.objects.length} object${d.objects.length === 1 ? ' is' : 's are'} never read or deleted`,
    });
  }
  for (const o of input.loose) {
    problems.push({ dataset: '', kind: 'orphan-object', object: where(o.key), message: 'object outside any stream directory' });
  }
  return problems;
}

export function formatAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
