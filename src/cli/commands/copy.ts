import type { Command } from 'commander';
import { copyArchive } from '../../jobs/copy.js';
import { lockRequest } from '../../jobs/object-lock.js';
import { parseSettingText } from '../../settings/values.js';
import { OperationalError } from '../../util/errors.js';
import { checkDatasetName } from '../../zfs/command.js';
import { formatCopyReport } from '../output/copy.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, fromTarget, openTarget } from './common.js';

interface CopyCliOptions {
  from?: string;
  to: string;
  parallel: string;
  json?: boolean;
}

const COPY_LOCK = ['objectLock', 'objectLockMode'] as const;

export function registerCopy(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    program
      .command('copy')
      .description('copy the committed streams one archive holds and another lacks, every hash checked (no ZFS needed)')
      .option('--from <target>', 'the archive to copy from (default: $ZFS_OFFSITE_TARGET)')
      .requiredOption('--to <target>', 'the archive to copy into (created when the target is empty)')
      .argument('[datasets...]', 'only these datasets (default: every dataset of --from)')
      .option('--parallel <n>', 'objects copied at once', '4')
      .option('--json', 'what was copied, as JSON'),
    'target',
    // The Object Lock put, send and run take (src/settings/table.ts), for the streams copied into --to.
    COPY_LOCK,
  ).action(async (datasets: string[], o: CopyCliOptions) => {
    for (const d of datasets) checkDatasetName(d, 'DATASET');
    const parallel = parseSettingText('parallel', o.parallel, '--parallel') as number;
    const values = settingsFromFlags(o, ['target'], COPY_LOCK);
    const lock = lockRequest(values);
    const signal = deps.interruptSignal();
    const source = await openTarget(fromTarget(o.from), values);
    try {
      const target = await openTarget(o.to, values);
      try {
        const report = await copyArchive({ source, target, datasets, parallel, log: deps.getLog(), signal, ...(lock ? { lock } : {}) });
        if (o.json) printJson(report);
        else printText(formatCopyReport(report));
        const damaged = report.failed.find((f) => f.kind === 'copy-damaged');
        const first = damaged ?? report.failed[0];
        if (first) {
          const more = report.failed.length > 1 ? ` (and ${report.failed.length - 1} more stream${report.failed.length === 2 ? '' : 's'} not copied)` : '';
          // exit 3 (cli/exit.ts) when a stream of the source is damaged, as verify's problems.
          throw new OperationalError(`${first.message}${more}`, { kind: damaged ? 'copy-damaged' : 'copy-failed', ...(first.object ? { context: { object: first.object } } : {}) });
        }
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
  });
}
