import type { ChildProcess } from 'node:child_process';
import { OperationalError } from '../util/errors.js';

/** How long a stopped command may take to exit after each signal (SIGTERM, then SIGKILL). */
export const STOP_GRACE_MS = 2000;

/** Error output kept per command: its end says why the command failed; the rest only costs memory. */
const STDERR_TAIL_BYTES = 64 * 1024;

/** What a failure meant for the job, said around the command's own words in the one-line error. */
export interface ZfsFailureContext {
  /** Said after how it ended: `on stream … (pool/ds@snap)`. */
  during?: string;
  /** Said after its error output: `nothing was committed`. */
  outcome?: string;
}

/** A zfs command that did not succeed: its arguments, exit code or signal, and the tail of its error output. */
export class ZfsCommandError extends OperationalError {
  override name = 'ZfsCommandError';
  constructor(
    /** The arguments after the command prefix (`send -w pool/ds@snap`). */
    readonly args: string[],
    /** null when a signal ended it. */
    readonly exitCode: number | null,
    /** The end of its error output (at most STDERR_TAIL_BYTES). */
    readonly stderr: string,
    readonly signal: NodeJS.Signals | null = null,
    /** The signal was sent by stop(): the command did not fail on its own. */
    readonly stopped = false,
    readonly failure: ZfsFailureContext = {},
  ) {
    const how = signal ? `was killed by ${signal}` : `failed${exitCode === null ? '' : ` (exit ${exitCode})`}`;
    const during = failure.during ? ` ${failure.during}` : '';
    const outcome = failure.outcome ? `; ${failure.outcome}` : '';
    super(`zfs ${args.join(' ')} ${how}${during}: ${stderr.trim() || 'no error output'}${outcome}`, { kind: 'zfs-command' });
  }

  /** The same failure, with what it meant for the job. */
  explained(context: ZfsFailureContext): ZfsCommandError {
    return new ZfsCommandError(this.args, this.exitCode, this.stderr, this.signal, this.stopped, { ...this.failure, ...context });
  }
}

/**
 * One running zfs command: how it ended (`completion`), the tail of its error output, and a stop
 * that escalates from SIGTERM to SIGKILL. The handles in streams.ts and Zfs.run build on it.
 */
export class ZfsProcess {
  /** Resolves when it exited 0; rejects with ZfsCommandError, or `cannotRun`'s error when it never ran. */
  readonly completion: Promise<void>;
  private readonly stderr: Buffer[] = [];
  private stderrBytes = 0;
  private readonly sent = new Set<NodeJS.Signals>();
  private outcome: { error?: OperationalError } | undefined;

  constructor(
    private readonly child: ChildProcess,
    readonly args: string[],
    cannotRun: (err: Error) => OperationalError,
  ) {
    child.stderr?.on('data', (b: Buffer) => this.keepStderr(b));
    this.completion = new Promise<void>((resolve, reject) => {
      // 'error': it could not be spawned (ENOENT…); 'close' follows and changes nothing.
      child.on('error', (err) => {
        this.outcome ??= { error: cannotRun(err) };
        reject(this.outcome.error!);
      });
      child.on('close', (code, signal) => {
        this.outcome ??= code === 0 ? {} : { error: new ZfsCommandError(args, code, this.stderrText(), signal, signal !== null && this.sent.has(signal)) };
        if (this.outcome.error) reject(this.outcome.error);
        else resolve();
      });
    });
    this.completion.catch(() => undefined); // read by whoever asks; never unhandled
  }

  /** It has ended (or never started). */
  get ended(): boolean {
    return this.outcome !== undefined;
  }

  /** How it ended: undefined while it runs or after exit 0. */
  get failure(): OperationalError | undefined {
    return this.outcome?.error;
  }

  /**
   * Ends it: SIGTERM (then `afterSignal`, e.g. closing its pipe), SIGKILL when it is still running
   * after `graceMs`, and another `graceMs` at most for it to go. Never throws.
   */
  async stop(graceMs: number, afterSignal?: () => void): Promise<void> {
    this.signal('SIGTERM');
    afterSignal?.();
    if (await this.settles(graceMs)) return;
    this.signal('SIGKILL');
    await this.settles(graceMs);
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.ended || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.sent.add(signal);
    this.child.kill(signal);
  }

  private settles(ms: number): Promise<boolean> {
    if (this.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.completion.then(done, done);
    });
  }

  private keepStderr(b: Buffer): void {
    this.stderr.push(b);
    this.stderrBytes += b.length;
    while (this.stderr.length > 1 && this.stderrBytes - this.stderr[0]!.length >= STDERR_TAIL_BYTES) this.stderrBytes -= this.stderr.shift()!.length;
  }

  private stderrText(): string {
    const all = Buffer.concat(this.stderr);
    return all.subarray(Math.max(0, all.length - STDERR_TAIL_BYTES)).toString();
  }
}
