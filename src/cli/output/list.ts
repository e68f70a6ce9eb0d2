import type { ListedDataset } from '../../jobs/list.js';
import { formatBytes, formatRatio } from '../../util/bytes.js';
import { renderTable } from './table.js';

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
    if (rows.length > 1) lines.push(...renderTable(rows));
    for (const s of d.streams) {
      if (s.attachments.length > 0) lines.push(`  attached to ${s.snapshot} (${s.streamId}): ${s.attachments.map((a) => `${a.name} (${formatBytes(a.size)})`).join(', ')}`);
    }
    for (const [i, c] of d.chains.entries()) lines.push(`  chain ${i + 1}: ${c.snapshots.join(' → ')} (${c.streams.length} stream${c.streams.length === 1 ? '' : 's'})`);
    for (const b of d.broken) lines.push(`  broken: ${b} (its base is not in the archive)`);
    for (const p of d.inProgress) lines.push(`  in progress or interrupted: ${p}`);
    for (const x of d.damaged) lines.push(`  DAMAGED: ${x.streamId}: ${x.message} (${x.object}); archive that snapshot again to rewrite it`);
    lines.push('');
  }
  return lines.join('\n');
}
