import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/storage/backend.js';
import { openBackend } from '../../src/storage/open.js';
import { createTestBucket, type RgwSettings, rgwSettings } from './rgw.js';
import { SSHD_HINT, sshdSettings, uniqueSftpDir } from './sshd.js';
import { SWIFT_HINT, swiftSettings } from './swift.js';

export interface TestTarget {
  name: string;
  make(): Promise<{ url: string; env: NodeJS.ProcessEnv; cleanup(): Promise<void> }>;
}

export interface OpenedTarget {
  url: string;
  /** What the CLI needs in its environment to reach the target. */
  env: NodeJS.ProcessEnv;
  /** The same target opened in this process, to read and damage what the CLI wrote. */
  backend: Backend;
  /** Closes the backend and removes the target. */
  cleanup(): Promise<void>;
}

/** Makes a fresh target and opens it here with the CLI's environment (captured at open time). */
export async function openTestTarget(target: TestTarget): Promise<OpenedTarget> {
  const made = await target.make();
  const saved = { ...process.env };
  Object.assign(process.env, made.env);
  let backend: Backend;
  try {
    backend = await openBackend(made.url, {});
  } finally {
    process.env = saved;
  }
  return {
    url: made.url,
    env: made.env,
    backend,
    cleanup: async () => {
      await backend.close();
      await made.cleanup();
    },
  };
}

/**
 * The targets every archive test runs against: a local directory, two real S3 implementations
 * (Ceph RGW and OpenStack Swift with s3api) and the real OpenSSH SFTP server (all started by
 * `npm test`). Without a server its target is reported
 * as skipped, saying why (under CI a missing server is an error).
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
    targets.push(s3Target('S3 (Ceph RGW)', rgw));
  } else if (process.env.CI) {
    throw new Error('CI must test S3: no Ceph RGW is running (scripts/rgw.sh start)');
  } else {
    console.warn('S3 tests skipped: no Ceph RGW running. Start it with `scripts/rgw.sh start`, or run `npm test`, which does.');
  }
  // The second real S3 implementation: OpenStack Swift with s3api, under the CLI's default
  // provider settings (src/storage/s3-quirks.ts), as a user who names no provider runs it.
  const swift = swiftSettings();
  if (swift) {
    targets.push(s3Target('S3 (Swift s3api)', swift));
  } else if (process.env.CI) {
    throw new Error(`CI must test S3 on Swift: it is not running (${SWIFT_HINT})`);
  } else {
    console.warn(`S3 tests on Swift skipped: it is not running; ${SWIFT_HINT}.`);
  }
  const sshd = sshdSettings();
  if (sshd) {
    targets.push({
      name: 'SFTP (OpenSSH storage box)',
      async make() {
        // A fresh directory under the login directory; the CLI finds key and known_hosts in the env.
        const dir = uniqueSftpDir(sshd, 'archive');
        return {
          url: `sftp://${sshd.user}@${sshd.host}:${sshd.port}/${dir.rel}`,
          env: { ZFS_OFFSITE_SFTP_KEY: sshd.key, ZFS_OFFSITE_SFTP_KNOWN_HOSTS: sshd.knownHosts },
          cleanup: dir.cleanup,
        };
      },
    });
  } else if (process.env.CI) {
    throw new Error(`CI must test SFTP: the test SFTP server is not running (${SSHD_HINT})`);
  } else {
    console.warn(`SFTP tests skipped: the test SFTP server is not running; ${SSHD_HINT}.`);
  }
  return targets;
}

/** A fresh bucket on an S3 test server, reached through the standard AWS_* variables. */
function s3Target(name: string, server: RgwSettings): TestTarget {
  return {
    name,
    async make() {
      const bucket = await createTestBucket(server);
      return {
        url: `s3://${bucket.name}/archive`,
        env: {
          AWS_ENDPOINT_URL: server.endpoint,
          AWS_ACCESS_KEY_ID: server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
          AWS_REGION: server.region,
        },
        cleanup: bucket.cleanup,
      };
    },
  };
}
