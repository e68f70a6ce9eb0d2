import type { CopyReport } from '../../jobs/copy.js';
import { formatBytes } from '../../util/bytes.js';

/** What `copy` did: one line per stream copied or not, then the totals. */
export function formatCopyReport(r: CopyReport): string {
  const lines: string[] = [];
  for (const c of r.copied) {
    const resumed = c.objectsReused > 0 ? `, ${c.objectsReused} kept from an interrupted copy` : '';
    lines.push(`copied ${c.dataset} ${c.streamId}: ${c.objectsCopied} object${c.objectsCopied === 1 ? '' : 's'}, ${formatBytes(c.copiedBytes)}${resumed}`);
  }
  for (const f of r.failed) lines.push(`NOT copied ${f.dataset} ${f.streamId}: ${f.message}`);
  for (const d of r.skippedDamaged) lines.push(`NOT copied ${d.dataset} ${d.streamId}: its manifest is damaged (${d.message})`);
  const bytes = r.copied.reduce((n, c) => n + c.copiedBytes, 0);
  lines.push(
    `${r.from} → ${r.to}: ${r.copied.length} stream${r.copied.length === 1 ? '' : 's'} copied (${formatBytes(bytes)}), ${r.present} already there` +
      (r.failed.length + r.skippedDamaged.length > 0 ? `, ${r.failed.length + r.skippedDamaged.length} not copied` : ''),
  );
  return `${lines.join('\n')}\n`;
}
