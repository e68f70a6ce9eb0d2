/**
 * putWhole with a body in pieces (storage/bodies.ts; issue 17: a 500,000-chunk stream's manifest
 * is 154 MB and its journal 140 MB, never held whole): hashed in one pass, streamed in another,
 * sent to S3 as one PutObject the server checks (never multipart), with Content-MD5 for a
 * retention, and replayed from the start by a retry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { type PutOptions, StorageError } from '../../src/storage/backend.js';
import { putWhole } from '../../src/storage/bodies.js';
import { LocalBackend } from '../../src/storage/local.js';
import { RetryingBackend } from '../../src/storage/retrying.js';
import { S3Backend } from '../../src/storage/s3.js';
import { createTestBucket, rgwClient } from '../support/rgw.js';
import { s3TestServers } from '../support/s3-servers.js';

const MiB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), 'zo-put-whole-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** `body` in pieces of 256 KiB; `twist` changes the bytes of every iteration after the first. */
function piecesOf(body: Buffer, twist = false): Iterable<Buffer> & { iterations: number } {
  const source = {
    iterations: 0,
    *[Symbol.iterator]() {
      const n = source.iterations++;
      for (let at = 0; at < body.length; at += 256 * 1024) {
        const piece = Buffer.from(body.subarray(at, at + 256 * 1024));
        if (twist && n > 0 && at === 0) piece[0]! ^= 1;
        yield piece;
      }
    },
  };
  return source;
}

describe('putWhole of pieces, retried', () => {
  it('a transient failure in the middle of a streamed put: the retry sends the pieces again from the start', async () => {
    /** Fails the first put after reading 300 KiB of its body. */
    class FailOnce extends LocalBackend {
      attempts = 0;
      override async put(key: string, body: Buffer | Readable, size?: number, _options?: PutOptions): Promise<void> {
        if (++this.attempts === 1 && body instanceof Readable) {
          let read = 0;
          for await (const piece of body as AsyncIterable<Buffer>) if ((read += piece.length) > 300 * 1024) break;
          throw new StorageError('connection reset (test)', false);
        }
        return super.put(key, body, size);
      }
    }
    const inner = new FailOnce(join(root, 'retry'));
    const backend = new RetryingBackend(inner, { baseDelayMs: 1, maxDelayMs: 2 });
    const body = randomBytes(MiB + 17);
    const source = piecesOf(body);
    expect(await putWhole(backend, 'a/manifest.json', source)).toBe(body.length);
    expect(inner.attempts).toBe(2);
    expect(source.iterations).toBe(3); // hash, first attempt, retry
    expect(readFileSync(join(root, 'retry', 'a/manifest.json')).equals(body)).toBe(true);
  });
});

describe.each(s3TestServers())('putWhole of pieces on $name', ({ name, settings: rgw, hint, provider }) => {
  if (!rgw) {
    it.skip(`skipped: ${name} is not running; ${hint}`, () => undefined);
    return;
  }
  const open = (bucket: string) =>
    new S3Backend({
      bucket,
      prefix: 'p',
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      partSize: 5 * MiB,
    });

  it('11 MiB in pieces, parts of 5 MiB: one checked PutObject (no multipart ETag), the same bytes; pieces that change between passes are refused', async () => {
    const bucket = await createTestBucket(rgw);
    const backend = open(bucket.name);
    const client = rgwClient(rgw);
    try {
      const body = randomBytes(11 * MiB);
      await putWhole(backend, 'big', piecesOf(body));
      expect((await backend.getBuffer('big')).equals(body)).toBe(true);
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'p/big' }));
      expect(head.ETag).toMatch(/^"[0-9a-f]{32}"$/);
      // The server checks the streamed body against the SHA-256 of the first pass.
      await expect(putWhole(backend, 'twisted', piecesOf(body, true))).rejects.toBeInstanceOf(StorageError);
      await expect(backend.head('twisted')).rejects.toThrow(/not found/);
    } finally {
      client.destroy();
      await backend.close();
      await bucket.cleanup();
    }
  }, 120_000);

  // Object Lock is Ceph RGW's here: Swift's s3api has none (`check` reports it n/a), so the case
  // is defined for RGW only rather than shown as skipped on Swift.
  if (provider !== 'ceph') return;
  it('with a retention (Object Lock): streamed with its Content-MD5, stored with that retention', async () => {
    const bucket = await createTestBucket(rgw, { objectLock: true });
    const backend = open(bucket.name);
    try {
      const until = new Date(Math.ceil((Date.now() + 3600_000) / 1000) * 1000);
      const body = randomBytes(MiB + 3);
      await putWhole(backend, 'locked', piecesOf(body), { mode: 'governance', until });
      expect((await backend.getBuffer('locked')).equals(body)).toBe(true);
      expect(await backend.objectLock.getRetention('locked')).toEqual({ mode: 'governance', until });
      expect(createHash('sha256').update(body).digest('hex')).toHaveLength(64);
    } finally {
      await backend.close();
      await bucket.cleanup();
    }
  }, 120_000);
});
