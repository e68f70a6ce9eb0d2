import type { Command } from 'commander';
import { listConfig } from '../../jobs/config-targets.js';
import { listArchive } from '../../jobs/list.js';
import { formatConfigListing } from '../output/config.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatListing } from '../output/list.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, openTarget, targetAndDataset } from './common.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, loadConfigTargets, openGroup } from './config-option.js';

export function registerList(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addConfigOptions(
      program
        .command('list')
        .description('list archived datasets, streams and chains')
        .argument('[target]', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
        .argument('[dataset]', 'only this dataset (with $ZFS_OFFSITE_TARGET set, a single argument is the dataset)')
        .option('--json', 'machine-readable output'),
      true,
    ),
    'target',
  ).action(async (first: string | undefined, second: string | undefined, o: ConfigCliOptions & { json?: boolean }, cmd: Command) => {
    checkConfigUse(o, first !== undefined, 'TARGET');
    if (o.config !== undefined) {
      const { config, groups } = await loadConfigTargets(cmd, o);
      const sections = await listConfig(config, groups, openGroup, deps.getLog());
      if (o.json) printJson(sections);
      else printText(formatConfigListing(sections));
      return;
    }
    const { target, dataset } = targetAndDataset(first, second);
    const backend = await openTarget(target, settingsFromFlags(o, ['target']));
    try {
      const listing = await listArchive(backend, dataset, deps.getLog());
      if (o.json) printJson(listing);
      else printText(formatListing(listing));
    } finally {
      await backend.close();
    }
  });
}
