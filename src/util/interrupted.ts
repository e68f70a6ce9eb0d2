import { OperationalError } from './errors.js';

/** The signals a user or a service manager stops a command with, and their conventional exit codes (128 + number). */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * The command was stopped by a signal (Ctrl-C, `systemctl stop`): the reason of the AbortSignal
 * that src/cli/interrupt.ts gives `put`, `send` and `run`. A writer that stops for it saves its
 * journal first and says how many chunks the journal lists (`chunksStored`), so a rerun resumes.
 */
export class InterruptedError extends OperationalError {
  override name = 'InterruptedError';
  declare readonly kind: 'interrupted';
  constructor(
    readonly signal: StopSignal,
    /** Chunks of the stream stored in the target and listed in its journal, when a writer had started. */
    readonly chunksStored?: number,
  ) {
    super(`interrupted by ${signal}`, { kind: 'interrupted' });
  }

  /** The same interruption, with what the writer had stored by then. */
  withChunks(chunksStored: number): InterruptedError {
    return new InterruptedError(this.signal, chunksStored);
  }
}

/** The InterruptedError that aborted `signal`, or undefined when it is not aborted by one. */
export function interruptionOf(signal: AbortSignal | undefined): InterruptedError | undefined {
  return signal?.aborted && signal.reason instanceof InterruptedError ? signal.reason : undefined;
}
