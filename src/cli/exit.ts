import type { CommanderError } from 'commander';
import { StorageError } from '../storage/backend.js';
import { errorMessage, OperationalError, UsageError } from '../util/errors.js';
import { redactText } from '../util/redact.js';

/** Exit codes (README, "Exit codes"): 2 bad input, nothing changed; 4 no archive at the target; 3 copy met a damaged stream; 1 operational failure. */
export function exitCodeFor(err: unknown): number {
  // archive/format/catalog.ts NoArchiveError, by its kind (as it would be after a worker boundary too).
  if (err instanceof OperationalError && err.kind === 'no-archive') return 4;
  // cli/commands/copy.ts: a stream of the source is damaged (a chunk whose hash does not match).
  if (err instanceof OperationalError && err.kind === 'copy-damaged') return 3;
  if (err instanceof UsageError) return 2;
  if (err instanceof StorageError && err.kind === 'not-found-container') return 2;
  return 1;
}

/** The message on one line: users and monitors read the first line only; no URL's password (src/util/redact.ts). */
export function oneLineError(err: unknown): string {
  return redactText(
    errorMessage(err)
      .replace(/\s*\n\s*/g, ' | ')
      .trim(),
  );
}

/**
 * A usage error of the option parser (commander: unknown option, missing argument, unknown
 * command…) in the form of every other error: commander's wording without its own "error: "
 * prefix, its "(Did you mean …?)" on the same line, and where the usage is (`commandPath`,
 * e.g. "zfs-offsite put"). Printed with the prefix by src/cli/program.ts; exit 2.
 */
export function parserErrorLine(err: CommanderError, commandPath: string): string {
  const what = err.message
    .replace(/^error:\s*/, '')
    .replace(/\(Did you mean/g, '(did you mean')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  return redactText(`${what} (see: ${commandPath} --help)`);
}
