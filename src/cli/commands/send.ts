import { type Command, Option } from 'commander';
import { archiveSettings } from '../../jobs/archive-stream.js';
import { planSend, sendSnapshot } from '../../jobs/send.js';
import { formatUploadPlan } from '../output/dry-run.js';
import { Zfs } from '../../zfs/zfs.js';
import { archiveSummaryLine } from '../output/archive.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, withTarget } from './common.js';
import { addUploadFlags, attachFlags, type UploadCliOptions } from './upload-flags.js';

interface SendCliOptions extends UploadCliOptions {
  to: string;
  from?: string;
  intermediates?: boolean;
  full?: boolean;
  raw?: boolean;
  bookmark: boolean;
  largeBlocks: boolean;
  compressed: boolean;
  dryRun?: boolean;
}

export function registerSend(program: Command, deps: CommandDeps): void {
  addUploadFlags(
    program
      .command('send')
      .description('run zfs send for a snapshot and archive the stream (incremental from the newest archived base)')
      .argument('<snapshot>', 'pool/dataset@snapshot')
      .requiredOption('--to <target>', 'file:///path, /path, or s3://bucket/prefix')
      .option('--from <base>', 'base snapshot (snap, @snap, pool/ds@snap) or bookmark (#bm)')
      .option('-I, --intermediates', 'include every snapshot between base and target (zfs send -I)')
      .option('--full', 'send a full stream even when the archive has a base')
      .addOption(new Option('--raw', 'raw send (zfs send -w); default for encrypted datasets'))
      .addOption(new Option('--no-raw', 'never raw, even for encrypted datasets (the archive then holds plaintext)'))
      .option('--no-bookmark', 'do not keep a zfs-offsite-<target id>_<snap> bookmark of the archived snapshot on the source')
      .option('--no-large-blocks', 'non-raw sends: split large records into 128K blocks (no zfs send -L)')
      .option('--no-compressed', 'non-raw sends: send blocks decompressed (no zfs send -c)')
      .option('--dry-run', 'print what would be sent (snapshot, the base the planner chooses, the zfs send command); send and write nothing'),
  ).action(async (snapshot: string, o: SendCliOptions) => {
    const signal = deps.interruptSignal();
    const values = settingsFromFlags(o, ['target', 'upload']);
    const settings = archiveSettings(values, o.progress);
    const zfs = Zfs.fromCommand(deps.zfsCommand());
    const attachments = attachFlags(o);
    await withTarget(o.to, values, async (backend, pool) => {
      const job = {
        snapshot,
        backend,
        zfs,
        pool,
        settings,
        log: deps.getLog(),
        from: o.from,
        intermediates: o.intermediates,
        full: o.full,
        raw: o.raw,
        bookmark: o.bookmark,
        largeBlocks: o.largeBlocks,
        compressed: o.compressed,
        signal,
        attachments,
      };
      if (o.dryRun) {
        const plan = await planSend(job);
        if (o.json) printJson(plan);
        else printText(formatUploadPlan(plan, backend.location));
        return;
      }
      const result = await sendSnapshot(job);
      if (o.json) printJson(result);
      else printText(`${archiveSummaryLine(result, backend.location)}\n`);
    });
  });
}
