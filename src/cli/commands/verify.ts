import type { Command } from 'commander';
import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
import type { SampleLimit } from '../../archive/plan/sampling.js';
import { verifyConfig } from '../../jobs/config-targets.js';
import { verifyArchive } from '../../jobs/verify.js';
import { verifyOutcomes, writeCommandMetrics } from '../../jobs/metrics.js';
import { formatConfigVerify } from '../output/config.js';
import { parseSettingText } from '../../settings/values.js';
import { parseSize } from '../../util/bytes.js';
import { parseDuration } from '../../util/duration.js';
import { UsageError } from '../../util/errors.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatVerifyReport } from '../output/verify.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, targetAndDataset, withTarget } from './common.js';
import { addMetricsFileOption } from './metrics-option.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, loadConfigTargets, openGroup } from './config-option.js';

interface VerifyCliOptions extends ConfigCliOptions {
  deep?: boolean;
  sample?: string;
  maxBytes?: string;
  seed?: string;
  staleAfter: string;
  parallel: string;
  progress: boolean;
  json?: boolean;
  record?: boolean;
  metricsFile?: string;
}

function sampleLimit(o: VerifyCliOptions): SampleLimit | undefined {
  if (o.sample !== undefined && o.maxBytes !== undefined) throw new UsageError('--sample and --max-bytes exclude each other');
  if (o.sample !== undefined) {
    const percent = Number(o.sample.replace(/%$/, ''));
    if (!(percent > 0 && percent <= 100)) throw new UsageError(`invalid --sample: ${JSON.stringify(o.sample)} (expected a percentage such as 5%)`);
    return { percent };
  }
  if (o.maxBytes !== undefined) return { maxBytes: parseSize(o.maxBytes, '--max-bytes') };
  return undefined;
}

export function registerVerify(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addConfigOptions(
      addMetricsFileOption(program.command('verify'))
        .description('audit the archive: quick (listing and manifests), --deep (every byte and ZFS record), or sampled')
        .argument('[target]', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
        .argument('[dataset]', 'only this dataset (with $ZFS_OFFSITE_TARGET set, a single argument is the dataset)')
        .option('--deep', 'download every chunk, check SHA-256s and zstd checksums, walk every ZFS record')
        .option('--sample <percent>', 'deep-check a random share of the stored bytes, e.g. 5%')
        .option('--max-bytes <size>', 'deep-check random chunks up to this many stored bytes, e.g. 10G')
        .option('--seed <n>', 'repeat the random choice of a previous sampled run')
        .option('--stale-after <duration>', 'report in-progress streams older than this', '24h')
        .option('--parallel <n>', 'chunks fetched ahead', '4')
        .option('--no-progress', 'no progress line on a terminal')
        .option('--json', 'one entry per problem, for monitors')
        .option('--record', "store each dataset's result in the archive (<dataset>/~verify.json) for `status` to show"),
      true,
    ),
    'target',
  ).action(async (first: string | undefined, second: string | undefined, o: VerifyCliOptions, cmd: Command) => {
    checkConfigUse(o, first !== undefined, 'TARGET');
    const sample = sampleLimit(o);
    if (o.seed !== undefined && !sample) throw new UsageError('--seed goes with --sample or --max-bytes');
    const seed = o.seed === undefined ? undefined : Number(o.seed);
    if (seed !== undefined && (!Number.isInteger(seed) || seed < 0)) throw new UsageError(`invalid --seed: ${o.seed}`);
    const staleAfterMs = parseDuration(o.staleAfter, '--stale-after');
    // Chunks fetched ahead: a count like the upload setting, read by the same rules.
    const parallel = parseSettingText('parallel', o.parallel, '--parallel') as number;
    if (o.config !== undefined) {
      const { config, groups } = await loadConfigTargets(cmd, o);
      const pool = new ChunkPool();
      try {
        const report = await verifyConfig(config, groups, openGroup, { pool, log: deps.getLog(), deep: Boolean(o.deep), sample, seed, parallel, staleAfterMs, progress: o.progress, record: o.record });
        if (o.metricsFile !== undefined) writeCommandMetrics(o.metricsFile, 'verify', verifyOutcomes(report.targets));
        if (o.json) printJson(report);
        else printText(formatConfigVerify(report));
        if (report.problems.length > 0) deps.setExitCode(3);
      } finally {
        await pool.close();
      }
      return;
    }
    const { target, dataset } = targetAndDataset(first, second);
    await withTarget(target, settingsFromFlags(o, ['target']), async (backend, pool) => {
      const report = await verifyArchive({ backend, pool, log: deps.getLog(), dataset, deep: Boolean(o.deep), sample, seed, parallel, staleAfterMs, progress: o.progress, record: o.record });
      if (o.metricsFile !== undefined) writeCommandMetrics(o.metricsFile, 'verify', verifyOutcomes([report]));
      if (o.json) printJson(report);
      else printText(formatVerifyReport(report));
      if (report.problems.length > 0) deps.setExitCode(3);
    });
  });
}
