import { buildChains } from '../archive/plan/chains.js';
import type { ManifestSummary } from '../archive/format/manifest.js';
import type { IndexedStream } from '../archive/format/stream-index.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import { Repository } from '../archive/repository.js';
import { invalidKeyWarning } from '../archive/format/catalog.js';
import type { Backend } from '../storage/backend.js';
import type { Logger } from '../util/logger.js';

export interface ListedStream {
  streamId: string;
  kind: 'full' | 'incr';
  snapshot: string;
  guid: string;
  from: { name: string; guid: string } | null;
  snapshots: string[];
  raw: boolean;
  rawBytes: number;
  storedBytes: number;
  chunks: number;
  created: string | undefined;
  archivedAt: string;
  /** Files kept with the stream (`--attach`, config `attach:`): `restore --attachments DIR` writes them out. */
  attachments: { name: string; size: number; sha256: string }[];
}

export interface ListedDataset {
  dataset: string;
  streams: ListedStream[];
  chains: { full: string; streams: string[]; snapshots: string[] }[];
  /** Streams whose base is not in the archive. */
  broken: string[];
  inProgress: string[];
  /** Streams whose manifest is damaged: not listed above, not restorable until rewritten. */
  damaged: { streamId: string; kind: string; object: string; field?: string; message: string }[];
}

/** The archive, or one dataset and its children; a dataset the archive does not hold is a UsageError. */
export async function listArchive(backend: Backend, dataset?: string, log?: Logger): Promise<ListedDataset[]> {
  const repo = await Repository.open(backend);
  const catalog = await repo.catalog(dataset, { children: true });
  for (const i of catalog.invalid) log?.warn(invalidKeyWarning(i));
  const empty = catalog.streams.length + catalog.inProgress.length + catalog.damaged.length === 0;
  if (dataset && empty && !(await repo.hasDataset(dataset, { children: true }))) throw await repo.unknownDataset(dataset);
  const byDataset = new Map<string, IndexedStream[]>();
  for (const m of catalog.streams) byDataset.set(m.dataset, [...(byDataset.get(m.dataset) ?? []), m]);
  for (const p of [...catalog.inProgress, ...catalog.damaged]) if (!byDataset.has(p.dataset)) byDataset.set(p.dataset, []);
  const everywhere = new Set(catalog.streams.flatMap((m) => m.substreams.map((s) => s.toguid)));
  return [...byDataset.entries()].map(([name, streams]) => {
    const { chains, broken } = buildChains(streams, everywhere);
    const chunks = new Map(streams.map((m) => [m.streamId, m.chunkCount]));
    return {
      dataset: name,
      // Oldest first by the snapshot order (the catalog sorts by stream id, which embeds names).
      streams: orderSnapshots(streams).streams.map((m) => describe(m, chunks.get(m.streamId)!)),
      chains: chains.map((c) => ({ full: c.root!.streamId, streams: c.streams.map((s) => s.streamId), snapshots: c.snapshots })),
      broken: broken.map((m) => m.streamId),
      inProgress: catalog.inProgress.filter((p) => p.dataset === name).map((p) => p.streamId),
      damaged: catalog.damaged.filter((d) => d.dataset === name).map(({ streamId, kind, object, field, message }) => ({ streamId, kind, object, ...(field === undefined ? {} : { field }), message })),
    };
  });
}

function describe(m: ManifestSummary, chunks: number): ListedStream {
  return {
    streamId: m.streamId,
    kind: m.kind,
    snapshot: m.to.name,
    guid: m.to.guid,
    from: m.from,
    snapshots: m.substreams.map((s) => s.toname.slice(s.toname.indexOf('@') + 1)),
    raw: m.raw,
    rawBytes: m.rawBytes,
    storedBytes: m.storedBytes,
    chunks,
    created: m.to.creation,
    archivedAt: m.finishedAt,
    attachments: (m.attachments ?? []).map(({ name, size, sha256 }) => ({ name, size, sha256 })),
  };
}
