import { createHash } from 'node:crypto';
import { DeleteObjectCommand, GetObjectRetentionCommand, HeadObjectCommand, PutObjectRetentionCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ObjectLockedError, StorageError } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';
import { RetryingBackend } from '../../src/storage/retrying.js';
import { S3Backend } from '../../src/storage/s3.js';
import { lockedRefusal } from '../../src/storage/s3-errors.js';
import { createTestBucket, RGW_HINT, rgwClient, rgwSettings, type TestBucket } from '../support/rgw.js';

/**
 * The Object Lock half of the storage contract (storage/backend.ts ObjectLockStore, s3-lock.ts)
 * on real Ceph RGW, in a bucket created with ObjectLockEnabledForBucket. Governance mode only:
 * the bucket's cleanup bypasses it (test/support/rgw.ts).
 */

const rgw = rgwSettings();
const HOUR = 3_600_000;

describe('lockedRefusal: a locked delete is told apart by the retention read back, never the message', () => {
  const cause = { name: 'AccessDenied', message: 'forbidden by object lock' };
  const now = new Date('2026-06-01T00:00:00Z');
  it('is an ObjectLockedError (kind locked) while the version is retained', () => {
    const err = lockedRefusal('a/b', { mode: 'governance', until: new Date('2026-06-02T00:00:00Z') }, now, 's3://x', cause);
    expect(err).toBeInstanceOf(ObjectLockedError);
    expect(err).toBeInstanceOf(StorageError);
    expect(err?.kind).toBe('locked');
    expect(err?.permanent).toBe(true);
    expect(err?.message).toBe('s3://x: cannot delete a/b: it is locked (governance) until 2026-06-02T00:00:00.000Z');
  });
  it('is not a lock without a retention, or with one already past, whatever the message says', () => {
    expect(lockedRefusal('a/b', null, now, 's3://x', cause)).toBeUndefined();
    expect(lockedRefusal('a/b', { mode: 'compliance', until: new Date('2026-05-31T00:00:00Z') }, now, 's3://x', cause)).toBeUndefined();
  });
});

describe('backends without Object Lock', () => {
  it('local has no objectLock, and the retrying wrapper keeps it absent', () => {
    const local: Backend = new LocalBackend('/tmp/never-used-h18');
    expect(local.objectLock).toBeUndefined();
    expect(new RetryingBackend(local).objectLock).toBeUndefined();
  });
});

describe.skipIf(!rgw)(`S3 Object Lock on Ceph RGW (skipped without a server: ${RGW_HINT})`, () => {
  let bucket: TestBucket;
  let s3: S3Backend;
  const client = rgw ? rgwClient(rgw) : undefined;
  beforeAll(async () => {
    bucket = await createTestBucket(rgw, { objectLock: true });
    s3 = new S3Backend({
      bucket: bucket.name,
      prefix: 'p',
      endpoint: rgw!.endpoint,
      region: rgw!.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw!.accessKeyId, secretAccessKey: rgw!.secretAccessKey },
    });
  }, 60_000);
  afterAll(async () => {
    await s3?.close();
    client?.destroy();
    await bucket?.cleanup();
  }, 120_000);

  it('says what the bucket has on', async () => {
    expect(await s3.objectLock.state()).toEqual({ versioning: true, objectLock: true });
    const plain = await createTestBucket(rgw);
    const other = new S3Backend({
      bucket: plain.name,
      prefix: '',
      endpoint: rgw!.endpoint,
      region: rgw!.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw!.accessKeyId, secretAccessKey: rgw!.secretAccessKey },
    });
    try {
      expect(await other.objectLock.state()).toEqual({ versioning: false, objectLock: false });
    } finally {
      await other.close();
      await plain.cleanup();
    }
  }, 60_000);

  it('puts with a retention (both put paths), reads it back, extends it, never shortens it', async () => {
    const until = new Date(Math.ceil((Date.now() + HOUR) / 1000) * 1000);
    const body = Buffer.from('locked bytes');
    await s3.put('a', body, body.length, { sha256: createHash('sha256').update(body).digest('hex'), retention: { mode: 'governance', until } });
    await s3.put('b', body, body.length, { retention: { mode: 'governance', until } });
    for (const key of ['a', 'b']) expect(await s3.objectLock.getRetention(key)).toEqual({ mode: 'governance', until });
    // An object written without one has none.
    await s3.put('c', body, body.length);
    expect(await s3.objectLock.getRetention('c')).toBeNull();
    // Extending to an earlier date changes nothing (and asks nothing of the server but a read).
    expect(await s3.objectLock.extendRetention('a', { mode: 'governance', until: new Date(until.getTime() - HOUR / 2) })).toEqual({ mode: 'governance', until });
    const later = new Date(until.getTime() + HOUR);
    expect(await s3.objectLock.extendRetention('a', { mode: 'governance', until: later })).toEqual({ mode: 'governance', until: later });
    const read = await client!.send(new GetObjectRetentionCommand({ Bucket: bucket.name, Key: 'p/a' }));
    expect(read.Retention?.RetainUntilDate?.getTime()).toBe(later.getTime());
    // An object without a retention gets one.
    expect(await s3.objectLock.extendRetention('c', { mode: 'governance', until })).toEqual({ mode: 'governance', until });
    // A compliance lock asked for later is never weakened: a governance request keeps compliance.
    const head = await client!.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'p/a' }));
    expect(head.ObjectLockMode).toBe('GOVERNANCE');
  }, 60_000);

  it('lists versions, deletes unlocked ones for good, and types a locked refusal as ObjectLockedError', async () => {
    const body = Buffer.from('v');
    const until = new Date(Date.now() + HOUR);
    await s3.put('d/locked', body, body.length, { retention: { mode: 'governance', until } });
    await s3.put('d/free', body, body.length);
    await s3.put('d/free', Buffer.from('v2'), 2);
    await s3.delete(['d/gone']); // a marker for nothing: harmless
    await client!.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: 'p/d/free' })); // a delete marker over free
    const versions = await s3.objectLock.listVersions('d/');
    expect(versions.filter((v) => v.key === 'd/free' && !v.deleteMarker)).toHaveLength(2);
    expect(versions.filter((v) => v.key === 'd/free' && v.deleteMarker)).toHaveLength(1);
    await s3.objectLock.deleteVersions(versions.filter((v) => v.key === 'd/free'));
    expect((await s3.objectLock.listVersions('d/free')).length).toBe(0);
    // Deleting it again: gone versions are not an error.
    await s3.objectLock.deleteVersions(versions.filter((v) => v.key === 'd/free'));

    const locked = versions.filter((v) => v.key === 'd/locked');
    const err = await new RetryingBackend(s3).objectLock!.deleteVersions(locked).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ObjectLockedError);
    expect((err as ObjectLockedError).kind).toBe('locked');
    expect((err as ObjectLockedError).retention.until.getTime()).toBe(until.getTime());
    expect((err as Error).message).toMatch(/cannot delete d\/locked: it is locked \(governance\) until /);
    expect(await s3.objectLock.listVersions('d/locked')).toHaveLength(1);
    // Once its retention is over (moved by a bypassing key here), the same call removes it.
    await client!.send(
      new PutObjectRetentionCommand({
        Bucket: bucket.name,
        Key: 'p/d/locked',
        VersionId: locked[0]!.versionId,
        BypassGovernanceRetention: true,
        Retention: { Mode: 'GOVERNANCE', RetainUntilDate: new Date(Date.now() + 1500) },
      }),
    );
    await new Promise((r) => setTimeout(r, 2500));
    await s3.objectLock.deleteVersions(locked);
    expect(await s3.objectLock.listVersions('d/locked')).toHaveLength(0);
  }, 60_000);

  it('sends Content-MD5 (and the lock headers) on every put with a retention, on both put paths', async () => {
    const seen: Record<string, string>[] = [];
    s3.client.middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers;
        if (headers?.['x-amz-object-lock-mode']) seen.push({ ...headers });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'h18SeeHeaders' },
    );
    try {
      const body = Buffer.from('md5 me');
      const md5 = createHash('md5').update(body).digest('base64');
      const retention = { mode: 'governance' as const, until: new Date(Date.now() + HOUR) };
      await s3.put('m/signed', body, body.length, { sha256: createHash('sha256').update(body).digest('hex'), retention });
      await s3.put('m/plain', body, body.length, { retention });
      expect(seen).toHaveLength(2);
      for (const h of seen) {
        expect(h['content-md5']).toBe(md5);
        expect(h['x-amz-object-lock-mode']).toBe('GOVERNANCE');
        expect(h['x-amz-object-lock-retain-until-date']).toBeDefined();
      }
    } finally {
      s3.client.middlewareStack.remove('h18SeeHeaders');
    }
  }, 30_000);
});
