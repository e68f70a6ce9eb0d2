import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../src/cli/exit.js';
import { NotFoundError, StorageError } from '../../src/storage/backend.js';
import { fromWire, OperationalError, StreamFormatError, toWire, UsageError } from '../../src/util/errors.js';

describe('typed errors', () => {
  it('keep class, kind, fields and context through toWire / fromWire (what a worker sends)', () => {
    const viaWire = <T>(err: T): Error => fromWire(structuredClone(toWire(err)));
    const format = viaWire(new StreamFormatError('truncated', 'stream ended without an END record: truncated', 4096, { dataset: 'pool/fs' }));
    expect(format).toBeInstanceOf(StreamFormatError);
    expect(format).toMatchObject({ kind: 'truncated', reason: 'stream ended without an END record: truncated', offset: 4096, context: { dataset: 'pool/fs' } });
    expect(format.message).toBe('stream ended without an END record: truncated (at stream offset 4096)');

    const usage = viaWire(new UsageError('bad input', { kind: 'not-a-stream', context: { snapshot: 'pool/fs@a' } }));
    expect(usage).toBeInstanceOf(UsageError);
    expect(usage).toMatchObject({ kind: 'not-a-stream', context: { snapshot: 'pool/fs@a' }, message: 'bad input' });
    expect(exitCodeFor(usage)).toBe(2);

    const operational = viaWire(new OperationalError('it broke', { kind: 'frame-invalid', context: { object: 'file:///x/000001.zst' } }));
    expect(operational).toBeInstanceOf(OperationalError);
    expect(operational).toMatchObject({ kind: 'frame-invalid', context: { object: 'file:///x/000001.zst' } });
    expect(exitCodeFor(operational)).toBe(1);

    const foreign = viaWire(new TypeError('a bug'));
    expect(foreign).not.toBeInstanceOf(OperationalError);
    expect(foreign.message).toBe('a bug');
  });

  it('storage errors are operational errors with their kind and context; exit codes unchanged', () => {
    const missing = new NotFoundError('a/b', 'file:///archive');
    expect(missing).toBeInstanceOf(OperationalError);
    expect(missing).toMatchObject({ kind: 'not-found', key: 'a/b', context: { object: 'file:///archive/a/b' } });
    expect(exitCodeFor(missing)).toBe(1);
    expect(exitCodeFor(new StorageError('no bucket', true, 'not-found-container'))).toBe(2);
    expect(exitCodeFor(new StorageError('denied', true, 'permission'))).toBe(1);
    expect(new StorageError('reset', false).kind).toBe('other');
  });
});
