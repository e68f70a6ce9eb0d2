import type { Command, OptionValues } from 'commander';
import { listArchive } from '../../jobs/list.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { formatListing } from '../output/list.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, openTarget } from './common.js';

export function registerList(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    program
      .command('list')
      .description('list archived datasets, streams and chains')
      .argument('<target>', 'file:///path, /path, or s3://bucket/prefix')
      .argument('[dataset]', 'only this dataset')
      .option('--json', 'machine-readable output'),
    'target',
  ).action(async (target: string, dataset: string | undefined, o: OptionValues & { json?: boolean }) => {
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
