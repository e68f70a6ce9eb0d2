import { InterruptedError, STOP_SIGNALS, type StopSignal } from '../util/interrupted.js';

/**
 * Ctrl-C (SIGINT) and SIGTERM (`systemctl stop`, `kill`). Without this, node dies silently on
 * either, and `put`/`send`/`run` leave a journal that is up to a few hundred milliseconds behind
 * the chunks stored (archive/format/journal.ts coalesces its writes).
 *
 * - `put`, `send`, `run` take the signal over (`takeOver()`): the first one aborts their
 *   AbortSignal with an InterruptedError; the writer stops reading, lets the uploads under way
 *   finish, saves the journal and fails with that error, which program.ts prints as
 *   `zfs-offsite: interrupted: N chunks stored; rerun the same command to resume`.
 * - `drill` takes it over too: the receive under way is stopped and the scratch dataset
 *   destroyed before it exits (src/jobs/drill.ts); it says so instead of offering a resume.
 * - Every other command (restore, verify, list, prune) has nothing to save: it stops at once
 *   with `zfs-offsite: interrupted` (a half-written `restore --output` file is removed on exit,
 *   util/exclusive-file.ts).
 * - A second signal always stops at once.
 *
 * Exit code 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM (README, "Exit codes").
 */
export class Interrupts {
  private readonly controller = new AbortController();
  private graceful = false;
  private received: StopSignal | undefined;
  private afterwards = RESUME;
  private readonly listeners = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((name) => [name, () => this.onSignal(name)] as const);

  install(): void {
    for (const [name, listener] of this.listeners) process.on(name, listener);
  }

  uninstall(): void {
    for (const [name, listener] of this.listeners) process.off(name, listener);
  }

  /**
   * For commands that stop in their own time and save (or clean up) their state: the first
   * signal aborts this. `afterwards`: what the interrupted line tells the user to do or expect
   * (default: rerun to resume, what the writers' journals allow).
   */
  takeOver(afterwards = RESUME): AbortSignal {
    this.graceful = true;
    this.afterwards = afterwards;
    return this.controller.signal;
  }

  /** The signal received, if any. */
  get signal(): StopSignal | undefined {
    return this.received;
  }

  private onSignal(name: StopSignal): void {
    if (this.received === undefined && this.graceful) {
      this.received = name;
      this.controller.abort(new InterruptedError(name));
      return;
    }
    // A command with nothing to save, or a second Ctrl-C: stop now. The 'exit' handlers still
    // run (a temporary output file is removed), a stack trace never reaches the terminal.
    process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}zfs-offsite: interrupted${this.received ? ' again: stopped at once' : ''}\n`);
    process.exit(STOP_SIGNALS[name]);
  }

  /** The one line of the interrupted command (program.ts prints it). */
  line(err: unknown): string {
    const n = err instanceof InterruptedError ? err.chunksStored : undefined;
    if (n === undefined) return `zfs-offsite: interrupted; ${this.afterwards}`;
    return `zfs-offsite: interrupted: ${n} chunk${n === 1 ? '' : 's'} stored; ${this.afterwards}`;
  }
}

const RESUME = 'rerun the same command to resume';
