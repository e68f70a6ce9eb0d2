import type { Command } from 'commander';
import type { ZfsOffsiteConfig } from '../../config/config.js';
import { configTargets, owns } from '../../jobs/config-targets.js';
import { type DrillReport, type DrillTarget, drill } from '../../jobs/drill.js';
import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
import { parseSettingText } from '../../settings/values.js';
import type { SettingValues } from '../../settings/table.js';
import { UsageError } from '../../util/errors.js';
import { Zfs } from '../../zfs/zfs.js';
import { drillOutcomes, writeCommandMetrics } from '../../jobs/metrics.js';
import { formatDrillReport } from '../output/drill.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, fromTarget, openTarget } from './common.js';
import { addMetricsFileOption } from './metrics-option.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, explicitSettings } from './config-option.js';
import { loadConfig } from '../../config/config.js';

interface DrillCliOptions extends ConfigCliOptions {
  from?: string;
  pool?: string;
  sample?: boolean;
  seed?: string;
  parallel: string;
  progress: boolean;
  json?: boolean;
  metricsFile?: string;
}

/**
 * `zfs-offsite drill`: restore each dataset's newest (or a sampled older) snapshot into a
 * scratch dataset under --pool, compare GUIDs, destroy it (src/jobs/drill.ts). Exit 0 passed,
 * 3 failed, 1 could not run, 2 bad input. The report (a plain DrillReport) is what a metrics
 * writer takes (issue 20).
 */
export function registerDrill(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addConfigOptions(
      addMetricsFileOption(program.command('drill'))
        .description('restore drill: receive the newest (or a sampled) snapshot of each dataset into a scratch dataset, check its GUIDs, destroy it')
        .argument('[datasets...]', 'datasets as archived (default: every dataset of the archive, or of the config)')
        .option('--from <target>', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
        .option('--pool <pool>', 'receive under a scratch dataset POOL/zfs-offsite-drill-<id> (with --config: default drill.pool)')
        .option('--sample', 'a random older snapshot of each dataset instead of the newest')
        .option('--seed <n>', 'with --sample: repeat the random choice of a previous drill')
        .option('--parallel <n>', 'chunks fetched ahead', '2')
        .option('--no-progress', 'no progress line on a terminal')
        .option('--json', 'the report as JSON, for monitors'),
      false,
    ),
    'target',
  ).action(async (datasets: string[], o: DrillCliOptions, cmd: Command) => {
    checkConfigUse(o, o.from !== undefined, '--from');
    const parallel = parseSettingText('parallel', o.parallel, '--parallel') as number;
    const seed = o.seed === undefined ? undefined : Number(o.seed);
    if (seed !== undefined && (!/^\d+$/.test(o.seed!) || !Number.isSafeInteger(seed))) throw new UsageError(`invalid --seed: ${o.seed}`);
    // Every flag is checked before the config is read and before zfs runs: bad input is exit 2, nothing done.
    const settings = o.config === undefined ? settingsFromFlags(o, ['target']) : explicitSettings(cmd, o);
    const config = o.config === undefined ? undefined : await loadConfig(o.config);
    const sample = Boolean(o.sample) || Boolean(config?.drill?.sample);
    if (o.seed !== undefined && !sample) throw new UsageError('--seed goes with --sample');
    const targets = config ? configDrillTargets(config, datasets.length > 0 ? datasets : config.drill?.datasets, settings) : [plainTarget(fromTarget(o.from), settings, datasets)];
    const pool = o.pool ?? config?.drill?.pool;
    if (pool === undefined) {
      throw new UsageError(config ? `no scratch pool: give --pool POOL or set drill.pool in ${config.file}` : 'no scratch pool: give --pool POOL (the drill receives into a scratch dataset under it)');
    }
    const chunkPool = new ChunkPool();
    let report: DrillReport;
    try {
      report = await drill(targets, {
        zfs: Zfs.fromCommand(deps.zfsCommand()),
        pool: chunkPool,
        log: deps.getLog(),
        scratchParent: pool,
        sample,
        seed,
        parallel,
        progress: o.progress,
        signal: deps.interruptSignal('nothing to resume (a drill removes its scratch dataset on the way out)'),
      });
    } finally {
      await chunkPool.close();
    }
    if (o.metricsFile !== undefined) writeCommandMetrics(o.metricsFile, 'drill', drillOutcomes(report));
    if (o.json) printJson(report);
    else printText(formatDrillReport(report));
    if (!report.passed) deps.setExitCode(3);
  });
}

function plainTarget(target: string, settings: SettingValues, datasets: string[]): () => Promise<DrillTarget> {
  return async () => {
    const backend = await openTarget(target, settings);
    return { backend, datasets: async (repo) => (datasets.length > 0 ? datasets : repo.datasets()), close: () => backend.close() };
  };
}

/** Named datasets on their entries' targets; else every archived dataset each entry owns (as verify --config). */
function configDrillTargets(config: ZfsOffsiteConfig, named: string[] | undefined, overrides: SettingValues): (() => Promise<DrillTarget>)[] {
  if (named) {
    return named.map((name) => {
      const group = configTargets(config, name, overrides)[0]!;
      return plainTarget(group.target, group.settings, [name]);
    });
  }
  return configTargets(config, undefined, overrides).map((group) => async () => {
    const backend = await openTarget(group.target, group.settings);
    return {
      backend,
      datasets: async (repo) => (await repo.datasets()).filter((name) => group.datasets.some((d) => owns(config, d, name))),
      close: () => backend.close(),
    };
  });
}
