import { type Command, Option } from 'commander';
import { checkRetentionPolicy, RetentionPolicyError, type RetentionPolicy } from '../../archive/plan/retention.js';
import { acquireDatasetLock } from '../../archive/lease.js';
import { pruneConfig } from '../../jobs/config-targets.js';
import { pruneArchive, type PruneReport } from '../../jobs/prune.js';
import { pruneOutcomes, writeCommandMetrics } from '../../jobs/metrics.js';
import { formatConfigPrune } from '../output/config.js';
import { parseDuration } from '../../util/duration.js';
import { OperationalError, UsageError } from '../../util/errors.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatPruneReport } from '../output/prune.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, openTarget, targetAndDataset } from './common.js';
import { addMetricsFileOption } from './metrics-option.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, loadConfigTargets, openGroup } from './config-option.js';

interface PruneCliOptions extends ConfigCliOptions {
  keepLast: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  keepYearly: string;
  minFulls: string;
  staleAfter: string;
  dryRun?: boolean;
  json?: boolean;
  metricsFile?: string;
}

/** --metrics-file: what was pruned, per dataset (a dry run deleted nothing: no file). */
function writeMetrics(o: PruneCliOptions, reports: PruneReport[]): void {
  if (o.metricsFile !== undefined && !o.dryRun) writeCommandMetrics(o.metricsFile, 'prune', pruneOutcomes(reports));
}

const KEEP_FLAGS = ['--keep-last', '--keep-daily', '--keep-weekly', '--keep-monthly', '--keep-yearly', '--min-fulls'];

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
    if (err instanceof RetentionPolicyError && err.kind === 'keeps-nothing') {
      throw new UsageError('refusing a retention policy that keeps nothing: give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly a count above 0');
    }
    throw err;
  }
  return policy;
}

export function registerPrune(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addConfigOptions(
      addMetricsFileOption(program.command('prune'))
        .description('delete streams the retention policy no longer needs (never one a kept stream depends on), and uploads abandoned long ago')
        .argument('[target]', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
        .argument('[dataset]', 'only this dataset (default: every dataset in the archive) (with $ZFS_OFFSITE_TARGET set, a single argument is the dataset)')
        .option('--keep-last <n>', 'keep the n newest snapshots', '0')
        .option('--keep-daily <n>', 'keep the newest snapshot of each of the n newest days that have one (UTC)', '0')
        .option('--keep-weekly <n>', 'same for ISO weeks', '0')
        .option('--keep-monthly <n>', 'same for months', '0')
        .option('--keep-yearly <n>', 'same for years', '0')
        .option('--min-fulls <n>', 'keep at least n full streams, each with its chain', '1')
        .option('--stale-after <duration>', 'remove uploads abandoned this long ago (no manifest) and abort S3 multipart uploads as old', '48h')
        .option('--dry-run', 'print exactly what would be deleted, and delete nothing')
        .option('--json', 'machine-readable report'),
      true,
    ),
    'target',
  ).action(async (first: string | undefined, second: string | undefined, o: PruneCliOptions, cmd: Command) => {
    checkConfigUse(o, first !== undefined, 'TARGET');
    const policy = o.config === undefined ? policyFromOptions(o) : undefined;
    const staleAfterMs = parseDuration(o.staleAfter, '--stale-after');
    if (staleAfterMs <= 0) throw new UsageError('--stale-after must be more than 0 (an upload in progress right now would be removed)');
    if (o.config !== undefined) {
      // The policy is each entry's keep: (as run prunes); a --keep-* flag would be a second one.
      const given = KEEP_FLAGS.filter((flag) => cmd.getOptionValueSource(new Option(flag).attributeName()) === 'cli');
      if (given.length > 0) throw new UsageError(`${given.join(', ')} and --config exclude each other: with --config each dataset is pruned by its keep: in the config`);
      const { config, groups } = await loadConfigTargets(cmd, o);
      const log = deps.getLog();
      const report = await pruneConfig(config, groups, openGroup, { log, staleAfterMs, dryRun: Boolean(o.dryRun), lockDataset: (ds, backend) => acquireDatasetLock({ dataset: ds, backend, log }) });
      writeMetrics(o, report.reports);
      if (o.json) printJson(report);
      else printText(formatConfigPrune(report));
      const failed = report.reports.flatMap((r) => r.datasets.filter((d) => d.error));
      if (failed.length > 0) throw new OperationalError(`prune failed for ${failed.map((d) => `${d.dataset} (${d.error})`).join('; ')}`);
      return;
    }
    const { target, dataset } = targetAndDataset(first, second);
    const log = deps.getLog();
    const backend = await openTarget(target, settingsFromFlags(o, ['target']));
    try {
      const report = await pruneArchive({
        backend,
        log,
        dataset,
        policy: policy!,
        staleAfterMs,
        dryRun: Boolean(o.dryRun),
        lockDataset: (ds) => acquireDatasetLock({ dataset: ds, backend, log }),
      });
      writeMetrics(o, [report]);
      if (o.json) printJson(report);
      else printText(formatPruneReport(report));
      const failed = report.datasets.filter((d) => d.error);
      if (failed.length > 0) {
        throw new OperationalError(`prune failed for ${failed.map((d) => `${d.dataset} (${d.error})`).join('; ')}`);
      }
    } finally {
      await backend.close();
    }
  });
}
