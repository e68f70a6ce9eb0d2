import type { StatusRecord } from '../../archive/format/status-record.js';
import { type DatasetStatus, formatSeconds, type StatusReport } from '../../jobs/status.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

/** A recorded verify or drill in a cell: `ok 2026-11-30 (quick)`, `FAILED 2026-11-29 (deep)`, `unknown`. */
function recordCell(r: StatusRecord | null): string {
  if (!r) return 'unknown';
  return `${r.ok ? 'ok' : 'FAILED'} ${r.at.slice(0, 10)}${r.mode ? ` (${r.mode})` : ''}`;
}

function stateCell(d: DatasetStatus): string {
  return d.state === 'ok' ? 'ok' : d.state.toUpperCase();
}

/** The human table of `status`, one section per target, then what is wrong. */
export function formatStatus(r: StatusReport): string {
  if (r.datasets.length === 0) return 'no dataset archived: nothing is fresh\n';
  const lines: string[] = [];
  for (const target of [...new Set(r.datasets.map((d) => d.target))]) {
    const rows = [['DATASET', 'NEWEST', 'AGE', 'MAX AGE', 'CHAIN', 'STREAMS', 'STORED', 'STREAM', 'VERIFY', 'DRILL', 'STATE']];
    for (const d of r.datasets.filter((x) => x.target === target)) {
      rows.push([
        d.dataset,
        d.newest?.snapshot ?? '-',
        d.ageSeconds === null ? '-' : formatSeconds(d.ageSeconds),
        formatSeconds(d.maxAgeSeconds),
        d.chainLength === null ? '-' : String(d.chainLength),
        String(d.streams),
        formatBytes(d.storedBytes),
        formatBytes(d.streamBytes),
        recordCell(d.verify),
        recordCell(d.drill),
        stateCell(d),
      ]);
    }
    lines.push(`target ${target}:`, ...renderTable(rows));
  }
  for (const d of r.datasets) {
    if (d.problem) lines.push(`  ${d.dataset}: ${stateCell(d)}: ${d.problem}`);
    if (d.damaged > 0) lines.push(`  ${d.dataset}: ${d.damaged} damaged manifest(s): see zfs-offsite verify`);
    if (d.newest && d.ageFrom === 'archive-commit') lines.push(`  ${d.dataset}: the newest stream gives no snapshot creation time: its age counts from its commit`);
  }
  const bad = r.datasets.filter((d) => d.state !== 'ok').length;
  lines.push(bad === 0 ? `all ${r.datasets.length} dataset(s) fresh` : `${bad} of ${r.datasets.length} dataset(s) not fresh`);
  return `${lines.join('\n')}\n`;
}

/** A perfdata label: quoted, a quote doubled (Nagios plugin guidelines). */
const perfLabel = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * The one line of `--nagios` (Nagios plugin guidelines): `ZFS-OFFSITE OK - …` or
 * `ZFS-OFFSITE CRITICAL - …`, then `|` and perfdata: each dataset's age in seconds (critical at
 * its max age) and chain length.
 */
export function formatNagios(r: StatusReport): string {
  const perf = r.datasets.flatMap((d) => [
    ...(d.ageSeconds === null ? [] : [`${perfLabel(`${d.dataset} age`)}=${d.ageSeconds}s;;${d.maxAgeSeconds};0`]),
    ...(d.chainLength === null ? [] : [`${perfLabel(`${d.dataset} chain`)}=${d.chainLength};;;0`]),
  ]);
  let text: string;
  if (r.datasets.length === 0) text = 'CRITICAL - no dataset archived';
  else if (r.ok) {
    const oldest = r.datasets.reduce((a, b) => ((b.ageSeconds ?? 0) > (a.ageSeconds ?? 0) ? b : a));
    text = `OK - ${r.datasets.length} dataset(s) fresh; oldest newest snapshot ${oldest.dataset}@${oldest.newest?.snapshot} ${formatSeconds(oldest.ageSeconds ?? 0)} old (max ${formatSeconds(oldest.maxAgeSeconds)})`;
  } else {
    const bad = r.datasets.filter((d) => d.state !== 'ok');
    text = `CRITICAL - ${bad.length} of ${r.datasets.length} dataset(s) not fresh: ${bad.map((d) => `${d.dataset} ${d.state}${d.ageSeconds === null ? '' : ` (${formatSeconds(d.ageSeconds)} old, max ${formatSeconds(d.maxAgeSeconds)})`}`).join('; ')}`;
  }
  return `ZFS-OFFSITE ${text.replace(/\|/g, '/')}${perf.length > 0 ? ` | ${perf.join(' ')}` : ''}\n`;
}

/** `--nagios` when status could not run: UNKNOWN, the error on the same line. */
export function formatNagiosUnknown(message: string): string {
  return `ZFS-OFFSITE UNKNOWN - ${message.replace(/\|/g, '/')}\n`;
}
