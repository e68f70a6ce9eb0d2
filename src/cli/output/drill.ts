import type { DrillReport } from '../../jobs/drill.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

/** `drill`: one row per dataset, then each failure on its own line (stream and reason), then the verdict. */
export function formatDrillReport(r: DrillReport): string {
  const lines: string[] = [];
  for (const name of r.leftoversDestroyed) lines.push(`destroyed the scratch dataset of an earlier drill that did not finish: ${name}`);
  if (r.datasets.length === 0) lines.push('nothing to drill: no archived dataset');
  else {
    const rows = [['TARGET', 'DATASET', 'SNAPSHOT', 'KIND', 'STREAMS', 'BYTES', 'GUIDS', 'TIME', 'RESULT']];
    for (const d of r.datasets) {
      rows.push([
        d.target,
        d.dataset,
        d.snapshot ? `${d.snapshot}${d.sampled ? ' (sampled)' : ''}` : '-',
        d.raw ? 'raw' : 'plain',
        String(d.streams.length),
        formatBytes(d.bytes),
        String(d.checkedSnapshots),
        `${d.seconds.toFixed(1)}s`,
        d.result === 'passed' ? 'passed' : `FAILED (${d.failure!.reason})`,
      ]);
    }
    lines.push(...renderTable(rows));
  }
  for (const d of r.datasets) {
    if (d.failure) lines.push(`${d.dataset}: ${d.failure.reason}${d.failure.stream ? ` in stream ${d.failure.stream}` : ''}: ${d.failure.message}`);
  }
  const failed = r.datasets.filter((d) => d.result === 'failed').length;
  const seed = r.seed === undefined ? '' : ` (seed ${r.seed}: --seed ${r.seed} repeats the choice)`;
  lines.push(
    failed === 0
      ? `drill passed: ${r.datasets.length} dataset${r.datasets.length === 1 ? '' : 's'} restored under ${r.pool} and destroyed again${seed}`
      : `drill FAILED: ${failed} of ${r.datasets.length} dataset${r.datasets.length === 1 ? '' : 's'}${seed}`,
  );
  return `${lines.join('\n')}\n`;
}
