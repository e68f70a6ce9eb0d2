import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parseEnvFile } from './env-file.js';

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

/** Creates a uniquely named bucket on the test server. */
export async function createTestBucket(settings: RgwSettings | undefined = rgwSettings()): Promise<TestBucket> {
  if (!settings) throw new Error(`no S3 test server: ${RGW_HINT}`);
  const name = `zfs-offsite-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const client = rgwClient(settings);
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } catch (err) {
    client.destroy();
    throw err;
  }
  return {
    name,
    settings,
    async cleanup() {
      try {
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
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
}
