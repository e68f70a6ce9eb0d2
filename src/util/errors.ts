/**
 * Error classes shared by every layer. The CLI maps them to exit codes:
 * UsageError → 2 (bad input, nothing changed), everything else → 1.
 */

/** Bad input from the user: unknown target, malformed URL, missing snapshot… Exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An operation failed (network, storage, zfs). Exit 1. */
export class OperationalError extends Error {
  override name = 'OperationalError';
}

/** The input is not a complete, intact ZFS send stream. Exit 1, nothing committed. */
export class StreamFormatError extends OperationalError {
  override name = 'StreamFormatError';
  constructor(
    /** What is wrong, without the offset. */
    readonly reason: string,
    /** Byte offset in the whole stream where the problem was found. */
    readonly offset: number,
  ) {
    super(`${reason} (at stream offset ${offset})`);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
