import type { ObjectInfo } from '../../storage/backend.js';
import { buildChains } from './chains.js';
import { CHECK_PREFIX, indexSegmentNumber, JOURNAL_NAME, LEASE_NAME, MANIFEST_NAME, MARKER_KEY, parseStreamKey, shownKey, SUMS_NAME } from '../format/keys.js';
import { isStatusRecordKey } from '../format/status-record.js';
import type { DamagedStream } from '../format/catalog.js';
import type { Manifest, ManifestSummary } from '../format/manifest.js';
import type { IndexedStream } from '../format/stream-index.js';
import { chunkIndexOfName, ListedObjects } from '../format/listed-objects.js';
import { ChunkSums } from '../format/chunk-sums.js';

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
  /** What the listing showed there, chunks kept compact (format/listed-objects.ts). */
  objects: ListedObjects;
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
  /**
   * Instead of `sums`: what SHA256SUMS says of the manifest's chunks, read without its text
   * (Repository.listStreams with `sums: 'chunks'`); undefined when absent.
   */
  chunkSums?: ChunkSums;
}

/** A directory shaped like a stream directory whose key is invalid (format/keys.ts parseStreamKey). */
export interface InvalidDir {
  /** `<key prefix>/` as listed. */
  prefix: string;
  /** Why the key is invalid. */
  reason: string;
  objects: ObjectInfo[];
}

export interface GroupedListing {
  streams: Map<string, StreamDir>;
  loose: ObjectInfo[];
  invalid: Map<string, InvalidDir>;
  indexes: ObjectInfo[];
}

/**
 * Groups a listing into stream directories as it comes, one object at a time (nothing else of
 * the listing is kept: issue 17); objects outside any stream are kept apart, and so are
 * directories whose key is invalid (never read: a problem of that directory alone).
 */
export class StreamGrouper {
  readonly grouped: GroupedListing = { streams: new Map(), loose: [], invalid: new Map(), indexes: [] };
  // Objects of one directory come together in a listing: its key is parsed once.
  private lastDir: string | undefined;
  private lastParsed: ReturnType<typeof parseStreamKey>;

  add(o: ObjectInfo): void {
    const { streams, invalid, loose, indexes } = this.grouped;
    const slash = o.key.lastIndexOf('/');
    const dir = o.key.slice(0, slash + 1);
    if (dir !== this.lastDir) {
      this.lastDir = dir;
      this.lastParsed = slash > 0 ? parseStreamKey(`${dir}${MANIFEST_NAME}`) : undefined;
    }
    const parsed = this.lastParsed;
    // A dataset's stream index (format/stream-index.ts): a cache beside its stream directories
    // (`~` is always escaped in their names, format/keys.ts). One inside a stream directory is not.
    if (!parsed && slash > 0 && indexSegmentNumber(o.key.slice(slash + 1)) !== undefined) {
      indexes.push(o);
      return;
    }
    if (!parsed) {
      // The archive marker, a dataset's lease (held by a running job), its recorded verify and
      // drill results (format/status-record.ts) and the probes `check` could not remove with an
      // append-only key (format/keys.ts) belong where they are.
      if (o.key !== MARKER_KEY && !o.key.endsWith(`/${LEASE_NAME}`) && !o.key.startsWith(CHECK_PREFIX) && !isStatusRecordKey(o.key)) loose.push(o);
      return;
    }
    if ('invalid' in parsed) {
      const d = invalid.get(dir) ?? { prefix: dir, reason: parsed.invalid, objects: [] };
      d.objects.push(o);
      invalid.set(dir, d);
      return;
    }
    let s = streams.get(dir);
    if (!s) {
      s = { ...parsed, prefix: dir, objects: new ListedObjects(dir) };
      streams.set(dir, s);
    }
    s.objects.add(o);
  }
}

/** groupByStream of a listing held whole. */
export function groupByStream(objects: readonly ObjectInfo[]): GroupedListing {
  const g = new StreamGrouper();
  for (const o of objects) g.add(o);
  return g.grouped;
}

/** The index of `name` when it is the name of chunk 0 … count − 1 (chunkName), else undefined. */
function chunkIndexOf(name: string, count: number): number | undefined {
  const i = chunkIndexOfName(name);
  return i !== undefined && i < count ? i : undefined;
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
function attachmentProblems(m: ManifestSummary, prefix: string, names: ListedObjects, where: (key: string) => string): Problem[] {
  const problems: Problem[] = [];
  for (const a of m.attachments ?? []) {
    const o = names.info(a.key);
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
  // An object listed without a time counts as new (the newest of all the listed ones decides).
  const ageOf = (objects: ListedObjects) => {
    const known = objects.newest ?? Number.NEGATIVE_INFINITY;
    return input.now.getTime() - (objects.someTimeUnknown ? Math.max(known, input.now.getTime()) : known);
  };
  const committed = new Map<string, ManifestSummary[]>();
  for (const s of input.streams) {
    const names = s.objects;
    const base = { dataset: s.dataset, stream: s.streamId };
    if (s.indexed) {
      // The listing matched the index entry: every chunk present with its size, SHA256SUMS as
      // its writer left it. Only objects beyond those are left to report.
      const m = s.indexed;
      committed.set(m.dataset, [...(committed.get(m.dataset) ?? []), m]);
      const attached = new Set(attachmentKeys(m));
      problems.push(...attachmentProblems(m, s.prefix, names, where));
      for (const name of names.namesBeyond(m.chunkCount))
        if (name !== JOURNAL_NAME && !isStreamObject(name, m.chunkCount) && !attached.has(name))
          problems.push({ ...base, kind: 'orphan-object', object: where(s.prefix + name), message: 'object not listed in the manifest' });
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
      const size = names.sizeOf(c.key);
      if (size === undefined) problems.push({ ...base, kind: 'chunk-missing', object: where(s.prefix + c.key), message: 'chunk object is missing' });
      else if (size !== c.storedSize) {
        problems.push({
          ...base,
          kind: 'chunk-size',
          object: where(s.prefix + c.key),
          expected: String(c.storedSize),
          found: String(size),
          message: `chunk object has ${size} bytes, the manifest says ${c.storedSize}`,
        });
      }
    }
    // A chunk's key is always chunkName(index) (manifest.ts), so SHA256SUMS is looked up by index.
    const sums = s.chunkSums ?? (s.sums === undefined ? undefined : ChunkSums.parse(s.sums, m.chunks.length));
    if (sums === undefined) {
      problems.push({ ...base, kind: 'sums-missing', object: where(s.prefix + SUMS_NAME), message: 'SHA256SUMS is missing' });
    } else {
      for (const c of m.chunks) {
        const listed = sums.digest(c.index);
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
    for (const name of names.namesBeyond(m.chunks.length)) {
      if (!isStreamObject(name, m.chunks.length) && name !== JOURNAL_NAME && !attached.has(name)) {
        problems.push({ ...base, kind: 'orphan-object', object: where(s.prefix + name), message: 'object not listed in the manifest' });
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
