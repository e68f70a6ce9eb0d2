import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { type Backend, type ByteRange, type LoadConsumer, type LoadOptions, NotFoundError, type ObjectInfo, StorageError } from '../../src/storage/backend.js';
import { backoffDelay, RETRY_DEFAULTS, RetryingBackend, type RetryOptions } from '../../src/storage/retrying.js';

/**
 * A scripted inner backend: each call takes the next outcome from `failures` (an error to throw,
 * or undefined to succeed). This is the one place where a fake backend is right: the wrapper's
 * logic does not depend on any real storage.
 */
class ScriptedBackend implements Backend {
  readonly location = 'fake://';
  readonly connections = 3;
  calls = 0;
  listed: ObjectInfo[] = [];
  constructor(private readonly failures: (Error | undefined)[] = []) {}

  private async step(): Promise<void> {
    this.calls++;
    const failure = this.failures.shift();
    if (failure) throw failure;
  }
  async put(_key: string, body: Buffer | Readable): Promise<void> {
    if (body instanceof Readable) body.resume();
    await this.step();
  }
  async get(_key: string, _range?: ByteRange): Promise<Readable> {
    await this.step();
    return Readable.from([Buffer.from('data')]);
  }
  /** What `load` serves, and the `offset+length` of every load asked of it. */
  content = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
  loads: string[] = [];
  /** Delivers `content` from the offset in 4-byte pieces, failing (if scripted) after the first half of what was asked. */
  async load(_key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    this.calls++;
    const failure = this.failures.shift();
    const offset = options.offset ?? 0;
    const end = Math.min(this.content.length, options.length === undefined ? Infinity : offset + options.length);
    this.loads.push(`${offset}+${end - offset}`);
    const stop = failure ? offset + Math.ceil((end - offset) / 2) : end;
    for (let at = offset; at < stop; at += 4) {
      options.signal?.throwIfAborted();
      await consume(this.content.subarray(at, Math.min(at + 4, stop)));
    }
    if (failure) throw failure;
  }
  async getBuffer(): Promise<Buffer> {
    await this.step();
    return Buffer.from('data');
  }
  async head(key: string): Promise<ObjectInfo> {
    await this.step();
    return { key, size: 4 };
  }
  /** Delivers `listed`, failing (if scripted) after delivering the first half of it. */
  async list(_prefix: string, onObject: (info: ObjectInfo) => void): Promise<void> {
    this.calls++;
    const failure = this.failures.shift();
    const half = failure ? Math.ceil(this.listed.length / 2) : this.listed.length;
    for (const info of this.listed.slice(0, half)) onObject(info);
    if (failure) throw failure;
  }
  async delete(): Promise<void> {
    await this.step();
  }
  async check(): Promise<void> {
    await this.step();
  }
  async close(): Promise<void> {}
}

const transient = (n = 0) => new StorageError(`503 SlowDown #${n}`, false);
const permanent = () => new StorageError('bucket x does not exist', true, 'not-found-container');

/** Options that make retries instant and record every backoff delay. */
function instant(extra: RetryOptions = {}) {
  const delays: number[] = [];
  let clock = 0;
  const options: RetryOptions = {
    sleep: async (ms) => {
      delays.push(ms);
      clock += ms;
    },
    now: () => clock,
    random: () => 0.999_999,
    ...extra,
  };
  return { options, delays };
}

describe('RetryingBackend', () => {
  it('passes location and connections through', () => {
    const r = new RetryingBackend(new ScriptedBackend());
    expect(r.location).toBe('fake://');
    expect(r.connections).toBe(3);
  });

  it('retries transient failures until success', async () => {
    const inner = new ScriptedBackend([transient(1), transient(2)]);
    const onRetry = vi.fn();
    const { options, delays } = instant({ onRetry });
    const info = await new RetryingBackend(inner, options).head('k');
    expect(info).toEqual({ key: 'k', size: 4 });
    expect(inner.calls).toBe(3);
    expect(delays).toHaveLength(2);
    expect(onRetry.mock.calls.map((c) => [(c[0] as Error).message, c[1], c[2]])).toEqual([
      ['503 SlowDown #1', 1, delays[0]],
      ['503 SlowDown #2', 2, delays[1]],
    ]);
  });

  it('stops at maxAttempts and throws the last error', async () => {
    const inner = new ScriptedBackend(Array.from({ length: 10 }, (_, i) => transient(i + 1)));
    const { options, delays } = instant({ maxAttempts: 4 });
    await expect(new RetryingBackend(inner, options).getBuffer('k')).rejects.toThrow('503 SlowDown #4');
    expect(inner.calls).toBe(4);
    expect(delays).toHaveLength(3);
  });

  it('defaults to 6 attempts', async () => {
    const inner = new ScriptedBackend(Array.from({ length: 10 }, (_, i) => transient(i + 1)));
    await expect(new RetryingBackend(inner, instant().options).check()).rejects.toThrow('#6');
    expect(inner.calls).toBe(RETRY_DEFAULTS.maxAttempts);
  });

  it('never retries permanent StorageErrors', async () => {
    const inner = new ScriptedBackend([permanent()]);
    const { options, delays } = instant();
    await expect(new RetryingBackend(inner, options).check()).rejects.toMatchObject({ kind: 'not-found-container' });
    expect(inner.calls).toBe(1);
    expect(delays).toEqual([]);
  });

  it('never retries NotFoundError or errors that are not StorageErrors', async () => {
    for (const err of [new NotFoundError('k', 'fake://'), new TypeError('bug')]) {
      const inner = new ScriptedBackend([err, undefined]);
      await expect(new RetryingBackend(inner, instant().options).get('k')).rejects.toBe(err);
      expect(inner.calls).toBe(1);
    }
  });

  it('retries a put with a Buffer body but never one with a Readable body', async () => {
    const buffered = new ScriptedBackend([transient()]);
    await new RetryingBackend(buffered, instant().options).put('k', Buffer.from('x'));
    expect(buffered.calls).toBe(2);

    const streamed = new ScriptedBackend([transient()]);
    await expect(new RetryingBackend(streamed, instant().options).put('k', Readable.from([Buffer.from('x')]))).rejects.toThrow('SlowDown');
    expect(streamed.calls).toBe(1);
  });

  it('backs off exponentially with full jitter, capped at maxDelayMs', async () => {
    // random() just below 1 shows each ceiling: 100, 200, 400, 800, 1000, 1000, …
    const inner = new ScriptedBackend(Array.from({ length: 7 }, () => transient()));
    const { options, delays } = instant({ maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 1000 });
    await new RetryingBackend(inner, options).delete(['k']);
    expect(delays).toEqual([99, 199, 399, 799, 999, 999, 999]);

    // random() = 0 gives no delay at all: the lower bound of full jitter.
    const inner0 = new ScriptedBackend([transient(), transient()]);
    const zero = instant({ random: () => 0 });
    await new RetryingBackend(inner0, zero.options).delete(['k']);
    expect(zero.delays).toEqual([0, 0]);
  });

  it('keeps every delay within [0, min(maxDelay, base·2^(n-1))) for random jitter', () => {
    const opts = { baseDelayMs: 200, maxDelayMs: 10_000 };
    for (let retry = 1; retry <= 12; retry++) {
      const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** (retry - 1));
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(retry, opts);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(ceiling);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });

  it('gives up when the next delay would exceed maxTotalMs', async () => {
    const inner = new ScriptedBackend(Array.from({ length: 20 }, () => transient()));
    // Ceilings 1000, 2000, 4000: after 1000 + 2000 waited, a 4000 ms wait would pass 5000 ms.
    const { options, delays } = instant({ maxAttempts: 20, baseDelayMs: 1000, maxDelayMs: 60_000, maxTotalMs: 5000 });
    await expect(new RetryingBackend(inner, options).head('k')).rejects.toThrow('SlowDown');
    expect(delays).toEqual([999, 1999]);
    expect(inner.calls).toBe(3);
  });

  it('restarts a failed listing without delivering any object twice', async () => {
    const inner = new ScriptedBackend([transient()]);
    inner.listed = ['a', 'b', 'c', 'd', 'e'].map((key) => ({ key, size: 1 }));
    const seen: string[] = [];
    await new RetryingBackend(inner, instant().options).list('', (info) => seen.push(info.key));
    expect(inner.calls).toBe(2);
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('does not retry when the list callback itself throws', async () => {
    const inner = new ScriptedBackend();
    inner.listed = [{ key: 'a', size: 1 }];
    const mine = new StorageError('callback says no', false);
    await expect(
      new RetryingBackend(inner, instant().options).list('', () => {
        throw mine;
      }),
    ).rejects.toBe(mine);
    expect(inner.calls).toBe(1);
  });

  it('restarts a read that fails midway at the first byte not consumed: every byte consumed once', async () => {
    const inner = new ScriptedBackend([transient(1), transient(2)]);
    const got: Buffer[] = [];
    await new RetryingBackend(inner, instant().options).load('k', (piece) => void got.push(Buffer.from(piece)), { offset: 4, length: 30 });
    // 15 of 30 bytes, then 8 of the 15 left, then the last 7.
    expect(inner.loads).toEqual(['4+30', '19+15', '27+7']);
    expect(Buffer.concat(got).equals(inner.content.subarray(4, 34))).toBe(true);
  });

  it('restarts a read to the end (no length) from where it broke', async () => {
    const inner = new ScriptedBackend([transient()]);
    const got: Buffer[] = [];
    await new RetryingBackend(inner, instant().options).load('k', (piece) => void got.push(Buffer.from(piece)));
    expect(inner.loads).toEqual(['0+36', '18+18']);
    expect(Buffer.concat(got).equals(inner.content)).toBe(true);
  });

  it('a read that keeps breaking midway takes maxAttempts (--retries) attempts in all, no more', async () => {
    const inner = new ScriptedBackend(Array.from({ length: 10 }, (_, i) => transient(i + 1)));
    const { options, delays } = instant({ maxAttempts: 3 });
    let bytes = 0;
    await expect(new RetryingBackend(inner, options).load('k', (piece) => void (bytes += piece.length))).rejects.toThrow('503 SlowDown #3');
    expect(inner.calls).toBe(3);
    expect(delays).toHaveLength(2);
    expect(bytes).toBe(18 + 9 + 5); // each attempt went on from where the one before stopped
  });

  it('never retries when the load consumer throws: its own error comes back as-is', async () => {
    const inner = new ScriptedBackend();
    const mine = new StorageError('consumer says no', false);
    await expect(
      new RetryingBackend(inner, instant().options).load('k', () => {
        throw mine;
      }),
    ).rejects.toBe(mine);
    expect(inner.calls).toBe(1);
  });

  it("an abort during the backoff ends the read and its retries with the signal's reason", async () => {
    const inner = new ScriptedBackend([transient(), transient()]);
    const controller = new AbortController();
    const reason = new Error('restore stopped');
    const options = instant({ sleep: async () => controller.abort(reason) }).options;
    await expect(new RetryingBackend(inner, options).load('k', () => undefined, { signal: controller.signal })).rejects.toBe(reason);
    expect(inner.calls).toBe(1);
  });

  it('uses a real timer by default (smoke test with tiny delays)', async () => {
    const inner = new ScriptedBackend([transient()]);
    await new RetryingBackend(inner, { baseDelayMs: 1 }).head('k');
    expect(inner.calls).toBe(2);
  });
});
