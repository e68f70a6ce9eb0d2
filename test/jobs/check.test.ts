/**
 * `zfs-offsite check TARGET` through the built CLI: on the real Ceph RGW (a plain bucket, one with
 * a multipart lifecycle rule, a versioned one, one with Object Lock and a default retention, and
 * the append-only key of test/support/rgw.ts), on Swift s3api (which has no versioning, Object
 * Lock or lifecycle), on a local directory and on the real SFTP server.
 * Each property is asserted as the server really is; the probes leave nothing behind when the
 * key may delete, and what an append-only key leaves is ignored by verify.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckReport } from '../../src/jobs/check.js';
import { CLOCK_PROBLEM_SECONDS, CLOCK_WARN_SECONDS, clockItem } from '../../src/storage/s3-check.js';
import { runCli } from '../support/cli.js';
import { applyAppendOnlyPolicy, createTestBucket, rgwClient, rgwSettings, secondRgwUser } from '../support/rgw.js';
import { swiftSettings } from '../support/swift.js';
import { sshdSettings, uniqueSftpDir } from '../support/sshd.js';
import { buildStream } from '../support/synthetic-stream.js';

const owner = rgwSettings();
const writer = secondRgwUser(owner);
const envOf = (s: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string }) => ({
  AWS_ENDPOINT_URL: s.endpoint,
  AWS_ACCESS_KEY_ID: s.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s.secretAccessKey,
  AWS_REGION: s.region,
});

async function check(url: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; report: CheckReport; text: string; stderr: string }> {
  const json = await runCli(['check', url, '--json'], { env });
  expect(json.stderr).toBe('');
  const text = await runCli(['check', url], { env });
  expect(text.code).toBe(json.code);
  return { code: json.code, report: JSON.parse(json.stdout) as CheckReport, text: text.stdout, stderr: text.stderr };
}

const item = (r: CheckReport, property: string) => r.items.find((i) => i.property === property)!;

/** Every version and delete marker in a bucket (what a deletion on a versioned bucket leaves). */
async function versions(client: S3Client, bucket: string): Promise<{ Key: string; VersionId: string }[]> {
  const res = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  return [...(res.Versions ?? []), ...(res.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
}

describe('check: pure rules', () => {
  it('reports the clock by its distance from the server', () => {
    expect(clockItem(0).status).toBe('ok');
    expect(clockItem(CLOCK_WARN_SECONDS).status).toBe('ok');
    expect(clockItem(CLOCK_WARN_SECONDS + 1)).toMatchObject({ status: 'warn', detail: expect.stringContaining(`${CLOCK_WARN_SECONDS + 1} s behind the server`) });
    expect(clockItem(-(CLOCK_PROBLEM_SECONDS + 1))).toMatchObject({ status: 'problem', detail: expect.stringContaining('ahead of the server') });
    expect(clockItem(undefined).status).toBe('warn');
  });
});

describe.skipIf(!owner)('check on Ceph RGW', () => {
  const client = owner ? rgwClient(owner) : (undefined as unknown as S3Client);
  const made: string[] = [];
  async function bucket(options: { lock?: boolean; versioning?: boolean } = {}): Promise<string> {
    const name = `zfs-offsite-check-${Date.now().toString(36)}-${Math.random().toString(16).slice(2, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: name, ...(options.lock ? { ObjectLockEnabledForBucket: true } : {}) }));
    made.push(name);
    if (options.versioning) await client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    return name;
  }
  afterAll(async () => {
    for (const name of made) {
      // Governance-mode locks are lifted by the owner with the bypass header (test buckets only).
      const all = await versions(client, name).catch(() => []);
      if (all.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: name, BypassGovernanceRetention: true, Delete: { Objects: all, Quiet: true } })).catch(() => undefined);
      await client.send(new DeleteBucketCommand({ Bucket: name })).catch(() => undefined);
    }
    client.destroy();
  });

  it('a plain bucket: every property, exit 0, nothing left behind; RGW 16 refuses a wrong x-amz-content-sha256', async () => {
    const name = await bucket();
    const { code, report, text } = await check(`s3://${name}/archive`, envOf(owner!));
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 's3', problems: 0, appendOnly: false });
    expect(report.items.map((i) => i.property)).toEqual([
      'reachable',
      'credentials',
      'archive',
      'write',
      'read',
      'delete',
      'clock',
      'versioning',
      'object-lock',
      'multipart-cleanup',
      'content-sha256',
      'free-space',
    ]);
    for (const p of ['reachable', 'credentials', 'write', 'read', 'delete', 'clock']) expect(item(report, p).status).toBe('ok');
    expect(item(report, 'archive').detail).toContain('no archive yet');
    expect(item(report, 'versioning')).toMatchObject({ status: 'info', detail: expect.stringContaining('not enabled') });
    expect(item(report, 'object-lock')).toMatchObject({ status: 'info', detail: 'not enabled on this bucket' });
    expect(item(report, 'multipart-cleanup').status).toBe('warn');
    // Measured: Ceph RGW 16 checks the signed payload hash and answers XAmzContentSHA256Mismatch.
    expect(item(report, 'content-sha256')).toMatchObject({ status: 'ok', detail: expect.stringContaining('XAmzContentSHA256Mismatch') });
    expect(item(report, 'free-space').status).toBe('n/a');
    expect(text).toMatch(/^check s3:\/\/\S+ \(s3\):\n {2}property +result +detail\n/);
    expect(text).toContain('no problems, 1 warning(s)');
    expect(text).not.toContain(owner!.secretAccessKey);
    expect(await versions(client, name)).toEqual([]);
  });

  it('a lifecycle rule with AbortIncompleteMultipartUpload is found', async () => {
    const name = await bucket();
    await client.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: name,
        LifecycleConfiguration: { Rules: [{ ID: 'abort-mpu', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 } }] },
      }),
    );
    const { code, report } = await check(`s3://${name}`, envOf(owner!));
    expect(code).toBe(0);
    expect(item(report, 'multipart-cleanup')).toMatchObject({ status: 'ok', detail: 'lifecycle rule "abort-mpu" aborts incomplete multipart uploads after 3 day(s)' });
  });

  it('a versioned bucket: reported, and the probes leave no version behind', async () => {
    const name = await bucket({ versioning: true });
    const { code, report } = await check(`s3://${name}/x`, envOf(owner!));
    expect(code).toBe(0);
    expect(item(report, 'versioning')).toMatchObject({ status: 'info', detail: expect.stringContaining('enabled: an overwritten or deleted object stays') });
    expect(await versions(client, name)).toEqual([]);
  });

  it('an Object Lock bucket: its default retention is reported', async () => {
    const name = await bucket({ lock: true });
    await client.send(new PutObjectLockConfigurationCommand({ Bucket: name, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } } }));
    const { code, report } = await check(`s3://${name}`, envOf(owner!));
    expect(code).toBe(0);
    expect(item(report, 'object-lock')).toMatchObject({ status: 'info', detail: 'enabled; default retention governance mode, 1 day(s)' });
    expect(item(report, 'versioning').detail).toContain('enabled');
    // The probe's version is locked for a day: the check says it could not remove it.
    expect(item(report, 'probes')).toMatchObject({ status: 'info', detail: expect.stringContaining('could not all be removed') });
  });

  it.skipIf(!writer)('an append-only key: write allowed, delete refused, exit 0; its leftover probe does not upset verify', async () => {
    const b = await createTestBucket(owner);
    try {
      await applyAppendOnlyPolicy(owner!, b.name, writer!.uid);
      const url = `s3://${b.name}/archive`;
      const stream = Buffer.from(buildStream({ substreams: [{ toname: 'pool/c@a', toguid: 0x3000_0000_0000_0001n, creationTime: 1_767_000_000 }] }).bytes);
      expect((await runCli(['put', '--to', url], { env: envOf(owner!), input: stream })).code).toBe(0);
      const { code, report, text } = await check(url, envOf(writer!));
      expect(code).toBe(0);
      expect(report).toMatchObject({ problems: 0, appendOnly: true });
      expect(item(report, 'write').status).toBe('ok');
      expect(item(report, 'read').status).toBe('ok');
      expect(item(report, 'delete')).toMatchObject({ status: 'info', detail: expect.stringContaining('append-only credentials (write allowed, delete refused)') });
      expect(item(report, 'archive').detail).toContain('present');
      expect(text).toContain('append-only credentials');
      expect(text).not.toContain(writer!.secretAccessKey);
      const verify = await runCli(['verify', url], { env: envOf(owner!) });
      expect(verify.stderr).toBe('');
      expect(verify.code).toBe(0);
    } finally {
      await b.cleanup();
    }
  });

  it('wrong credentials and an unreachable server are problems: exit 3, no secret printed', async () => {
    const name = await bucket();
    const bad = await check(`s3://${name}`, { ...envOf(owner!), AWS_SECRET_ACCESS_KEY: 'wrong-secret-do-not-print' });
    expect(bad.code).toBe(3);
    expect(item(bad.report, 'credentials')).toMatchObject({ status: 'problem', detail: expect.stringContaining('SignatureDoesNotMatch') });
    expect(item(bad.report, 'write').status).toBe('skipped');
    expect(bad.text).toContain('1 problem(s)');
    expect(JSON.stringify(bad.report) + bad.text).not.toContain('wrong-secret-do-not-print');
    const down = await check(`s3://${name}`, { ...envOf(owner!), AWS_ENDPOINT_URL: 'http://127.0.0.1:1' });
    expect(down.code).toBe(3);
    expect(item(down.report, 'reachable')).toMatchObject({ status: 'problem', detail: expect.stringContaining('ECONNREFUSED') });
  });
});

const swift = swiftSettings();
describe.skipIf(!swift)('check on Swift s3api', () => {
  const client = swift ? rgwClient(swift) : (undefined as unknown as S3Client);
  const made: string[] = [];
  async function bucket(options: { lock?: boolean } = {}): Promise<string> {
    const name = `zfs-offsite-check-${Date.now().toString(36)}-${Math.random().toString(16).slice(2, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: name, ...(options.lock ? { ObjectLockEnabledForBucket: true } : {}) }));
    made.push(name);
    return name;
  }
  afterAll(async () => {
    for (const name of made) await client.send(new DeleteBucketCommand({ Bucket: name })).catch(() => undefined);
    client.destroy();
  });

  it('a plain bucket: every property as Swift answers, exit 0, nothing left behind; Swift refuses a wrong x-amz-content-sha256', async () => {
    const name = await bucket();
    const { code, report, text } = await check(`s3://${name}/archive`, envOf(swift!));
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 's3', problems: 0, warnings: 0, appendOnly: false });
    for (const p of ['reachable', 'credentials', 'write', 'read', 'delete', 'clock']) expect(item(report, p).status).toBe('ok');
    expect(item(report, 'archive').detail).toContain('no archive yet');
    // Measured on Swift 2.30 s3api: GET ?versioning answers an empty configuration (PUT ?versioning
    // is NotImplemented without the object_versioning middleware), so "not enabled" is true.
    expect(item(report, 'versioning')).toMatchObject({ status: 'info', detail: expect.stringContaining('not enabled') });
    // GET ?object-lock and GET ?lifecycle are not routed by Swift's s3api: it answers them with a
    // bucket listing (ListBucketResult). Neither feature exists there: said so, not a warning.
    expect(item(report, 'object-lock')).toMatchObject({ status: 'n/a', detail: expect.stringContaining('not supported by this server') });
    expect(item(report, 'multipart-cleanup')).toMatchObject({ status: 'n/a', detail: expect.stringContaining('not supported by this server') });
    // Measured: Swift s3api checks the signed payload hash and answers BadDigest.
    expect(item(report, 'content-sha256')).toMatchObject({ status: 'ok', detail: expect.stringContaining('BadDigest') });
    expect(item(report, 'free-space').status).toBe('n/a');
    expect(text).toContain('no problems\n');
    expect(text).not.toContain(swift!.secretAccessKey);
    const left = await client.send(new ListObjectsV2Command({ Bucket: name }));
    expect(left.Contents ?? []).toEqual([]);
  });

  it('a bucket created with ObjectLockEnabledForBucket: Swift accepts the request but has no Object Lock, and check says so', async () => {
    const name = await bucket({ lock: true });
    const { code, report } = await check(`s3://${name}`, envOf(swift!));
    expect(code).toBe(0);
    expect(item(report, 'object-lock')).toMatchObject({ status: 'n/a', detail: expect.stringContaining('not supported by this server') });
  });

  it('a wrong secret is a credentials problem: exit 3, the secret not printed', async () => {
    const name = await bucket();
    const bad = await check(`s3://${name}`, { ...envOf(swift!), AWS_SECRET_ACCESS_KEY: 'wrong-swift-secret-do-not-print' });
    expect(bad.code).toBe(3);
    expect(item(bad.report, 'reachable').status).toBe('ok');
    expect(item(bad.report, 'credentials')).toMatchObject({ status: 'problem', detail: expect.stringContaining('SignatureDoesNotMatch') });
    for (const p of ['write', 'read', 'delete', 'object-lock', 'content-sha256']) expect(item(bad.report, p).status).toBe('skipped');
    expect(bad.text).toContain('1 problem(s)');
    expect(JSON.stringify(bad.report) + bad.text + bad.stderr).not.toContain('wrong-swift-secret-do-not-print');
  });
});

describe('check on a local directory', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-check-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports what applies, n/a for the S3-only properties, and leaves nothing', async () => {
    const { code, report } = await check(dir, {});
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 'local', problems: 0, appendOnly: false });
    for (const p of ['reachable', 'write', 'read', 'delete']) expect(item(report, p).status).toBe('ok');
    for (const p of ['credentials', 'clock', 'versioning', 'object-lock', 'multipart-cleanup', 'content-sha256']) expect(item(report, p).status).toBe('n/a');
    expect(item(report, 'free-space')).toMatchObject({ status: 'info', detail: expect.stringMatching(/ free of /) });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a malformed or missing target is bad usage: exit 2, one line', async () => {
    const bad = await runCli(['check', 'ftp://host/x']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^zfs-offsite: error: ftp:\/\/host\/x: unknown target scheme "ftp:\/\/"; .*\n$/);
    const none = await runCli(['check']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^zfs-offsite: error: missing required argument 'target' \(see: zfs-offsite check --help\)\n$/);
  });

  it('a target that cannot be used is a problem, exit 3', async () => {
    // A path through a regular file: unusable for root too, who writes anywhere else.
    const { code, report } = await check('/dev/null/archive', {});
    expect(code).toBe(3);
    expect(item(report, 'reachable')).toMatchObject({ status: 'problem', detail: expect.stringContaining('ENOTDIR') });
    expect(item(report, 'write').status).toBe('skipped');
  });
});

const sshd = sshdSettings();
describe.skipIf(!sshd)('check on SFTP (OpenSSH)', () => {
  it('reports what applies over SFTP', async () => {
    const dir = uniqueSftpDir(sshd!, 'check');
    try {
      const url = `sftp://${sshd!.user}@${sshd!.host}:${sshd!.port}/${dir.rel}`;
      const { code, report } = await check(url, { ZFS_OFFSITE_SFTP_KEY: sshd!.key, ZFS_OFFSITE_SFTP_KNOWN_HOSTS: sshd!.knownHosts });
      expect(code).toBe(0);
      expect(report).toMatchObject({ kind: 'sftp', problems: 0 });
      expect(item(report, 'credentials')).toMatchObject({ status: 'ok', detail: 'logged in' });
      for (const p of ['reachable', 'write', 'read', 'delete']) expect(item(report, p).status).toBe('ok');
      for (const p of ['clock', 'versioning', 'object-lock', 'multipart-cleanup', 'content-sha256', 'free-space']) expect(item(report, p).status).toBe('n/a');
    } finally {
      await dir.cleanup();
    }
  });
});
