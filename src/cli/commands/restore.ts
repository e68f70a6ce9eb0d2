import type { Command } from 'commander';
import { datasetSettings, loadConfig } from '../../config/config.js';
import { configEntry } from '../../jobs/config-targets.js';
import type { SettingValues } from '../../settings/table.js';
import { restore } from '../../jobs/restore.js';
import { parseSettingText } from '../../settings/values.js';
import { Zfs } from '../../zfs/zfs.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { describeAttachments, describePlan, restoreJson } from '../output/restore.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, fromTarget, withTarget } from './common.js';
import { addConfigOptions, type ConfigCliOptions, checkConfigUse, explicitSettings } from './config-option.js';

interface RestoreCliOptions extends ConfigCliOptions {
  from?: string;
  into?: string;
  output?: string;
  outputDir?: string;
  dryRun?: boolean;
  force?: boolean;
  resumable?: boolean;
  mount: boolean;
  parallel: string;
  progress: boolean;
  json?: boolean;
  attachments?: string;
  attachmentsOnly?: boolean;
}

export function registerRestore(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    addConfigOptions(
      program
        .command('restore')
        .description('restore a dataset (at its newest or a given snapshot) from the archive into zfs receive')
        .argument('<dataset>', 'DATASET or DATASET@SNAPSHOT as archived (see: list)')
        .option('--from <target>', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path (default: $ZFS_OFFSITE_TARGET)')
        .option('--into <dataset>', 'receive under this name (default: the archived name)')
        .option('--output <file>', 'write the raw stream(s) to FILE or - (stdout) instead of running zfs receive')
        .option('--output-dir <dir>', 'write one file per stream into DIR (created if missing), numbered in the order to receive them, and print the zfs receive commands')
        .option('--dry-run', 'print the plan and exit')
        .option('--force', 'zfs receive -F: roll the destination back / overwrite it; with --output FILE: replace an existing file (or symbolic link) FILE')
        .option('--resumable', 'zfs receive -s: keep partial state when interrupted')
        .option('--no-mount', 'zfs receive -u: do not mount what is received')
        .option('--attachments <dir>', 'write the files kept with the restored streams (put/send --attach) into DIR, SHA-256 checked, before the streams')
        .option('--attachments-only', 'with --attachments DIR: write only the attachments, receive nothing')
        .option('--parallel <n>', 'chunks fetched ahead', '2')
        .option('--no-progress', 'no progress line on a terminal')
        .option('--json', 'print the plan and result as JSON'),
      false,
    ),
    'target',
  ).action(async (what: string, o: RestoreCliOptions, cmd: Command) => {
    checkConfigUse(o, o.from !== undefined, '--from');
    const zfs = o.output || o.outputDir || o.attachmentsOnly ? undefined : Zfs.fromCommand(deps.zfsCommand());
    // Chunks fetched ahead: a count like the upload setting, read by the same rules.
    const parallel = parseSettingText('parallel', o.parallel, '--parallel') as number;
    // --config: the target and settings of the entry that holds the dataset, as run uses them.
    const [target, settings] = o.config === undefined ? [fromTarget(o.from), settingsFromFlags(o, ['target'])] : await configTarget(what, o, cmd);
    await withTarget(target, settings, async (backend, pool) => {
      const result = await restore({
        backend,
        pool,
        log: deps.getLog(),
        what,
        zfs,
        parallel,
        into: o.into,
        output: o.output,
        outputDir: o.outputDir,
        dryRun: o.dryRun,
        force: o.force,
        resumable: o.resumable,
        noMount: !o.mount,
        progress: o.progress,
        attachmentsDir: o.attachments,
        attachmentsOnly: o.attachmentsOnly,
      });
      // With --output -, stdout carries the stream: the report goes to stderr.
      const report = o.output === '-' ? process.stderr : process.stdout;
      if (o.json) printJson(restoreJson(result), report);
      else {
        const mode = o.dryRun ? 'dry-run' : 'done';
        if (result.attachments) printText(describeAttachments(result, mode), report);
        if (!o.attachmentsOnly) printText(describePlan(result, mode), report);
      }
    });
  });
}

async function configTarget(what: string, o: RestoreCliOptions, cmd: Command): Promise<[string, SettingValues]> {
  const config = await loadConfig(o.config!);
  const entry = configEntry(config, what.split('@')[0]!);
  return [entry.target, { ...datasetSettings(entry), ...explicitSettings(cmd, o) }];
}
