import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/storage/local.js';
import { openBackend, parseTarget } from '../../src/storage/open.js';
import { RetryingBackend } from '../../src/storage/retrying.js';
import { S3Backend } from '../../src/storage/s3.js';
import { parseS3Url } from '../../src/storage/s3-url.js';
import { UsageError } from '../../src/util/errors.js';
import { createTestBucket, rgwSettings } from '../support/rgw.js';

const S3_ENV = [
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_S3',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_PROFILE',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
] as const;

/** Runs with exactly these S3-related variables set (and none of the others). */
let saved: Record<string, string | undefined>;
beforeEach(() => {
  saved = Object.fromEntries(S3_ENV.map((k) => [k, process.env[k]]));
  for (const k of S3_ENV) delete process.env[k];
  // No profile files from the machine running the tests.
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/aws-credentials';
});
afterEach(() => {
  for (const k of S3_ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).not.toContain('\n');
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('parseTarget', () => {
  it('accepts file URLs, absolute and relative paths, and s3 URLs', () => {
    expect(parseTarget('file:///srv/backup')).toEqual({ kind: 'local', path: '/srv/backup' });
    expect(parseTarget('file://localhost/srv/my%20backup')).toEqual({ kind: 'local', path: '/srv/my backup' });
    expect(parseTarget('/mnt/usb/archive')).toEqual({ kind: 'local', path: '/mnt/usb/archive' });
    expect(parseTarget('archive/here')).toEqual({ kind: 'local', path: resolve('archive/here') });
    expect(parseTarget('./backup:2024')).toEqual({ kind: 'local', path: resolve('backup:2024') });
    expect(parseTarget('s3://my-bucket/zfs/host1')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: 'zfs/host1' });
    expect(parseTarget('S3://my-bucket')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: '' });
  });

  it.each([
    ['sftp://u@storagebox.example:0/backups', /invalid port/],
    ['ftp://host/dir', /unknown target scheme "ftp:\/\/"/],
    ['https://bucket.s3.amazonaws.com/x', /unknown target scheme "https:\/\/"/],
    ['s3://', /bucket name is missing/],
    ['s3:///prefix', /bucket name is missing/],
    ['s3:bucket/prefix', /malformed target \(a URL needs "s3:\/\/"\)/],
    ['file://relative/path', /file URL needs an absolute path/],
    ['', /no target given/],
  ])('%j is a one-line UsageError', (target, message) => {
    const err = usageError(() => parseTarget(target));
    expect(err.message).toMatch(message);
    if (target !== '') expect(err.message).toContain(target);
  });

  it('never repeats a password given in a URL', () => {
    const err = usageError(() => parseTarget('ftp://user:hunter2@host/dir'));
    expect(err.message).not.toContain('hunter2');
    expect(err.message).toContain('ftp://user:***@host/dir');
  });

  // Issue 15.4: a password holding '/', '@' or ':' was read in part as a bucket name, a port or a
  // path, and that part was repeated ("AKIA:se" is not a valid bucket name; invalid port "p@ss@h").
  const PIECES = ['Qx7', 'Wy8', 'Zv9', 'Ku6'];
  it.each([
    'sftp://u:{pw}@h.example/x',
    'sftp://u:{pw}@h.example:23//abs',
    'sftp://:{pw}@h.example/x',
    'sftp:/u:{pw}@h/x',
    'sftp:u:{pw}@h/x',
    's3://AKIA:{pw}@bucket/prefix',
    's3:/AKIA:{pw}@bucket',
    'file://u:{pw}@localhost/x',
    'https://u:{pw}@host:9000/x',
  ])('%s: refused, and no piece of the password is repeated', (form) => {
    for (const pw of ['Qx7/Wy8@Zv9:Ku6', 'Qx7@Wy8/Zv9@Ku6', 'Qx7:Wy8/Zv9%40Ku6', '12/Qx7@Wy8/Zv9:Ku6']) {
      const target = form.replace('{pw}', pw);
      const err = usageError(() => parseTarget(target));
      for (const piece of PIECES) expect(err.message, target).not.toContain(piece);
    }
  });
});

describe('parseS3Url', () => {
  it('splits bucket and prefix, dropping trailing slashes', () => {
    expect(parseS3Url('s3://bucket/some/prefix')).toEqual({ bucket: 'bucket', prefix: 'some/prefix' });
    expect(parseS3Url('s3://bucket/some/prefix/')).toEqual({ bucket: 'bucket', prefix: 'some/prefix' });
    expect(parseS3Url('s3://bucket/')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://my.dotted-bucket.01')).toEqual({ bucket: 'my.dotted-bucket.01', prefix: '' });
  });

  it.each([
    ['s3://ab/x', /3 to 63 characters/],
    [`s3://${'a'.repeat(64)}/x`, /3 to 63 characters/],
    ['s3://My_Bucket/x', /lowercase/],
    ['s3://-bucket/x', /start and end with a letter or digit/],
    ['s3://bucket-/x', /start and end with a letter or digit/],
    ['s3://a..b/x', /two dots/],
    ['s3://192.168.1.10/x', /IP address/],
    ['s3://key:secret@bucket/x', /credentials do not belong in the URL/],
    ['s3://bucket//x', /empty, '\.' or '\.\.' path segment/],
    ['s3://bucket/a/../b', /empty, '\.' or '\.\.' path segment/],
    ['s3://bucket/a?versionId=1', /may not contain/],
  ])('%s is refused: %s', (url, message) => {
    const err = usageError(() => parseS3Url(url));
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('secret');
  });
});

describe('openBackend', () => {
  it('opens a directory behind the retry wrapper', async () => {
    const root = await mkdtemp(join(tmpdir(), 'zfs-offsite-open-'));
    try {
      const backend = await openBackend(`file://${root}/archive`, {});
      expect(backend).toBeInstanceOf(RetryingBackend);
      expect((backend as RetryingBackend).inner).toBeInstanceOf(LocalBackend);
      expect(backend.location).toBe(`${root}/archive`);
      await backend.put('x', Buffer.from('1'));
      expect((await backend.getBuffer('x')).toString()).toBe('1');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  async function s3Inner(target: string, options = {}): Promise<S3Backend> {
    const backend = await openBackend(target, options);
    const inner = (backend as RetryingBackend).inner;
    expect(inner).toBeInstanceOf(S3Backend);
    return inner as S3Backend;
  }

  it('uses path-style addressing when an endpoint is configured, virtual-host style for AWS', async () => {
    const aws = await s3Inner('s3://bucket/p');
    expect(aws.location).toBe('s3://bucket/p');
    expect(aws.client.config.forcePathStyle).toBe(false);
    expect(await aws.client.config.region()).toBe('us-east-1'); // nothing configured anywhere

    const viaOption = await s3Inner('s3://bucket/p', { s3Endpoint: 'http://127.0.0.1:9000' });
    expect(viaOption.client.config.forcePathStyle).toBe(true);

    process.env.AWS_ENDPOINT_URL = 'http://minio.lan:9000';
    process.env.AWS_REGION = 'eu-central-1';
    const viaEnv = await s3Inner('s3://bucket/p');
    expect(viaEnv.client.config.forcePathStyle).toBe(true);
    expect(await viaEnv.client.config.region()).toBe('eu-central-1');

    const explicit = await s3Inner('s3://bucket/p', { s3PathStyle: false });
    expect(explicit.client.config.forcePathStyle).toBe(false);
    for (const b of [aws, viaOption, viaEnv, explicit]) await b.close();
  });

  it('refuses bad S3 settings with a UsageError', async () => {
    await expect(openBackend('s3://bucket/p', { s3PartSize: 1024 * 1024 })).rejects.toThrow(UsageError);
    await expect(openBackend('s3://bucket/p', { s3Queue: 0 })).rejects.toThrow(UsageError);
    await expect(openBackend('s3://bucket/p', { s3Endpoint: 'minio:9000' })).rejects.toThrow(/not an http/);
    await expect(openBackend('sftp://u:pw@host/x', {})).rejects.toThrow(/password does not belong in the URL/);
  });

  it('gives a credentials file (and profile) to this client only, never through process.env', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zfs-offsite-creds-'));
    try {
      const file = join(dir, 'credentials');
      await writeFile(file, '[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n[backup]\naws_access_key_id = AKIABACKUP\naws_secret_access_key = s2\n');
      const before = { ...process.env };
      const withFile = await s3Inner('s3://bucket/p', { s3CredentialsFile: file, s3Profile: 'backup', s3Region: 'eu-central-1' });
      expect((await withFile.client.config.credentials()).accessKeyId).toBe('AKIABACKUP');
      expect(await withFile.client.config.region()).toBe('eu-central-1');
      const defaultProfile = await s3Inner('s3://bucket/p', { s3CredentialsFile: file });
      expect((await defaultProfile.client.config.credentials()).accessKeyId).toBe('AKIADEFAULT');
      expect(process.env).toEqual(before);
      // The next target without a file does not see it (the standard chain finds nothing here).
      const next = await s3Inner('s3://bucket/p');
      await expect(next.client.config.credentials()).rejects.toThrow();
      for (const b of [withFile, defaultProfile, next]) await b.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the key id and secret from the variables the options name, and requires both', async () => {
    process.env.ZO_TEST_KEY_ID = 'AKIANAMED';
    process.env.ZO_TEST_SECRET = 'named-secret';
    try {
      const named = await s3Inner('s3://bucket/p', { s3AccessKeyIdEnv: 'ZO_TEST_KEY_ID', s3SecretAccessKeyEnv: 'ZO_TEST_SECRET' });
      expect(await named.client.config.credentials()).toMatchObject({ accessKeyId: 'AKIANAMED', secretAccessKey: 'named-secret' });
      await named.close();
      await expect(openBackend('s3://bucket/p', { s3AccessKeyIdEnv: 'ZO_TEST_KEY_ID', s3SecretAccessKeyEnv: 'ZO_TEST_UNSET' })).rejects.toThrow(
        new UsageError('the environment variables ZO_TEST_KEY_ID and ZO_TEST_UNSET must both be set (s3 access_key_id_env, secret_access_key_env)'),
      );
    } finally {
      delete process.env.ZO_TEST_KEY_ID;
      delete process.env.ZO_TEST_SECRET;
    }
  });

  const rgw = rgwSettings();
  it.skipIf(!rgw)('opens the test S3 server from the environment and keeps those settings when it changes', async () => {
    const bucket = await createTestBucket(rgw);
    try {
      Object.assign(process.env, {
        AWS_ENDPOINT_URL: rgw!.endpoint,
        AWS_ACCESS_KEY_ID: rgw!.accessKeyId,
        AWS_SECRET_ACCESS_KEY: rgw!.secretAccessKey,
        AWS_REGION: rgw!.region,
      });
      const backend = await openBackend(`s3://${bucket.name}/archive`, {});
      for (const k of ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION']) delete process.env[k];
      await backend.check();
      await backend.put('k', Buffer.from('v'));
      expect((await backend.getBuffer('k')).toString()).toBe('v');
      await backend.close();
    } finally {
      await bucket.cleanup();
    }
  });
});
