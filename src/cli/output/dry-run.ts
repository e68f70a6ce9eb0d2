import type { UploadPlan } from '../../jobs/dry-run.js';
import { formatBytes } from '../../util/bytes.js';

/** `put --dry-run` / `send --dry-run`: what would be archived, in a few lines. */
export function formatUploadPlan(plan: UploadPlan, location: string): string {
  const base = plan.base ? `incremental from ${plan.base.name ?? `the snapshot with GUID ${plan.base.guid}`}` : 'full';
  const lines = [`would archive ${plan.snapshot} (${base}${plan.raw ? ', raw' : ''}) → ${location}/${plan.dataset}`];
  if (plan.sendArgs) lines.push(`  ${plan.sendArgs.join(' ')}`);
  const size = plan.estimated ? `~${formatBytes(plan.bytes!)} stream (zfs send -nvP estimates ${plan.bytes} bytes)` : `${formatBytes(plan.bytes!)} stream (${plan.bytes} bytes)`;
  lines.push(`  size: ${plan.bytes !== undefined ? size : 'not known before the stream is read'}`);
  if (plan.alreadyArchived) lines.push('  the archive holds this snapshot already: nothing would be uploaded');
  if (plan.base && !plan.base.inArchive) lines.push(`  the archive does not hold the base (GUID ${plan.base.guid}): a restore needs it on the receiving pool already`);
  if (!plan.archiveExists) lines.push(`  no archive at ${location} yet: it would be created`);
  lines.push('nothing was written (dry run)');
  return `${lines.join('\n')}\n`;
}
