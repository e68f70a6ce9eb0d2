import type { Command } from 'commander';
import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
import { datasetSettings, entryFor, loadConfig, type ResolvedDatasetConfig } from '../../config/config.js';
import { runOutcomes, writeCommandMetrics } from '../../jobs/metrics.js';
import { runNightly } from '../../jobs/run.js';
import type { Backend } from '../../storage/backend.js';
import { Zfs } from '../../zfs/zfs.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatRunReport } from '../output/run.js';
import { type CommandDeps, openTarget } from './common.js';
import { addMetricsFileOption } from './metrics-option.js';

/** A dataset's target, opened with the settings of its config entry (secrets only by reference). */
function openDatasetTarget(cfg: ResolvedDatasetConfig): Promise<Backend> {
  return openTarget(cfg.target, datasetSettings(cfg));
}

export function registerRun(program: Command, deps: CommandDeps): void {
  addMetricsFileOption(program.command('run'))
    .description('the nightly job: for every dataset of a config file — lock, snapshot, send, protect the base, prune, verify')
    .requiredOption('--config <file>', 'YAML config (see docs/config.md)')
    .option('--dataset <name>', 'only this dataset')
    .option('--dry-run', 'say what would be snapshotted, sent and pruned; change nothing')
    .option('--no-progress', 'no progress line on a terminal')
    .option('--json', 'machine-readable summary')
    .action(async (o: { config: string; dataset?: string; dryRun?: boolean; progress: boolean; json?: boolean; metricsFile?: string }) => {
      const signal = deps.interruptSignal();
      const config = await loadConfig(o.config);
      const pool = new ChunkPool();
      try {
        const report = await runNightly({
          config,
          zfs: Zfs.fromCommand(deps.zfsCommand()),
          pool,
          log: deps.getLog(),
          openTarget: openDatasetTarget,
          only: o.dataset,
          dryRun: Boolean(o.dryRun),
          progress: o.progress,
          signal,
        });
        // A dry run ran nothing: the metrics of the last real run stay as they are.
        if (o.metricsFile !== undefined && !report.dryRun)
          writeCommandMetrics(
            o.metricsFile,
            'run',
            runOutcomes(report, (ds) => entryFor(config, ds)?.target ?? ''),
          );
        if (o.json) printJson(report);
        else printText(formatRunReport(report));
        if (!report.ok) deps.setExitCode(1);
      } finally {
        await pool.close();
      }
    });
}
