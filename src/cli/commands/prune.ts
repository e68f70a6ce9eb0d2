import type { Command, OptionValues } from 'commander';
import { checkRetentionPolicy, type RetentionPolicy } from '../../archive/plan/retention.js';
import { acquireDatasetLock } from '../../archive/lease.js';
import { type PruneReport, pruneArchive } from '../../jobs/prune.js';
import type { Backend } from '../../storage/backend.js';
import { formatBytes } from '../../util/bytes.js';
import { parseDuration } from '../../util/duration.js';
import { OperationalError, UsageError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { formatAge } from '../../archive/plan/audit.js';
import { printJson } from '../output.js';

/** What a command module needs from main.ts, passed in so that it never imports main.ts (which runs the CLI). */
export interface CommandDeps {
  /** Adds the shared target flags (S3, SFTP) to a command. */
  addTargetOptions(cmd: Command): Command;
  /** Opens a target with the options those flags produced. */
  open(target: string, options: OptionValues): Promise<Backend>;
  getLog(): Logger;
}

interface PruneCliOptions extends OptionValues {
  keepLast: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  keepYearly: string;
  minFulls: string;
  staleAfter: string;
  dryRun?: boolean;
  json?: boolean;
}

function count(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`invalid ${flag}: ${JSON.stringify(text)} (expected a whole number ≥ 0)`);
  return n;
}

export function policyFromOptions(o: PruneCliOptions): RetentionPolicy {
  const policy: RetentionPolicy = {
    keepLast: count(o.keepLast, '--keep-last'),
    keepDaily: count(o.keepDaily, '--keep-daily'),
    keepWeekly: count(o.keepWeekly, '--keep-weekly'),
    keepMonthly: count(o.keepMonthly, '--keep-monthly'),
    keepYearly: count(o.keepYearly, '--keep-yearly'),
    minFulls: count(o.minFulls, '--min-fulls'),
  };
  try {
    checkRetentionPolicy(policy);
  } catch (err) {
    if (err instanceof UsageError && /keeps nothing/.test(err.message)) {
      throw new UsageError('refusing a retention policy that keeps nothing: give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly a count above 0');
    }
    throw err;
  }
  return policy;
}

export function registerPrune(program: Command, deps: CommandDeps): void {
  deps
    .addTargetOptions(
      program
        .command('prune')
        .description('delete streams the retention policy no longer needs (never one a kept stream depends on), and uploads abandoned long ago')
        .argument('<target>', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path')
        .argument('[dataset]', 'only this dataset (default: every dataset in the archive)')
        .option('--keep-last <n>', 'keep the n newest snapshots', '0')
        .option('--keep-daily <n>', 'keep the newest snapshot of each of the n newest days that have one (UTC)', '0')
        .option('--keep-weekly <n>', 'same for ISO weeks', '0')
        .option('--keep-monthly <n>', 'same for months', '0')
        .option('--keep-yearly <n>', 'same for years', '0')
        .option('--min-fulls <n>', 'keep at least n full streams, each with its chain', '1')
        .option('--stale-after <duration>', 'remove uploads abandoned this long ago (no manifest) and abort S3 multipart uploads as old', '48h')
        .option('--dry-run', 'print exactly what would be deleted, and delete nothing')
        .option('--json', 'machine-readable report'),
    )
    .action(async (target: string, dataset: string | undefined, o: PruneCliOptions) => {
      const policy = policyFromOptions(o);
      const staleAfterMs = parseDuration(o.staleAfter, '--stale-after');
      if (staleAfterMs <= 0) throw new UsageError('--stale-after must be more than 0 (an upload in progress right now would be removed)');
      const log = deps.getLog();
      const backend = await deps.open(target, o);
      try {
        const report = await pruneArchive({
          backend, log, dataset, policy, staleAfterMs, dryRun: Boolean(o.dryRun),
          lockDataset: (ds) => acquireDatasetLock({ dataset: ds, backend, log }),
        });
        if (o.json) printJson(report);
        else process.stdout.write(formatPruneReport(report));
        const failed = report.datasets.filter((d) => d.error);
        if (failed.length > 0) {
          throw new OperationalError(`prune failed for ${failed.map((d) => `${d.dataset} (${d.error})`).join('; ')}`);
        }
      } finally {
        await backend.close();
      }
    });
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}`);
}

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
      lines.push(...table(rows));
    }
    if (d.lostSnapshots.length > 0) lines.push(`  no longer restorable afterwards: ${d.lostSnapshots.join(', ')}`);
    for (const b of d.brokenKept) lines.push(`  kept (broken chain): ${b.streamId}: ${b.reason}`);
    for (const a of d.abandoned) {
      const what = a.hasJournal ? 'abandoned upload (journal, no manifest)' : 'objects without a manifest';
      lines.push(`  ${verb} ${what}: ${a.streamId}, ${a.objects} object${a.objects === 1 ? '' : 's'}, ${formatBytes(a.bytes)}, ${formatAge(a.ageSeconds * 1000)} old`);
    }
    if (d.error) lines.push(`  NOT PRUNED: ${d.error}`);
  }
  if (r.incompleteUploads) lines.push(`incomplete multipart uploads: ${r.incompleteUploads} ${r.dryRun ? 'would be aborted' : 'aborted'}`);
  lines.push(`${verb} ${r.deletedStreams} stream${r.deletedStreams === 1 ? '' : 's'}, ${r.deletedObjects} object${r.deletedObjects === 1 ? '' : 's'}, ${formatBytes(r.deletedBytes)} (${r.seconds.toFixed(1)} s)`);
  return `${lines.join('\n')}\n`;
}
