import { Command, CommanderError } from 'commander';
import { UsageError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/logger.js';
import { redactText } from '../util/redact.js';
import { TOOL_VERSION } from '../util/version.js';
import { registerCheck } from './commands/check.js';
import type { CommandDeps } from './commands/common.js';
import { registerDrill } from './commands/drill.js';
import { registerCopy } from './commands/copy.js';
import { registerList } from './commands/list.js';
import { registerPrune } from './commands/prune.js';
import { registerPut } from './commands/put.js';
import { registerRestore } from './commands/restore.js';
import { registerRun } from './commands/run.js';
import { registerSend } from './commands/send.js';
import { registerStatus } from './commands/status.js';
import { registerVerify } from './commands/verify.js';
import { exitCodeFor, oneLineError, parserErrorLine } from './exit.js';
import { Interrupts } from './interrupt.js';
import { STOP_SIGNALS } from '../util/interrupted.js';

interface GlobalOptions {
  logLevel?: string;
  quiet?: boolean;
  /** How many times -v was given. */
  verbose?: number;
  logJson?: boolean;
  logFile?: string;
  zfsCmd?: string;
}

/** What an action wants the process to exit with, when it is not 0 and not an error (verify: 3). */
export interface Outcome {
  exitCode: number;
}

/** The level names pino knows (src/util/logger.ts hands the name to it). */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * -q (errors only), -v (info), -vv (debug), --log-level, else ZFS_OFFSITE_LOG_LEVEL; checked
 * before the logger is made: pino's own message names its internals.
 */
function logLevel(g: GlobalOptions): string | undefined {
  const given = [g.quiet && '-q', g.verbose && '-v', g.logLevel !== undefined && '--log-level'].filter((f) => typeof f === 'string');
  if (given.length > 1) throw new UsageError(`${given.join(' and ')} exclude each other`, { kind: 'bad-log-level' });
  if (g.quiet) return 'error';
  if (g.verbose) return g.verbose > 1 ? 'debug' : 'info';
  const flag = g.logLevel;
  const [level, source] = flag !== undefined ? [flag, '--log-level'] : [process.env.ZFS_OFFSITE_LOG_LEVEL, 'ZFS_OFFSITE_LOG_LEVEL'];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`${source} must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(level)})`, { kind: 'bad-log-level' });
  }
  return level;
}

/** The commander program: global options, then one module per command (src/cli/commands/). */
export function buildProgram(getLog: () => Logger, outcome: Outcome = { exitCode: 0 }, interrupts: Interrupts = new Interrupts()): Command {
  const program = new Command('zfs-offsite')
    .description('Archive ZFS send streams to S3, SFTP or a local directory, and restore them')
    .version(TOOL_VERSION)
    .option('--log-level <level>', `${LOG_LEVELS.join(', ')} (default: warn; env ZFS_OFFSITE_LOG_LEVEL)`, undefined)
    .option('-q, --quiet', 'errors only: no warnings, no progress line (--log-level error --no-progress)')
    .option('-v, --verbose', 'say what is done (--log-level info); -vv: debug', (_v: string, n: number) => n + 1, 0)
    .option('--log-json', 'log JSON lines on stderr instead of text')
    .option('--log-file <file>', 'also append JSON logs to this file')
    .option('--zfs-cmd <command>', 'how to run zfs, e.g. "ssh root@host zfs" (env ZFS_OFFSITE_ZFS_CMD)')
    // Before the commands are added, which inherit it: commander prints nothing of an error
    // itself (main() prints it in the one form of every error), help and version as usual.
    .configureOutput({ writeErr: (text) => process.stderr.write(redactText(text)), outputError: () => undefined });

  const deps: CommandDeps = {
    getLog,
    zfsCommand: () => program.opts<GlobalOptions>().zfsCmd,
    setExitCode: (code) => (outcome.exitCode = code),
    interruptSignal: (afterwards?: string) => interrupts.takeOver(afterwards),
  };
  registerPut(program, deps);
  registerSend(program, deps);
  registerList(program, deps);
  registerRestore(program, deps);
  registerVerify(program, deps);
  registerPrune(program, deps);
  registerRun(program, deps);
  registerDrill(program, deps);
  registerCheck(program, deps);
  registerStatus(program, deps);
  registerCopy(program, deps);
  return program;
}

/**
 * Runs the CLI on `argv` and returns the exit code: every failure is one line on stderr and the
 * code of README's exit-code table (src/cli/exit.ts), never a stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  let log: Logger | undefined;
  const outcome: Outcome = { exitCode: 0 };
  const getLog = (): Logger => {
    const g = program.opts<GlobalOptions>();
    log ??= createLogger({ level: logLevel(g), json: g.logJson, file: g.logFile });
    return log;
  };
  const interrupts = new Interrupts();
  const program = buildProgram(getLog, outcome, interrupts);
  // The logger (and its --log-file) before any command runs: a log file that cannot be used is
  // bad input reported like any other (one line, exit 2), also for commands that never log.
  program.hook('preAction', (_program, command) => {
    getLog();
    // -q: no progress line either, as each command's --no-progress.
    if (program.opts<GlobalOptions>().quiet && command.options.some((o) => o.long === '--no-progress')) command.setOptionValue('progress', false);
  });
  // Commander's errors become exceptions, caught below, remembering whose usage it was.
  let failing = program;
  for (const cmd of [program, ...program.commands]) {
    cmd.exitOverride((err) => {
      failing = cmd;
      throw err;
    });
  }
  interrupts.install();
  try {
    await program.parseAsync(argv);
    return outcome.exitCode;
  } catch (err) {
    // Stopped by Ctrl-C or SIGTERM, whatever failed on the way out (README, "Exit codes").
    const stopped = interrupts.signal;
    if (stopped !== undefined) {
      process.stderr.write(`${interrupts.line(err)}\n`);
      return STOP_SIGNALS[stopped];
    }
    if (err instanceof CommanderError) {
      // --help, --version: 0. No command given: the help, printed on stderr, and 2.
      if (err.exitCode === 0) return 0;
      if (err.code !== 'commander.help') {
        const path = failing === program ? program.name() : `${program.name()} ${failing.name()}`;
        process.stderr.write(`zfs-offsite: error: ${parserErrorLine(err, path)}\n`);
      }
      return 2;
    }
    process.stderr.write(`zfs-offsite: error: ${oneLineError(err)}\n`);
    return exitCodeFor(err);
  } finally {
    interrupts.uninstall();
  }
}
