import { formatAge } from '../../archive/plan/audit.js';
import type { PruneReport } from '../../jobs/prune.js';
import { formatBytes } from '../../util/bytes.js';
import { renderTable } from './table.js';

function snapshotsText(names: string[]): string {
  return names.length > 2 ? `${names[0]}..${names.at(-1)} (${names.length})` : names.join(', ');
}

/** The human report: per dataset what stays, what goes (or would go) and why. */
export function formatPruneReport(r: PruneReport): string {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const lines = [`prune ${r.target}${r.dryRun ? ' (dry run: nothing is deleted)' : ''}`];
  for (const d of r.datasets) {
    const goes = d.deleted.reduce((n, s) => n + s.storedBytes, 0);
    lines.push(`${d.dataset}: keeps ${d.keptStreams} stream${d.keptStreams === 1 ? '' : 's'} (${formatBytes(d.keptBytes)}); ${verb} ${d.deleted.length} (${formatBytes(goes)})`);
    if (d.keptSnapshots.length > 0) {
      const shown = d.keptSnapshots.slice(0, 40).map((s) => `${s.name} (${s.why.join(', ')})`);
      lines.push(`  kept snapshots: ${shown.join(', ')}${d.keptSnapshots.length > 40 ? `, and ${d.keptSnapshots.length - 40} more` : ''}`);
    }
    if (d.deleted.length > 0) {
      const rows = [['KIND', 'SNAPSHOTS', 'STORED', 'STREAM', 'WHY']];
      for (const s of d.deleted) rows.push([s.kind, snapshotsText(s.snapshots), formatBytes(s.storedBytes), s.streamId, s.reason]);
      lines.push(...renderTable(rows));
    }
    if (d.lostSnapshots.length > 0) lines.push(`  no longer restorable afterwards: ${d.lostSnapshots.join(', ')}`);
    for (const b of d.brokenKept) lines.push(`  kept (broken chain): ${b.streamId}: ${b.reason}`);
    for (const l of d.locked) lines.push(`  kept (Object Lock): ${l.streamId} locked until ${l.until}${l.neededBy ? ` (needed by ${l.neededBy})` : ''}`);
    for (const a of d.abandoned) {
      const what = a.hasJournal ? 'abandoned upload (journal, no manifest)' : 'objects without a manifest';
      lines.push(`  ${verb} ${what}: ${a.streamId}, ${a.objects} object${a.objects === 1 ? '' : 's'}, ${formatBytes(a.bytes)}, ${formatAge(a.ageSeconds * 1000)} old`);
    }
    if (d.error) lines.push(`  NOT PRUNED: ${d.error}`);
  }
  if (r.incompleteUploads) lines.push(`incomplete multipart uploads: ${r.incompleteUploads} ${r.dryRun ? 'would be aborted' : 'aborted'}`);
  lines.push(
    `${verb} ${r.deletedStreams} stream${r.deletedStreams === 1 ? '' : 's'}, ${r.deletedObjects} object${r.deletedObjects === 1 ? '' : 's'}, ${formatBytes(r.deletedBytes)} (${r.seconds.toFixed(1)} s)`,
  );
  return `${lines.join('\n')}\n`;
}
