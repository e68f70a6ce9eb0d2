import type { ArchiveStreamResult } from '../jobs/archive-stream.js';
import type { VerifyReport } from '../jobs/verify.js';
import { formatBytes, formatRatio } from '../util/bytes.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

/** One line saying what was archived, where, and how fast. */
export function archiveSummaryLine(result: ArchiveStreamResult, location: string): string {
  const where = `${location}/${result.dataset}/${result.streamId}`;
  if (result.status === 'already-archived' || !result.manifest) return `already archived: ${where} (nothing uploaded)`;
  const m = result.manifest;
  const what = `${m.dataset}@${m.to.name}`;
  const kind = m.kind === 'full' ? 'full' : `incremental from ${m.from?.name || `guid ${m.from?.guid}`}`;
  const rate = result.seconds > 0 ? m.rawBytes / result.seconds : 0;
  return (
    `archived ${what} (${kind}${m.raw ? ', raw' : ''}) → ${where}: ${formatBytes(m.rawBytes)} stream, ` +
    `${formatBytes(m.storedBytes)} stored (${formatRatio(m.storedBytes, m.rawBytes)}), ${m.chunks.length} chunk${m.chunks.length === 1 ? '' : 's'}, ` +
    `${result.seconds.toFixed(1)} s (${formatBytes(rate)}/s)` +
    (result.chunksReused > 0 ? `; resumed: ${result.chunksReused} chunk(s) of an interrupted upload reused, ${formatBytes(result.uploadedBytes)} uploaded` : '')
  );
}

/** The human table of `verify`, then one line per problem. */
export function formatVerifyReport(r: VerifyReport): string {
  const how = r.mode === 'sampled' ? `sampled deep check (seed ${r.seed}; --seed ${r.seed} repeats it)` : r.mode === 'deep' ? 'deep check' : 'quick check (no data downloaded)';
  const lines = [`verify ${r.target}: ${how}`];
  const rows = [['DATASET', 'STREAMS', 'CHUNKS', 'CHECKED', 'BYTES CHECKED', 'PROBLEMS']];
  for (const d of r.datasets) {
    rows.push([d.dataset, String(d.streams), String(d.chunks), String(d.chunksChecked), formatBytes(d.bytesChecked), String(d.problems)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) lines.push(`  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}`);
  for (const p of r.problems) {
    lines.push(`  PROBLEM ${p.kind}: ${[p.dataset, p.stream].filter(Boolean).join(' ')}${p.object ? ` ${p.object}` : ''}: ${p.message}`);
  }
  lines.push(r.problems.length === 0 ? `clean (${r.seconds.toFixed(1)} s)` : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found (${r.seconds.toFixed(1)} s)`);
  return `${lines.join('\n')}\n`;
}
