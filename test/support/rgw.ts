import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketPolicyCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { parseEnvFile } from './env-file.js';
import { s3Quirks, withDeleteChecksum } from '../../src/storage/s3-quirks.js';

/**
 * The real S3 server of the test suite: Ceph RGW started by `scripts/rgw.sh start` (which
 * `npm test` runs), described by the env file it writes, or any server named by
 * AWS_ENDPOINT_URL + AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY in the environment.
 */
export interface RgwSettings {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export const RGW_HINT = 'start Ceph RGW with `scripts/rgw.sh start`, or run `npm test`, which does';

export function rgwEnvFile(): string {
  return join(process.env.RGW_DIR || '/tmp/zfs-offsite-rgw', 'env');
}

/** Where the test S3 server is and how to log in, or undefined when there is none. */
export function rgwSettings(): RgwSettings | undefined {
  let vars: Record<string, string | undefined>;
  try {
    vars = parseEnvFile(readFileSync(rgwEnvFile(), 'utf8'));
  } catch {
    vars = process.env;
  }
  const { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = vars;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, accessKeyId, secretAccessKey, region: vars.AWS_REGION || 'us-east-1' };
}

/** A client for test setup and inspection (bucket creation, multipart listings). */
export function rgwClient(settings: RgwSettings): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface TestBucket {
  name: string;
  settings: RgwSettings;
  /** Aborts unfinished multipart uploads, deletes every object and then the bucket. */
  cleanup(): Promise<void>;
}

/**
 * Creates a uniquely named bucket on the test server; with `objectLock`, created with
 * ObjectLockEnabledForBucket (versioning turns on with it). Its cleanup removes every version,
 * bypassing governance retention: tests lock in governance mode only, so nothing outlives them.
 */
export async function createTestBucket(settings: RgwSettings | undefined = rgwSettings(), options: { objectLock?: boolean } = {}): Promise<TestBucket> {
  if (!settings) throw new Error(`no S3 test server: ${RGW_HINT}`);
  const name = `zfs-offsite-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const client = rgwClient(settings);
  try {
    await client.send(new CreateBucketCommand({ Bucket: name, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  } catch (err) {
    client.destroy();
    throw err;
  }
  return {
    name,
    settings,
    async cleanup() {
      try {
        if (options.objectLock) await removeVersions(client, name);
        await emptyBucket(client, name);
        await client.send(new DeleteBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
  };
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const u of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length === 0) return;
    // With Content-MD5 (the default quirks): Swift's s3api refuses a multi-object delete without it.
    await client.send(withDeleteChecksum(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }), s3Quirks()));
  }
}

/**
 * A second S3 user on the test RGW, made with `radosgw-admin` as scripts/rgw.sh makes the first
 * (fixed throwaway keys: the server listens on 127.0.0.1 only). It owns no bucket: a bucket
 * policy of the first user's bucket grants it what it may do (`appendOnlyPolicy`). Needs the
 * RGW that scripts/rgw.sh started (its ceph.conf); undefined for any other server.
 */
export function secondRgwUser(settings: RgwSettings | undefined = rgwSettings()): (RgwSettings & { uid: string }) | undefined {
  if (!settings) return undefined;
  const conf = join(process.env.RGW_DIR || '/tmp/zfs-offsite-rgw', 'ceph.conf');
  if (!existsSync(conf)) return undefined;
  const uid = 'zfsoffsite-appendonly';
  const accessKeyId = 'zfsoffsite-appendonly';
  const secretAccessKey = 'zfsoffsite-appendonly-secret-0123456789abcdef';
  const info = spawnSync('radosgw-admin', ['-c', conf, 'user', 'info', `--uid=${uid}`], { encoding: 'utf8' });
  if (info.status !== 0) {
    const made = spawnSync(
      'radosgw-admin',
      ['-c', conf, 'user', 'create', `--uid=${uid}`, '--display-name=zfs-offsite append-only tests', `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`],
      {
        encoding: 'utf8',
      },
    );
    // Two test files creating it at once: the loser finds it made.
    if (made.status !== 0 && spawnSync('radosgw-admin', ['-c', conf, 'user', 'info', `--uid=${uid}`]).status !== 0) {
      throw new Error(`radosgw-admin user create failed: ${made.stderr.trim()}`);
    }
  }
  return { ...settings, accessKeyId, secretAccessKey, uid };
}

/**
 * The two-key set-up of README "Ransomware protection": the bucket owner keeps every right; the
 * user `uid` may list, read and write, and is denied s3:DeleteObject (and the deletion of
 * object versions), so a host holding its key cannot destroy what it archived.
 */
export function appendOnlyPolicy(bucket: string, uid: string, ownerUid = 'zfsoffsite-test'): string {
  const principal = { AWS: [`arn:aws:iam:::user/${uid}`] };
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        // Objects belong to the user who wrote them (RGW has no "bucket owner enforced" object
        // ownership): without this the owner's key could delete but not read what the nightly wrote.
        Sid: 'owner-all',
        Effect: 'Allow',
        Principal: { AWS: [`arn:aws:iam:::user/${ownerUid}`] },
        Action: ['s3:*'],
        Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
      },
      {
        Sid: 'nightly-writes',
        Effect: 'Allow',
        Principal: principal,
        Action: [
          's3:ListBucket',
          's3:ListBucketMultipartUploads',
          's3:GetObject',
          's3:PutObject',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
          's3:GetBucketVersioning',
          's3:GetBucketObjectLockConfiguration',
          's3:GetLifecycleConfiguration',
        ],
        Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
      },
      {
        Sid: 'no-deletes',
        Effect: 'Deny',
        Principal: principal,
        Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
        Resource: [`arn:aws:s3:::${bucket}/*`],
      },
    ],
  });
}

/** Puts `appendOnlyPolicy` on a bucket of the first user. */
export async function applyAppendOnlyPolicy(settings: RgwSettings, bucket: string, uid: string): Promise<void> {
  const client = rgwClient(settings);
  try {
    await client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: appendOnlyPolicy(bucket, uid) }));
  } finally {
    client.destroy();
  }
}

/** Every version and delete marker of a bucket, removed with governance retention bypassed. */
async function removeVersions(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    const all = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
    if (all.length === 0) return;
    for (const v of all) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId, BypassGovernanceRetention: true }));
  }
}
