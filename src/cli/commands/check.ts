import type { Command } from 'commander';
import { checkTarget } from '../../jobs/check.js';
import { formatCheck } from '../output/check.js';
import { printJson } from '../output/json.js';
import { printText } from '../output/print.js';
import { addSettingFlags, settingsFromFlags } from '../setting-flags.js';
import { type CommandDeps, openTarget } from './common.js';

/** Exit 3 when a problem was found (README "Exit codes"), as verify. */
export const CHECK_PROBLEMS_EXIT = 3;

export function registerCheck(program: Command, deps: CommandDeps): void {
  addSettingFlags(
    program
      .command('check')
      .description('check a target: reachable, credentials, write/read/delete (or append-only), and for S3 clock, versioning, Object Lock, multipart lifecycle, x-amz-content-sha256 checks')
      .argument('<target>', 'file:///path, /path, s3://bucket/prefix or sftp://user@host/path')
      .option('--json', 'machine-readable report'),
    'target',
  ).action(async (target: string, o: { json?: boolean } & Record<string, unknown>, cmd: Command) => {
    const settings = settingsFromFlags(o, ['target']);
    // A doctor answers quickly: an unreachable server is a finding, not two minutes of retries
    // (unless --retries / --retry-time are typed).
    if (cmd.getOptionValueSource('retries') !== 'cli') settings.retries = 2;
    if (cmd.getOptionValueSource('retryTime') !== 'cli') settings.retryTime = 20_000;
    const report = await checkTarget(target, () => openTarget(target, settings));
    if (o.json) printJson(report);
    else printText(formatCheck(report));
    if (report.problems > 0) deps.setExitCode(CHECK_PROBLEMS_EXIT);
  });
}
