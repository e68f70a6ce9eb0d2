import { hostname } from 'node:os';
import type { StreamSummary, SubstreamInfo } from '../../stream/validator.js';
import { splitSnapshotName } from './keys.js';
import { type Manifest, type ManifestAttachment, type ManifestChunk, type ManifestSubstream, MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_VERSION_ATTACHMENTS } from './manifest.js';

const OBJSET_TYPES: Record<number, ManifestSubstream['objsetType']> = { 2: 'filesystem', 3: 'volume' };

function isoSeconds(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString();
}

function word(w: bigint): string {
  return w.toString(16).padStart(16, '0');
}

const RECORD_BYTES = 312;

export function describeSubstream(s: SubstreamInfo, offset: number): ManifestSubstream {
  return {
    toname: s.toname,
    toguid: s.toguid.toString(),
    fromguid: s.fromguid.toString(),
    creation: isoSeconds(s.creationTime),
    objsetType: OBJSET_TYPES[s.objsetType] ?? 'other',
    features: s.features,
    featureFlags: s.featureFlags,
    beginFlags: s.beginFlags,
    raw: s.raw,
    clone: s.clone,
    offset,
    bytes: s.bytes,
    records: s.records,
    endChecksum: s.endChecksum.map(word),
  };
}

/** Substreams with their byte offsets: a compound stream starts with header BEGIN + nvlist + END. */
function describeSubstreams(summary: StreamSummary, txgs: ReadonlyMap<string, string>): ManifestSubstream[] {
  let offset = summary.header ? 2 * RECORD_BYTES + summary.header.nvlistBytes : 0;
  return summary.substreams.map((s) => {
    const described = describeSubstream(s, offset);
    const createtxg = txgs.get(described.toguid);
    if (createtxg !== undefined) described.createtxg = createtxg;
    offset += s.bytes;
    return described;
  });
}

/** Only decimal txgs are recorded: the manifest check (manifest.ts) refuses anything else. */
function validTxgs(txgs: ReadonlyMap<string, string> | undefined): Map<string, string> {
  return new Map([...(txgs ?? [])].filter(([, txg]) => /^(0|[1-9][0-9]{0,19})$/.test(txg) && BigInt(txg) <= 0xffff_ffff_ffff_ffffn));
}

export interface ManifestInputs {
  /** The writer's StreamIdentity (pipeline/writer.ts); only its names are used. */
  identity: { dataset: string; streamId: string };
  summary: StreamSummary;
  sha256: string;
  chunks: ManifestChunk[];
  chunkSize: number;
  level: number;
  sendArgs: string[] | null;
  zfsVersion: string | null;
  fromName: string;
  startedAt: Date;
  toolVersion: string;
  /**
   * GUID → `createtxg` of the stream's snapshots (and its base), from zfs when it was at hand:
   * orders snapshots taken in the same second (snapshot-order.ts). Absent: not recorded.
   */
  txgs?: ReadonlyMap<string, string>;
  /** Files stored beside the manifest (already written): listed in it, format 1.1. */
  attachments?: readonly ManifestAttachment[];
}

/** Turns what the validator proved about the stream into the manifest (docs/archive-format.md, "Manifest"). */
export function buildManifest(i: ManifestInputs): Manifest {
  const subs = i.summary.substreams;
  const first = subs[0]!;
  const last = subs[subs.length - 1]!;
  const txgs = validTxgs(i.txgs);
  const toTxg = txgs.get(last.toguid.toString());
  const fromTxg = txgs.get(first.fromguid.toString());
  const attachments = i.attachments && i.attachments.length > 0 ? [...i.attachments] : undefined;
  return {
    format: MANIFEST_FORMAT,
    formatVersion: attachments ? MANIFEST_VERSION_ATTACHMENTS : MANIFEST_VERSION,
    toolVersion: i.toolVersion,
    streamId: i.identity.streamId,
    dataset: i.identity.dataset,
    kind: first.fromguid === 0n ? 'full' : 'incr',
    to: { name: splitSnapshotName(last.toname).snapshot, guid: last.toguid.toString(), creation: isoSeconds(last.creationTime), ...(toTxg === undefined ? {} : { createtxg: toTxg }) },
    from: first.fromguid === 0n ? null : { name: i.fromName, guid: first.fromguid.toString(), ...(fromTxg === undefined ? {} : { createtxg: fromTxg }) },
    raw: subs.every((s) => s.raw),
    compound: i.summary.compound,
    substreams: describeSubstreams(i.summary, txgs),
    sendArgs: i.sendArgs,
    zfsVersion: i.zfsVersion,
    host: hostname(),
    startedAt: i.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    rawBytes: i.chunks.reduce((n, c) => n + c.rawSize, 0),
    storedBytes: i.chunks.reduce((n, c) => n + c.storedSize, 0),
    sha256: i.sha256,
    compression: { algorithm: 'zstd', level: i.level, checksum: true },
    chunkSize: i.chunkSize,
    chunks: i.chunks,
    ...(attachments ? { attachments } : {}),
  };
}
