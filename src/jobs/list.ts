import { buildChains } from '../archive/plan/chains.js';
import { loadCatalog } from '../archive/format/catalog.js';
import type { Manifest } from '../archive/format/manifest.js';
import { orderSnapshots } from '../archive/plan/snapshot-order.js';
import type { Backend } from '../storage/backend.js';
import { formatBytes, formatRatio } from '../util/bytes.js';

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

export async function listArchive(backend: Backend, dataset?: string): Promise<ListedDataset[]> {
  await backend.check();
  const catalog = await loadCatalog(backend, dataset);
  const byDataset = new Map<string, Manifest[]>();
  for (const m of catalog.streams) byDataset.set(m.dataset, [...(byDataset.get(m.dataset) ?? []), m]);
  for (const p of [...catalog.inProgress, ...catalog.damaged]) if (!byDataset.has(p.dataset)) byDataset.set(p.dataset, []);
  const everywhere = new Set(catalog.streams.flatMap((m) => m.substreams.map((s) => s.toguid)));
  return [...byDataset.entries()].map(([name, streams]) => {
    const { chains, broken } = buildChains(streams, everywhere);
    return {
      dataset: name,
      // Oldest first by the snapshot order (the catalog sorts by stream id, which embeds names).
      streams: orderSnapshots(streams).streams.map(describe),
      chains: chains.map((c) => ({ full: c.root!.streamId, streams: c.streams.map((s) => s.streamId), snapshots: c.snapshots })),
      broken: broken.map((m) => m.streamId),
      inProgress: catalog.inProgress.filter((p) => p.dataset === name).map((p) => p.streamId),
      damaged: catalog.damaged.filter((d) => d.dataset === name).map(({ streamId, kind, object, field, message }) => ({ streamId, kind, object, ...(field === undefined ? {} : { field }), message })),
    };
  });
}

function describe(m: Manifest): ListedStream {
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
    chunks: m.chunks.length,
    created: m.to.creation,
    archivedAt: m.finishedAt,
  };
}

/** The human table of `list`. */
export function formatListing(datasets: ListedDataset[]): string {
  if (datasets.length === 0) return 'the archive holds no streams\n';
  const lines: string[] = [];
  for (const d of datasets) {
    lines.push(`${d.dataset}`);
    const rows = [['KIND', 'SNAPSHOT', 'FROM', 'RAW', 'SIZE', 'STORED', 'RATIO', 'CREATED', 'STREAM']];
    for (const s of d.streams) {
      rows.push([
        s.kind,
        s.snapshots.length > 1 ? `${s.snapshots[0]}..${s.snapshot}` : s.snapshot,
        s.from ? s.from.name || `guid ${s.from.guid}` : '-',
        s.raw ? 'yes' : 'no',
        formatBytes(s.rawBytes),
        formatBytes(s.storedBytes),
        formatRatio(s.storedBytes, s.rawBytes),
        (s.created ?? '').replace(/\.\d+Z$/, 'Z'),
        s.streamId,
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    if (rows.length > 1) for (const r of rows) lines.push(`  ${r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}`);
    d.chains.forEach((c, i) => lines.push(`  chain ${i + 1}: ${c.snapshots.join(' → ')} (${c.streams.length} stream${c.streams.length === 1 ? '' : 's'})`));
    for (const b of d.broken) lines.push(`  broken: ${b} (its base is not in the archive)`);
    for (const p of d.inProgress) lines.push(`  in progress or interrupted: ${p}`);
    for (const x of d.damaged) lines.push(`  DAMAGED: ${x.streamId}: ${x.message} (${x.object}); archive that snapshot again to rewrite it`);
    lines.push('');
  }
  return lines.join('\n');
}
