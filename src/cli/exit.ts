import { StorageError } from '../storage/backend.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { redactText } from '../util/redact.js';

/** Exit codes (README, "Exit codes"): 2 bad input, nothing changed; 1 operational failure. */
export function exitCodeFor(err: unknown): number {
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
