import type { RunReport } from '../../jobs/run.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

/** The human table of `run`, then why and what failed, per dataset. */
export function formatRunReport(r: RunReport): string {
  // A TARGET column only when an entry has several targets (one result per target).
  const targets = r.results.some((x) => x.target !== undefined);
  const rows = [['DATASET', ...(targets ? ['TARGET'] : []), 'RESULT', 'SNAPSHOT', 'KIND', 'STREAM', 'STORED', 'UPLOADED', 'PRUNED', 'TIME']];
  for (const x of r.results) {
    rows.push([
      x.dataset,
      ...(targets ? [x.target ?? '-'] : []),
      x.status === 'failed' ? `FAILED (${x.step})` : x.status,
      x.snapshot?.slice(x.snapshot.indexOf('@') + 1) ?? '-',
      x.kind ?? '-',
      x.rawBytes !== undefined ? formatBytes(x.rawBytes) : '-',
      x.storedBytes !== undefined ? formatBytes(x.storedBytes) : '-',
      x.uploadedBytes !== undefined ? formatBytes(x.uploadedBytes) : '-',
      x.prunedStreams !== undefined ? String(x.prunedStreams) : '-',
      `${x.seconds.toFixed(1)} s`,
    ]);
  }
  const lines = [`${r.dryRun ? 'dry run of' : 'run of'} ${r.config}:`, ...renderTable(rows)];
  for (const x of r.results) {
    const who = x.target ? `${x.dataset} on ${x.target}` : x.dataset;
    if (x.why) lines.push(`  ${who}: ${x.why}`);
    if (x.message) lines.push(`  ${who}: ${x.status === 'failed' ? 'ERROR ' : ''}${x.message}`);
  }
  const failed = r.results.filter((x) => x.status === 'failed').length;
  lines.push(failed === 0 ? `all ${r.results.length} dataset(s) ok` : `${failed} of ${r.results.length} dataset(s) FAILED`);
  return `${lines.join('\n')}\n`;
}
