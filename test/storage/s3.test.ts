import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evenParts, MAX_PARTS_PER_OBJECT, StorageError } from '../../src/storage/backend.js';
import { RetryingBackend } from '../../src/storage/retrying.js';
import { S3Backend, type S3BackendOptions } from '../../src/storage/s3.js';
import { describeS3Error } from '../../src/storage/s3-errors.js';
import { s3Quirks } from '../../src/storage/s3-quirks.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { createTestBucket, type RgwSettings, rgwClient, type TestBucket } from '../support/rgw.js';
import { s3TestServers } from '../support/s3-servers.js';
import { chunkedReadable, readAll, runBackendContract } from './contract.js';

const MiB = 1024 * 1024;

/** Options for a backend on a test server; 5 MiB parts so the contract's 5 MiB + 1 body is multipart. */
function serverOptions(rgw: RgwSettings | undefined, bucket: string, extra: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return {
    bucket,
    prefix: 'archive/host-1',
    endpoint: rgw!.endpoint,
    region: rgw!.region,
    forcePathStyle: true,
    credentials: { accessKeyId: rgw!.accessKeyId, secretAccessKey: rgw!.secretAccessKey },
    partSize: 5 * MiB,
    queueSize: 4,
    ...extra,
  };
}

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageError);
  return err as StorageError;
}

/** Every text an error could show: message, stack and the messages of its causes. */
function allText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; stack?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(String(e.message), String(e.stack));
  }
  return parts.join('\n');
}

// The same tests, unchanged, on each real S3 implementation: Ceph RGW and OpenStack Swift (s3api).
describe.each(s3TestServers())('S3 backend on $name', ({ name, settings: rgw, hint, provider }) => {
  if (!rgw) {
    it.skip(`skipped: ${name} is not running; ${hint}`, () => undefined);
    return;
  }
  const options = (bucket: string, extra: Partial<S3BackendOptions> = {}) => serverOptions(rgw, bucket, extra);
  // One bucket for the whole contract run, one fresh prefix per test: as isolated as a bucket
  // per test (a backend only sees its prefix, as tested below) and much faster on RGW.
  let shared: Promise<TestBucket> | undefined;
  afterAll(async () => (await shared)?.cleanup());
  runBackendContract(`S3 (${name})`, async () => {
    const bucket = await (shared ??= createTestBucket(rgw));
    const prefix = `contract/${randomBytes(6).toString('hex')}`;
    return {
      backend: new S3Backend(options(bucket.name, { prefix })),
      async cleanup() {
        const cleaner = new S3Backend(options(bucket.name, { prefix }));
        const keys: string[] = [];
        await cleaner.list('', (info) => keys.push(info.key));
        await cleaner.delete(keys);
        await cleaner.close();
      },
    };
  });

  describe('S3Backend specifics', () => {
    let bucket: TestBucket;
    let backend: S3Backend;
    const client = () => rgwClient(rgw!);

    beforeAll(async () => {
      bucket = await createTestBucket(rgw);
      backend = new S3Backend(options(bucket.name));
    });
    afterAll(async () => {
      await backend?.close();
      await bucket?.cleanup();
    });

    it('names itself s3://bucket/prefix and keeps to its prefix', async () => {
      expect(backend.location).toBe(`s3://${bucket.name}/archive/host-1`);
      const c = client();
      await c.send(new PutObjectCommand({ Bucket: bucket.name, Key: 'archive/host-10/other', Body: 'x' }));
      await c.send(new PutObjectCommand({ Bucket: bucket.name, Key: 'outside', Body: 'x' }));
      c.destroy();
      await backend.put('inside', Buffer.from('y'));
      const keys: string[] = [];
      await backend.list('', (i) => keys.push(i.key));
      expect(keys).toEqual(['inside']);
    });

    it('uses one PutObject up to the part size and multipart above it', async () => {
      await backend.put('single', randomBytes(5 * MiB));
      await backend.put('multi-buffer', randomBytes(5 * MiB + 1));
      await backend.put('multi-stream', chunkedReadable(randomBytes(11 * MiB)));
      const c = client();
      const etag = async (key: string) => (await c.send(new HeadObjectCommand({ Bucket: bucket.name, Key: `archive/host-1/${key}` }))).ETag ?? '';
      expect(await etag('single')).toMatch(/^"[0-9a-f]{32}"$/);
      expect(await etag('multi-buffer')).toMatch(/-2"$/); // "md5-of-part-md5s-<parts>"
      expect(await etag('multi-stream')).toMatch(/-3"$/);
      c.destroy();
    }, 60_000);

    it('a body with its SHA-256: one PutObject whatever its size, refused by the server when the hash is not the body', async () => {
      const body = randomBytes(11 * MiB);
      const sha256 = createHash('sha256').update(body).digest('hex');
      await backend.put('hashed', body, body.length, { sha256 });
      expect((await readAll(await backend.get('hashed'))).equals(body)).toBe(true);
      const c = client();
      const head = await c.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'archive/host-1/hashed' }));
      c.destroy();
      expect(head.ETag).toMatch(/^"[0-9a-f]{32}"$/); // not multipart although above the part size
      const wrong = createHash('sha256').update('other bytes').digest('hex');
      const err = await failure(backend.put('mismatch', body, body.length, { sha256: wrong }));
      expect(err.message).toMatch(/mismatch ?\w*|arrived damaged/i);
      expect(err.permanent).toBe(false); // damaged on the way: worth sending again
      await expect(backend.head('mismatch')).rejects.toThrow(/not found/);
      await expect(backend.put('bad-hash', body, body.length, { sha256: 'abc' })).rejects.toThrow(/invalid SHA-256/);
    }, 60_000);

    it('a body with the SHA-256 of each part: parts in parallel, each refused by the server when its hash is not its bytes', async () => {
      const body = randomBytes(16 * MiB + 13);
      const sha256 = createHash('sha256').update(body).digest('hex');
      const parts = evenParts(body.length, backend.partUploadBytes, MAX_PARTS_PER_OBJECT);
      expect(parts.length).toBe(3);
      const partSha256s = parts.map((p) =>
        createHash('sha256')
          .update(body.subarray(p.offset, p.offset + p.length))
          .digest('hex'),
      );
      await backend.put('in-parts', body, body.length, { sha256, partSha256s });
      expect((await readAll(await backend.get('in-parts'))).equals(body)).toBe(true);
      const c = client();
      const head = await c.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'archive/host-1/in-parts' }));
      expect(head.ETag).toMatch(/-3"$/);
      // One part's hash is not its bytes (as when it is damaged on the way): the server refuses
      // that part, the upload is aborted, nothing is left.
      const damaged = [...partSha256s];
      damaged[1] = createHash('sha256').update('other bytes').digest('hex');
      const err = await failure(backend.put('in-parts-bad', body, body.length, { sha256, partSha256s: damaged }));
      expect(err.message).toMatch(/mismatch ?\w*|arrived damaged/i);
      expect(err.permanent).toBe(false);
      await expect(backend.head('in-parts-bad')).rejects.toThrow(/not found/);
      const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }));
      c.destroy();
      expect(uploads.Uploads ?? []).toEqual([]);
      // Hashes that do not match the server's cut (a caller's bug): one signed PutObject instead.
      await backend.put('whole', body, body.length, { sha256, partSha256s: partSha256s.slice(1) });
      expect((await readAll(await backend.get('whole'))).equals(body)).toBe(true);
    }, 60_000);

    it('a put checked against its SHA-256 answers the ETag head and list then report, so the writer needs no HEAD (issue 17)', async () => {
      const small = randomBytes(3 * MiB + 5);
      const one = await backend.put('etag-one', small, small.length, { sha256: createHash('sha256').update(small).digest('hex') });
      expect(one?.etag).toMatch(/^[0-9a-f]{32}$/);
      expect(one?.etag).toBe(createHash('md5').update(small).digest('hex')); // a single PutObject: the body's MD5
      expect(one?.etag).toBe((await backend.head('etag-one')).etag);
      const body = randomBytes(16 * MiB + 13);
      const parts = evenParts(body.length, backend.partUploadBytes, MAX_PARTS_PER_OBJECT);
      const partSha256s = parts.map((p) =>
        createHash('sha256')
          .update(body.subarray(p.offset, p.offset + p.length))
          .digest('hex'),
      );
      const multi = await backend.put('etag-parts', body, body.length, { sha256: createHash('sha256').update(body).digest('hex'), partSha256s });
      // Parts: an ETag only where the server's CompleteMultipartUpload answer carries one (this
      // RGW's does not, as the SDK parses it): then the writer asks head, as before.
      const headed = (await backend.head('etag-parts')).etag;
      expect(headed).toMatch(/-3$/);
      if (multi?.etag !== undefined) expect(multi.etag).toBe(headed);
      const listed: (string | undefined)[] = [];
      await backend.list('etag-', (o) => listed.push(o.etag));
      expect(listed.sort()).toEqual([one?.etag, headed].sort());
      // Without a SHA-256 the server checked nothing of ours: no ETag is claimed.
      expect((await backend.put('etag-none', small))?.etag).toBeUndefined();
    }, 60_000);

    it('aborts a failed multipart upload: no object and no incomplete upload left', async () => {
      async function* dying() {
        yield* chunkedReadable(randomBytes(12 * MiB));
        throw new Error('zfs send died');
      }
      await expect(backend.put('aborted', Readable.from(dying()))).rejects.toThrow('zfs send died');
      // A stream shorter than announced is refused at its end, after parts were uploaded.
      await expect(backend.put('short', chunkedReadable(randomBytes(11 * MiB)), 12 * MiB)).rejects.toThrow(/expected/);
      const c = client();
      const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }));
      c.destroy();
      expect(uploads.Uploads ?? []).toEqual([]);
      await expect(backend.head('aborted')).rejects.toThrow(/not found/);
      await expect(backend.head('short')).rejects.toThrow(/not found/);
    }, 60_000);

    it('a wrong secret key: permanent "credentials", saying the secret is wrong, never showing it', async () => {
      const secret = `WRONG-${randomBytes(16).toString('hex')}`;
      const bad = new S3Backend(options(bucket.name, { credentials: { accessKeyId: rgw!.accessKeyId, secretAccessKey: secret } }));
      for (const op of [() => bad.check(), () => bad.put('x', Buffer.from('x')), () => bad.head('x'), () => bad.getBuffer('x')]) {
        const err = await failure(op());
        expect(err).toMatchObject({ permanent: true, kind: 'credentials' });
        expect(err.message).toMatch(/secret access key is wrong/);
        expect(err.message).toContain('SignatureDoesNotMatch');
        expect(allText(err)).not.toContain(secret);
      }
      await bad.close();
    });

    it('an unknown access key: permanent "credentials", saying the key is unknown', async () => {
      const secret = `WRONG-${randomBytes(16).toString('hex')}`;
      const bad = new S3Backend(options(bucket.name, { credentials: { accessKeyId: 'NOSUCHKEY0123', secretAccessKey: secret } }));
      for (const op of [() => bad.check(), () => bad.list('', () => undefined), () => bad.head('x')]) {
        const err = await failure(op());
        expect(err).toMatchObject({ permanent: true, kind: 'credentials' });
        expect(err.message).toMatch(/access key ID is unknown/);
        // Swift's s3api answers an unknown key as a wrong signature; the message then names both causes.
        expect(err.message).toContain(s3Quirks(provider).unknownKeyLooksLikeWrongSecret ? 'SignatureDoesNotMatch' : 'InvalidAccessKeyId');
        expect(allText(err)).not.toContain(secret);
      }
      await bad.close();
    });

    it('a missing bucket: permanent "not-found-container" naming bucket and endpoint', async () => {
      const missing = new S3Backend(options(`${bucket.name}-missing`));
      for (const op of [() => missing.check(), () => missing.put('x', Buffer.from('x')), () => missing.list('', () => undefined)]) {
        const err = await failure(op());
        expect(err).toMatchObject({ permanent: true, kind: 'not-found-container' });
        expect(err.message).toContain(`bucket ${bucket.name}-missing does not exist at ${rgw!.endpoint}`);
        expect(allText(err)).not.toContain(rgw!.secretAccessKey);
      }
      await missing.close();
    });

    it('the retry wrapper gives up at once on these permanent errors', async () => {
      const retries: unknown[] = [];
      const wrapped = new RetryingBackend(new S3Backend(options(`${bucket.name}-missing`)), {
        onRetry: (err) => retries.push(err),
      });
      await expect(wrapped.check()).rejects.toMatchObject({ kind: 'not-found-container' });
      expect(retries).toEqual([]);
      await wrapped.close();
    });

    it('an unreachable server is a transient failure', async () => {
      const down = new S3Backend(options(bucket.name, { endpoint: 'http://127.0.0.1:1' }));
      const err = await failure(down.check());
      expect(err.permanent).toBe(false);
      expect(err.message).toContain('http://127.0.0.1:1');
      await down.close();
    });

    it('streams a ranged read without buffering the object', async () => {
      const data = randomBytes(8 * MiB);
      await backend.put('big', data);
      const part = await readAll(await backend.get('big', { offset: 6 * MiB, length: MiB }));
      expect(part.equals(data.subarray(6 * MiB, 7 * MiB))).toBe(true);
    }, 60_000);

    it('reuses its connections: chunk PUTs and GETs one after another go over one connection, without Expect: 100-continue', async () => {
      // Counts the TCP connections the backend opens (the SDK used to close each one after a
      // PUT that carried Expect: 100-continue: a handshake and a round trip per chunk).
      const port = Number(new URL(rgw!.endpoint).port);
      const proxy = await startFaultProxy({ targetPort: port, pattern: ['none'], maxBytesBeforeFault: 0, random: Math.random, lifetimeMs: 60_000 });
      const viaProxy = new S3Backend(options(bucket.name, { endpoint: `http://127.0.0.1:${proxy.port}` }));
      try {
        for (let i = 0; i < 4; i++) {
          const body = randomBytes(MiB);
          await viaProxy.put(`reuse-${i}`, body, body.length, { sha256: createHash('sha256').update(body).digest('hex') });
          await viaProxy.put(`reuse-md5-${i}`, body);
          expect((await readAll(await viaProxy.get(`reuse-${i}`))).equals(body)).toBe(true);
        }
        expect(proxy.stats.connections).toBe(1);
      } finally {
        await viaProxy.close();
        await proxy.close();
      }
    }, 60_000);

    it('asks for ranged reads of large objects (the chunk fetcher splits them)', () => {
      expect(backend.rangedReadBytes).toBe(4 * MiB);
    });
  });
});

describe('S3 error classification (no server needed)', () => {
  const ctx = { bucket: 'b', endpoint: 'http://s3.example' };
  const svc = (name: string, status: number) => Object.assign(new Error(''), { name, $metadata: { httpStatusCode: status } });

  it.each([
    ['SlowDown', 503, false, 'other'],
    ['InternalError', 500, false, 'other'],
    ['ServiceUnavailable', 503, false, 'other'],
    ['RequestTimeout', 400, false, 'other'],
    ['UnknownError', 502, false, 'other'],
    ['TooManyRequests', 429, false, 'other'],
    ['BadDigest', 400, false, 'other'],
    ['AccessDenied', 403, true, 'permission'],
    ['Forbidden', 403, true, 'permission'],
    ['QuotaExceeded', 403, true, 'no-space'],
    ['NoSuchBucket', 404, true, 'not-found-container'],
    ['InvalidAccessKeyId', 403, true, 'credentials'],
    ['SignatureDoesNotMatch', 403, true, 'credentials'],
    ['ExpiredToken', 400, true, 'credentials'],
    ['EntityTooSmall', 400, true, 'other'],
    ['RequestTimeTooSkewed', 403, true, 'other'],
  ] as const)('%s (HTTP %i) → permanent=%s kind=%s', (name, status, permanent, kind) => {
    expect(describeS3Error(svc(name, status), ctx)).toMatchObject({ permanent, kind });
  });

  it('treats connection failures as transient and NoSuchKey as not found', () => {
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE']) {
      expect(describeS3Error(Object.assign(new Error('x'), { code }), ctx).permanent).toBe(false);
    }
    expect(describeS3Error(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), ctx).permanent).toBe(false);
    expect(describeS3Error(Object.assign(new Error('t'), { name: 'TimeoutError' }), ctx).permanent).toBe(false);
    expect(describeS3Error(svc('NoSuchKey', 404), ctx).notFound).toBe(true);
    expect(describeS3Error(svc('NotFound', 404), ctx).notFound).toBe(true);
    expect(describeS3Error(Object.assign(new Error('no creds'), { name: 'CredentialsProviderError' }), ctx)).toMatchObject({
      permanent: true,
      kind: 'credentials',
    });
  });
});
