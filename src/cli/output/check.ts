import type { CheckReport } from '../../jobs/check.js';
import { renderTable } from './table.js';

const RESULT: Record<string, string> = { ok: 'ok', info: 'info', warn: 'warning', problem: 'PROBLEM', 'n/a': 'n/a', skipped: 'skipped' };

/** `check`'s report: property / result / detail, then one line of totals. */
export function formatCheck(report: CheckReport): string {
  const rows = [['property', 'result', 'detail'], ...report.items.map((i) => [i.property, RESULT[i.status] ?? i.status, i.detail])];
  const totals =
    report.problems === 0
      ? `no problems${report.warnings > 0 ? `, ${report.warnings} warning(s)` : ''}${report.appendOnly ? '; append-only credentials' : ''}`
      : `${report.problems} problem(s)${report.warnings > 0 ? `, ${report.warnings} warning(s)` : ''}`;
  return `check ${report.target} (${report.kind}):\n${renderTable(rows).join('\n')}\n${totals}\n`;
}
