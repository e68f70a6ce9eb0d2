import type { ConfigListing, ConfigPruneReport, ConfigVerifyReport } from '../../jobs/config-targets.js';
import { formatListing } from './list.js';
import { formatPruneReport } from './prune.js';
import { formatVerifyReport } from './verify.js';

/** `list --config`: one section per target, headed by it, then the config's datasets not archived yet. */
export function formatConfigListing(sections: ConfigListing[]): string {
  return sections
    .map((s) => {
      const body = s.datasets.length > 0 ? formatListing(s.datasets) : s.notArchived.length > 0 ? '' : 'the archive holds no streams of these datasets\n';
      const missing = s.notArchived.length > 0 ? `not archived yet: ${s.notArchived.join(', ')}\n` : '';
      return `target ${s.target}:\n${body}${missing}`;
    })
    .join('\n');
}

/** `verify --config`: each target's report (it names the target), then the total over them. */
export function formatConfigVerify(r: ConfigVerifyReport): string {
  const parts = r.targets.map(formatVerifyReport);
  if (r.targets.length > 1) {
    const n = r.problems.length;
    parts.push(`${r.targets.length} targets: ${n === 0 ? 'clean' : `${n} problem${n === 1 ? '' : 's'} found`} (${r.seconds.toFixed(1)} s)\n`);
  }
  return parts.join('\n');
}

/** `prune --config`: each dataset entry's report on its target, then the datasets left alone. */
export function formatConfigPrune(r: ConfigPruneReport): string {
  const parts = r.reports.map(formatPruneReport);
  if (r.skipped.length > 0) parts.push(r.skipped.map((s) => `${s.dataset} on ${s.target}: not pruned (${s.reason})\n`).join(''));
  return parts.join('\n');
}
