import { archivedSnapshots, NoArchiveError } from '../archive/format/catalog.js';
import type { ManifestSummary } from '../archive/format/manifest.js';
import { splitSnapshotName } from '../archive/format/keys.js';
import { Repository } from '../archive/repository.js';
import type { Backend } from '../storage/backend.js';
import { peekStreamStart } from '../stream/peek.js';
import { MAX_BEGIN_PAYLOAD, RECORD_SIZE } from '../stream/records.js';
import type { StreamStart } from '../stream/types.js';
import type { ByteSource } from '../util/byte-source.js';
import { UsageError } from '../util/errors.js';

/**
 * `put --dry-run` and `send --dry-run`: what would be archived — dataset, snapshot, full or
 * incremental and from which base, how big when that is known — with nothing written to the
 * target (not even the archive marker or a lease) and nothing uploaded.
 */
export interface UploadPlan {
  dryRun: true;
  dataset: string;
  /** pool/ds@snap the stream ends at. */
  snapshot: string;
  kind: 'full' | 'incremental';
  /** The base of an incremental: its name when known (send; put: when the archive holds it), its GUID, and whether the archive holds it. */
  base?: { name?: string; guid: string; inArchive: boolean };
  raw: boolean;
  /** Bytes of the stream when known (put --input FILE: the file's size; send: zfs send -nvP's estimate). */
  bytes?: number;
  /** `bytes` is zfs's estimate, not an exact size. */
  estimated?: boolean;
  /** The target holds an archive already (else the first write creates it). */
  archiveExists: boolean;
  /** The archive holds the snapshot already: the run would upload nothing. */
  alreadyArchived: boolean;
  /** send: the zfs send arguments it would run. */
  sendArgs?: string[];
}

/** The archived streams of `dataset`, or none when the target holds no archive yet (read only: nothing is created). */
export async function archivedStreams(backend: Backend, dataset: string): Promise<{ exists: boolean; streams: readonly ManifestSummary[] }> {
  try {
    const repo = await Repository.open(backend);
    return { exists: true, streams: (await repo.catalog(dataset)).streams };
  } catch (err) {
    if (err instanceof NoArchiveError) return { exists: false, streams: [] };
    throw err;
  }
}

/** Reads the stream's first records (BEGIN, and a compound stream's header) from `input`, and no more. */
async function readStart(input: ByteSource): Promise<StreamStart> {
  let buf = new Uint8Array(0);
  for (;;) {
    const more = new Uint8Array(64 * 1024);
    const n = await input.fill(more);
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(more.subarray(0, n), buf.length);
    buf = next;
    const start = peekStreamStart(buf);
    if (start) return start;
    if (n < more.length || buf.length > MAX_BEGIN_PAYLOAD + 3 * RECORD_SIZE) {
      throw new UsageError(buf.length === 0 ? 'empty input: no zfs send stream' : 'the input ends before the stream names its snapshot: not a complete zfs send stream');
    }
  }
}

/** put --dry-run: the stream's BEGIN record says what it is; the archive says whether its base is there. */
export async function planPut(o: { backend: Backend; input: ByteSource; dataset?: string; bytes?: number }): Promise<UploadPlan> {
  let start: StreamStart;
  try {
    start = await readStart(o.input);
  } finally {
    o.input.destroy();
  }
  const named = splitSnapshotName(start.toname);
  const dataset = o.dataset ?? named.dataset;
  const snapshot = `${dataset}@${named.snapshot}`;
  const { exists, streams } = await archivedStreams(o.backend, dataset);
  const archived = archivedSnapshots(streams);
  const fromguid = start.first.fromguid.toString();
  const base =
    start.first.fromguid === 0n ? undefined : { ...(archived.has(fromguid) ? { name: `${dataset}@${archived.get(fromguid)!.name}` } : {}), guid: fromguid, inArchive: archived.has(fromguid) };
  return {
    dryRun: true,
    dataset,
    snapshot,
    kind: base ? 'incremental' : 'full',
    ...(base ? { base } : {}),
    raw: start.first.raw,
    ...(o.bytes !== undefined ? { bytes: o.bytes } : {}),
    archiveExists: exists,
    alreadyArchived: archived.has(start.first.toguid.toString()),
  };
}
