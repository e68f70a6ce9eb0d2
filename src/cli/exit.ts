import { StorageError } from '../storage/backend.js';
import { errorMessage, OperationalError, UsageError } from '../util/errors.js';
import { redactText } from '../util/redact.js';

/** Exit codes (README, "Exit codes"): 2 bad input, nothing changed; 4 no archive at the target; 1 operational failure. */
export function exitCodeFor(err: unknown): number {
  // archive/format/catalog.ts NoArchiveError, by its kind (as it would be after a worker boundary too).
  if (err instanceof OperationalError && err.kind === 'no-archive') return 4;
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
