import type { Command } from 'commander';
import { statusConfig } from '../../jobs/config-targets.js';
import { type DatasetOutcome, statusSamples, writeCommandMetrics } from '../../jobs/metrics.js';
import { DEFAULT_MAX_AGE_MS, type DatasetStatus, datasetStatuses, statusReport } from '../../jobs/status.js';
import { entryFor } from '../../config/config.js';
import { parseDuration } from '../../util/duration.js';
import { UsageError } from '../../util/errors.js';
import { oneLineError } from '../exit.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatNagios, formatNagiosUnknown, formatStatus } from '../output/status.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, openTarget, targetAndDataset } from './common.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, loadConfigTargets, openGroup } from './config-option.js';
import { addMetricsFileOption } from './metrics-option.js';

interface StatusCliOptions extends ConfigCliOptions {
  maxAge?: string;
  json?: boolean;
  nagios?: boolean;
  metricsFile?: string;
}

/** Nagios plugin exit codes (the `--nagios` contract); without it: 0 fresh, 3 not fresh, errors as every command. */
const NAGIOS = { ok: 0, critical: 2, unknown: 3 } as const;

export function registerStatus(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addMetricsFileOption(
      addConfigOptions(
        program
          .command('status')
          .description("how fresh each dataset's newest archived snapshot is; exit 3 when one is older than --max-age")
          .argument('[target]', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
          .argument('[dataset]', 'only this dataset and its children (with $ZFS_OFFSITE_TARGET set, a single argument is the dataset)')
          .option('--max-age <duration>', "the newest snapshot may be this old (default: the config entry's max_age, else 26h)")
          .option('--json', 'machine-readable report')
          .option('--nagios', 'one line "ZFS-OFFSITE OK|CRITICAL - …" with perfdata, and Nagios exit codes (0 OK, 2 CRITICAL, 3 UNKNOWN)'),
        true,
      ),
    ),
    'target',
  ).action(async (first: string | undefined, second: string | undefined, o: StatusCliOptions, cmd: Command) => {
    if (o.json && o.nagios) throw new UsageError('--json and --nagios exclude each other');
    try {
      const report = await status(first, second, o, cmd, deps);
      if (o.json) printJson(report);
      else if (o.nagios) printText(formatNagios(report));
      else printText(formatStatus(report));
      if (!report.ok) deps.setExitCode(o.nagios ? NAGIOS.critical : 3);
    } catch (err) {
      if (!o.nagios) throw err;
      // A check that cannot run is UNKNOWN to Nagios, on stdout where it reads the line.
      printText(formatNagiosUnknown(oneLineError(err)));
      deps.setExitCode(NAGIOS.unknown);
    }
  });
}

async function status(first: string | undefined, second: string | undefined, o: StatusCliOptions, cmd: Command, deps: CommandDeps) {
  checkConfigUse(o, first !== undefined, 'TARGET');
  const flag = o.maxAge === undefined ? undefined : parseDuration(o.maxAge, '--max-age');
  if (flag !== undefined && flag <= 0) throw new UsageError('--max-age must be more than 0');
  const started = Date.now();
  const now = new Date();
  const log = deps.getLog();
  let datasets: DatasetStatus[];
  if (o.config !== undefined) {
    const { config, groups } = await loadConfigTargets(cmd, o);
    // The flag typed wins, then the entry's max_age:, then the default.
    const maxAgeMs = (dataset: string) => flag ?? entryFor(config, dataset)?.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    datasets = await statusConfig(config, groups, openGroup, { log, maxAgeMs, now });
  } else {
    const { target, dataset } = targetAndDataset(first, second);
    const backend = await openTarget(target, settingsFromFlags(o, ['target']));
    try {
      datasets = await datasetStatuses({ backend, log, dataset, maxAgeMs: () => flag ?? DEFAULT_MAX_AGE_MS, now });
    } finally {
      await backend.close();
    }
  }
  const report = statusReport(datasets, started, now);
  if (o.metricsFile !== undefined) {
    const outcomes: DatasetOutcome[] = datasets.map((d) => ({ dataset: d.dataset, target: d.target, ok: d.state === 'ok', seconds: report.seconds }));
    writeCommandMetrics(o.metricsFile, 'status', outcomes, statusSamples(datasets), now);
  }
  return report;
}
