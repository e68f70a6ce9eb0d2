import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestBucket, rgwSettings } from './rgw.js';

export interface TestTarget {
  name: string;
  make(): Promise<{ url: string; env: NodeJS.ProcessEnv; cleanup(): Promise<void> }>;
}

/**
 * The targets every archive test runs against: a local directory and the real Ceph RGW
 * (started by `npm test`). Without RGW the S3 target is reported as skipped, saying why.
 */
export function testTargets(): TestTarget[] {
  const targets: TestTarget[] = [
    {
      name: 'local directory',
      async make() {
        const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-test-'));
        return { url: `file://${dir}`, env: {}, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
      },
    },
  ];
  const rgw = rgwSettings();
  if (rgw) {
    targets.push({
      name: 'S3 (Ceph RGW)',
      async make() {
        const bucket = await createTestBucket();
        return {
          url: `s3://${bucket.name}/archive`,
          env: {
            AWS_ENDPOINT_URL: rgw.endpoint,
            AWS_ACCESS_KEY_ID: rgw.accessKeyId,
            AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
            AWS_REGION: rgw.region,
          },
          cleanup: bucket.cleanup,
        };
      },
    });
  } else if (process.env.CI) {
    throw new Error('CI must test S3: no Ceph RGW is running (scripts/rgw.sh start)');
  } else {
    console.warn('S3 tests skipped: no Ceph RGW running. Start it with `scripts/rgw.sh start`, or run `npm test`, which does.');
  }
  return targets;
}
