import type { RunReport } from '../../jobs/run.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

/** The human table of `run`, then why and what failed, per dataset. */
export function formatRunReport(r: RunReport): string {
  const rows = [['DATASET', 'RESULT', 'SNAPSHOT', 'KIND', 'STREAM', 'STORED', 'UPLOADED', 'PRUNED', 'TIME']];
  for (const x of r.results) {
    rows.push([
      x.dataset,
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
    if (x.why) lines.push(`  ${x.dataset}: ${x.why}`);
    if (x.message) lines.push(`  ${x.dataset}: ${x.status === 'failed' ? 'ERROR ' : ''}${x.message}`);
  }
  const failed = r.results.filter((x) => x.status === 'failed').length;
  lines.push(failed === 0 ? `all ${r.results.length} dataset(s) ok` : `${failed} of ${r.results.length} dataset(s) FAILED`);
  return `${lines.join('\n')}\n`;
}
