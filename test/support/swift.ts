import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnvFile } from './env-file.js';
import { createTestBucket, type RgwSettings, type TestBucket } from './rgw.js';

/**
 * The second real S3 server of the test suite: OpenStack Swift with the s3api middleware,
 * started by `scripts/swift.sh start` (which `npm test` runs) and described by the env file it
 * writes. Unlike the RGW settings there is no fallback to AWS_* in the environment: those name
 * the first server.
 */
export const SWIFT_HINT = 'start Swift with `scripts/swift.sh start`, or run `npm test`, which does';

export function swiftEnvFile(): string {
  return join(process.env.SWIFT_DIR || '/tmp/zfs-offsite-swift', 'env');
}

/** Where the Swift s3api test server is and how to log in, or undefined when it is not running. */
export function swiftSettings(): RgwSettings | undefined {
  let vars: Record<string, string>;
  try {
    vars = parseEnvFile(readFileSync(swiftEnvFile(), 'utf8'));
  } catch {
    return undefined;
  }
  const { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = vars;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, accessKeyId, secretAccessKey, region: vars.AWS_REGION || 'us-east-1' };
}

/** A uniquely named bucket on the Swift s3api server. */
export function createSwiftTestBucket(): Promise<TestBucket> {
  const settings = swiftSettings();
  if (!settings) throw new Error(`no Swift s3api test server: ${SWIFT_HINT}`);
  return createTestBucket(settings);
}
