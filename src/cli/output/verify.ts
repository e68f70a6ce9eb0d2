import type { VerifyReport } from '../../jobs/verify.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

/** The human table of `verify`, then one line per problem. */
export function formatVerifyReport(r: VerifyReport): string {
  const how = r.mode === 'sampled' ? `sampled deep check (seed ${r.seed}; --seed ${r.seed} repeats it)` : r.mode === 'deep' ? 'deep check' : 'quick check (no data downloaded)';
  const lines = [`verify ${r.target}: ${how}`];
  const rows = [['DATASET', 'STREAMS', 'CHUNKS', 'CHECKED', 'BYTES CHECKED', 'PROBLEMS']];
  for (const d of r.datasets) {
    rows.push([d.dataset, String(d.streams), String(d.chunks), String(d.chunksChecked), formatBytes(d.bytesChecked), String(d.problems)]);
  }
  lines.push(...renderTable(rows));
  for (const p of r.problems) {
    lines.push(`  PROBLEM ${p.kind}: ${[p.dataset, p.stream].filter(Boolean).join(' ')}${p.object ? ` ${p.object}` : ''}: ${p.message}`);
  }
  lines.push(r.problems.length === 0 ? `clean (${r.seconds.toFixed(1)} s)` : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found (${r.seconds.toFixed(1)} s)`);
  return `${lines.join('\n')}\n`;
}
