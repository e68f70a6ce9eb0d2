import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { type Backend, type ByteRange, type LoadConsumer, type LoadOptions, type ObjectRetention, StorageError } from './backend.js';

// Helpers for the bodies backends read and write: the backends' shared code, and `putWhole` for callers.

/** The byte range `get` takes for a load's options (none for a whole read). */
export function rangeOf(options: LoadOptions): ByteRange | undefined {
  const offset = options.offset ?? 0;
  if (offset === 0 && options.length === undefined) return undefined;
  return options.length === undefined ? { offset } : { offset, length: options.length };
}

/**
 * The one body of every backend's `load` (backend.ts): opens the ranged read, hands each piece
 * to `consume` and waits for it (so a slow consumer holds the read, and memory stays bounded),
 * and releases the read however it ends. An abort destroys the read and rejects with the
 * signal's reason, whatever error the torn-down request reported. Each backend maps its own
 * failures (StorageError, NotFoundError) in `open` and on the stream it returns.
 */
export async function consumeRead(open: () => Promise<Readable>, consume: LoadConsumer, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  let body: Readable | undefined;
  const onAbort = (): void => void body?.destroy(signal!.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    body = await open();
    signal?.throwIfAborted();
    for await (const piece of body as AsyncIterable<Buffer>) {
      await consume(piece);
      signal?.throwIfAborted();
    }
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body?.destroy();
  }
}

/** Passes `body` through, failing at the end if it did not have exactly `size` bytes. */
export function enforceSize(body: Readable, size: number, context: string): Readable {
  let seen = 0;
  const mismatch = () => new StorageError(`${context}: body has ${seen}${seen > size ? '+' : ''} bytes, expected ${size}`, true);
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(seen > size ? mismatch() : null, chunk);
    },
    flush(callback) {
      callback(seen === size ? null : mismatch());
    },
  });
  body.on('error', (err) => counter.destroy(err));
  return body.pipe(counter);
}

/**
 * An object (manifest, SHA256SUMS, journal, attachment) put whole with its SHA-256: an S3 backend
 * stores it as one PutObject the server checks, never a multipart upload; with a retention,
 * Object Lock keeps it until that date (backend.ts PutOptions).
 *
 * `body` may be pieces (an Iterable that gives the same bytes each time it is iterated): then one
 * pass hashes them (SHA-256, and MD5 for a retention) and the put streams a second pass, so a
 * big body (a 500,000-chunk stream's manifest is 154 MB: issue 17) is never held whole. A retry
 * (storage/retrying.ts) iterates the pieces once more (`PutOptions.replay`). Returns the size.
 */
export async function putWhole(backend: Backend, key: string, body: Buffer | Iterable<Buffer>, retention?: ObjectRetention): Promise<number> {
  if (Buffer.isBuffer(body)) {
    await backend.put(key, body, body.length, { sha256: createHash('sha256').update(body).digest('hex'), ...(retention ? { retention } : {}) });
    return body.length;
  }
  const sha256 = createHash('sha256');
  const md5 = retention ? createHash('md5') : undefined;
  let size = 0;
  for (const piece of body) {
    sha256.update(piece);
    md5?.update(piece);
    size += piece.length;
  }
  const replay = (): Readable => Readable.from(body, { objectMode: false });
  await backend.put(key, replay(), size, { sha256: sha256.digest('hex'), replay, ...(md5 ? { md5: md5.digest('base64') } : {}), ...(retention ? { retention } : {}) });
  return size;
}
