import { Readable } from 'node:stream';
import { setTimeout as sleepMs } from 'node:timers/promises';
import {
  type Backend,
  type ByteRange,
  type EntryType,
  type LoadConsumer,
  type ListOptions,
  type LoadOptions,
  type ObjectInfo,
  type ObjectLockStore,
  type PutOptions,
  type PutResult,
  StorageError,
} from './backend.js';

/**
 * Retrying is done ONCE, here, around any backend (restic's RetryBackend model), so the
 * backends themselves stay small and dumb and every backend gets the same policy.
 *
 * Only failures a backend marked as transient (`StorageError` with `permanent === false`) are
 * retried. `NotFoundError`, permanent `StorageError`s and any other error (a bug, or the
 * caller's own body stream failing) go straight to the caller: retrying them would only add
 * delay before the same failure.
 */
export interface RetryOptions {
  /** Attempts in total, the first one included. Default 6. */
  maxAttempts?: number;
  /** Backoff ceiling before the first retry; doubles per retry. Default 200 ms. */
  baseDelayMs?: number;
  /** Largest backoff ceiling. Default 10 s. */
  maxDelayMs?: number;
  /** No retry is started if its delay would end after this much time since the first attempt. Default 120 s. */
  maxTotalMs?: number;
  /** Called before each retry, e.g. to log it. `attempt` is the attempt that just failed (1-based). */
  onRetry?(err: StorageError, attempt: number, delayMs: number): void;
  /** Injectable for tests, so backoff can be checked without waiting. */
  sleep?(ms: number): Promise<void>;
  /** Injectable for tests: returns a number in [0, 1). */
  random?(): number;
  /** Injectable for tests: milliseconds on a monotonic clock. */
  now?(): number;
}

export const RETRY_DEFAULTS = {
  maxAttempts: 6,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxTotalMs: 120_000,
} as const;

/** True for the failures worth trying again. */
export function isTransient(err: unknown): err is StorageError {
  return err instanceof StorageError && !err.permanent;
}

/**
 * The delay before retry number `retry` (1 = first retry): "full jitter" — uniformly random
 * between 0 and min(maxDelay, base·2^(retry-1)). Full jitter spreads the retries of many
 * parallel uploads that failed together (e.g. on a 503 SlowDown) instead of having them
 * hammer the server in lockstep.
 */
export function backoffDelay(retry: number, opts: { baseDelayMs: number; maxDelayMs: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

export class RetryingBackend implements Backend {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxTotalMs: number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(
    readonly inner: Backend,
    private readonly options: RetryOptions = {},
  ) {
    this.maxAttempts = Math.max(1, options.maxAttempts ?? RETRY_DEFAULTS.maxAttempts);
    this.baseDelayMs = options.baseDelayMs ?? RETRY_DEFAULTS.baseDelayMs;
    this.maxDelayMs = options.maxDelayMs ?? RETRY_DEFAULTS.maxDelayMs;
    this.maxTotalMs = options.maxTotalMs ?? RETRY_DEFAULTS.maxTotalMs;
    this.sleep = options.sleep ?? ((ms, signal) => sleepMs(ms, undefined, signal ? { signal } : {}));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
  }

  get location(): string {
    return this.inner.location;
  }

  get connections(): number {
    return this.inner.connections;
  }
  get rangedReadBytes(): number | undefined {
    return this.inner.rangedReadBytes;
  }
  get partUploadBytes(): number | undefined {
    return this.inner.partUploadBytes;
  }

  get deletionAsksPermission(): boolean | undefined {
    return this.inner.deletionAsksPermission;
  }

  /**
   * Runs `op` until it succeeds, fails for good, or the attempt/time budget is spent; an abort of
   * `signal` ends it at once with the signal's reason.
   */
  private async retry<T>(op: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const started = this.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (!isTransient(err) || attempt >= this.maxAttempts) throw err;
        const delayMs = backoffDelay(attempt, { baseDelayMs: this.baseDelayMs, maxDelayMs: this.maxDelayMs }, this.random);
        if (this.now() - started + delayMs > this.maxTotalMs) throw err;
        this.options.onRetry?.(err, attempt, delayMs);
        await this.sleep(delayMs, signal);
        signal?.throwIfAborted();
      }
    }
  }

  // biome-ignore lint/suspicious/noConfusingVoidType: a backend that says nothing of what it stored (local, SFTP) keeps returning Promise<void>
  put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<PutResult | void> {
    // A stream is consumed by the first attempt: without a way to replay it, one attempt only.
    // Callers that want retries pass a Buffer, or `replay` (bodies.ts putWhole).
    if (body instanceof Readable) {
      const replay = options?.replay;
      if (!replay) return this.inner.put(key, body, size, options);
      let next: Readable | undefined = body;
      return this.retry(() => {
        const attempt = next ?? replay();
        next = undefined;
        return this.inner.put(key, attempt, size, options);
      }, options?.signal);
    }
    return this.retry(() => this.inner.put(key, body, size, options), options?.signal);
  }

  /** Retries opening the object; a failure in the middle of the returned stream is the caller's to handle. */
  get(key: string, range?: ByteRange): Promise<Readable> {
    return this.retry(() => this.inner.get(key, range));
  }

  /**
   * A read that fails midway is restarted at the first byte not yet consumed (restic's Load),
   * within the one attempt and time budget (`--retries`, `--retry-time`): `consume` sees every
   * byte once. Its own exceptions and an abort are never retried.
   */
  async load(key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    const start = options.offset ?? 0;
    let consumed = 0;
    let callbackFailed = false;
    const counting = async (piece: Buffer): Promise<void> => {
      try {
        await consume(piece);
      } catch (err) {
        callbackFailed = true;
        throw err;
      }
      consumed += piece.length;
    };
    const attempt = (): Promise<void> => {
      const rest = options.length === undefined ? undefined : options.length - consumed;
      if (rest === 0) return Promise.resolve(); // every byte asked for arrived before the failure
      const range = { offset: start + consumed, ...(rest === undefined ? {} : { length: rest }), ...(options.signal ? { signal: options.signal } : {}) };
      return this.inner.load(key, counting, range).catch((err: unknown) => {
        throw callbackFailed ? new CallbackError(err) : err;
      });
    };
    await this.retry(attempt, options.signal).catch((err: unknown) => {
      throw err instanceof CallbackError ? err.original : err;
    });
  }

  getBuffer(key: string): Promise<Buffer> {
    return this.retry(() => this.inner.getBuffer(key));
  }

  head(key: string): Promise<ObjectInfo> {
    return this.retry(() => this.inner.head(key));
  }

  /**
   * A listing that fails halfway is restarted from the beginning; keys already delivered are
   * not delivered again (as restic does), so callers see each object once. An exception thrown
   * by `onObject` itself is never retried.
   */
  async list(prefix: string, onObject: (info: ObjectInfo) => void, options?: ListOptions): Promise<void> {
    const delivered = new Set<string>();
    let callbackFailed = false;
    const reported = new Set<string>();
    const onUnsafe =
      options?.onUnsafe &&
      ((entry: { key: string; type: EntryType }) => {
        if (reported.has(entry.key)) return;
        reported.add(entry.key);
        options.onUnsafe?.(entry);
      });
    await this.retry(() =>
      this.inner
        .list(
          prefix,
          (info) => {
            if (delivered.has(info.key)) return;
            delivered.add(info.key);
            try {
              onObject(info);
            } catch (err) {
              callbackFailed = true;
              throw err;
            }
          },
          onUnsafe && { onUnsafe },
        )
        .catch((err: unknown) => {
          // Make sure the caller's own exception escapes the retry loop as-is.
          if (callbackFailed) throw new CallbackError(err);
          throw err;
        }),
    ).catch((err: unknown) => {
      throw err instanceof CallbackError ? err.original : err;
    });
  }

  /** Deleting is idempotent (absent keys are fine), so a partly done batch can simply be redone. */
  delete(keys: string[]): Promise<void> {
    return this.retry(() => this.inner.delete(keys));
  }

  check(): Promise<void> {
    return this.retry(() => this.inner.check());
  }

  /** Present exactly when the wrapped backend has it; listing and aborting are idempotent, so retried. */
  get cleanupIncompleteUploads(): Backend['cleanupIncompleteUploads'] {
    const inner = this.inner;
    if (!inner.cleanupIncompleteUploads) return undefined;
    return (olderThan, options) => this.retry(() => inner.cleanupIncompleteUploads!(olderThan, options));
  }

  /**
   * Present exactly when the wrapped backend has it. Every call is retried: reading retention and
   * listing versions are reads, extending a retention to a date is idempotent, and deleting a
   * version that is gone already is not an error.
   */
  get objectLock(): ObjectLockStore | undefined {
    const lock = this.inner.objectLock;
    if (!lock) return undefined;
    return {
      state: () => this.retry(() => lock.state()),
      getRetention: (key, versionId) => this.retry(() => lock.getRetention(key, versionId)),
      extendRetention: (key, retention) => this.retry(() => lock.extendRetention(key, retention)),
      listVersions: (prefix) => this.retry(() => lock.listVersions(prefix)),
      deleteVersions: (versions) => this.retry(() => lock.deleteVersions(versions)),
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Carries an exception thrown by a list or load callback through the retry loop without retrying it. */
class CallbackError extends Error {
  constructor(readonly original: unknown) {
    super('list callback failed');
  }
}
