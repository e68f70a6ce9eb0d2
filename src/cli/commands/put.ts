import { existsSync } from 'node:fs';
import { isatty } from 'node:tty';
import type { Command } from 'commander';
import { archiveSettings, archiveStream } from '../../jobs/archive-stream.js';
import { localSnapshotTxgs } from '../../zfs/snapshot-txgs.js';
import type { StreamSummary } from '../../stream/validator.js';
import { fileSource, stdinSource } from '../../util/byte-source.js';
import { UsageError } from '../../util/errors.js';
import { checkDatasetName } from '../../zfs/command.js';
import { Zfs } from '../../zfs/zfs.js';
import { archiveSummaryLine } from '../output/archive.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { addUploadFlags, attachFlags, type UploadCliOptions } from './upload-flags.js';
import { type CommandDeps, openTarget, withTarget } from './common.js';
import { planPut } from '../../jobs/dry-run.js';
import { formatUploadPlan } from '../output/dry-run.js';
import { settingsFromFlags } from '../setting-flags.js';

export function registerPut(program: Command, deps: CommandDeps): void {
  addUploadFlags(
    program
      .command('put')
      .description('archive a ZFS send stream read from stdin or a file')
      .requiredOption('--to <target>', 'file:///path, /path, or s3://bucket/prefix')
      .option('--dataset <name>', 'archive under this dataset name (default: from the stream)')
      .option('--input <file>', 'read the stream from this file instead of stdin')
      .option('--dry-run', 'read only the start of the stream and print what would be archived (dataset, snapshot, base, size); write nothing'),
  ).action(async (o: UploadCliOptions & { to: string; dataset?: string; input?: string; dryRun?: boolean }) => {
    const signal = deps.interruptSignal();
    if (o.dataset !== undefined) checkDatasetName(o.dataset, '--dataset');
    const values = settingsFromFlags(o, ['target', 'upload']);
    const settings = archiveSettings(values, o.progress);
    if (o.input && !existsSync(o.input)) throw new UsageError(`input file not found: ${o.input}`);
    if (!o.input && isatty(0)) throw new UsageError('no input: pipe a zfs send stream into put, or use --input FILE');
    const attachments = attachFlags(o);
    const input = o.input ? fileSource(o.input) : stdinSource();
    if (o.dryRun) {
      const backend = await openTarget(o.to, values);
      try {
        const plan = await planPut({ backend, input, dataset: o.dataset, bytes: input.totalBytes });
        if (o.json) printJson(plan);
        else printText(formatUploadPlan(plan, backend.location));
      } finally {
        await backend.close();
      }
      return;
    }
    await withTarget(o.to, values, async (backend, pool) => {
      // createtxg of the stream's snapshots when this host has them (best effort: snapshot-txgs.ts).
      const zfs = Zfs.fromCommand(deps.zfsCommand());
      const snapshotTxgs = (summary: StreamSummary) => localSnapshotTxgs(zfs, summary);
      const result = await archiveStream({ backend, input, pool, settings, log: deps.getLog(), dataset: o.dataset, sendArgs: null, zfsVersion: null, snapshotTxgs, signal, attachments });
      if (o.json) printJson(result);
      else printText(`${archiveSummaryLine(result, backend.location)}\n`);
    });
  });
}
