/**
 * What `npm run bench` measures against: the peer tools (installed from Debian if missing), the
 * S3 server (Ceph RGW: the running test server, or one the bench starts and stops) and the SFTP
 * server (the test sshd, when scripts/sshd.sh exists). rclone gets its remotes from environment
 * variables, so no config file is written.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createTestBucket, rgwClient, type RgwSettings, type TestBucket } from '../../test/support/rgw.js';
import { type SshdSettings, sshdSettings } from '../../test/support/sshd.js';
import { processCpuSeconds } from './measure.js';

export const ROOT = new URL('../../', import.meta.url).pathname;
const RGW_SH = join(ROOT, 'scripts/rgw.sh');
const SSHD_SH = join(ROOT, 'scripts/sshd.sh');

const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);
// The SDK warns on Node 20 that future releases will need Node 22: noise in the report.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Installs rclone, awscli, zstd, GNU time and restic (the WAN peer) from Debian when any is missing. */
export function ensurePeers(): void {
  const need: Record<string, string> = { '/usr/bin/rclone': 'rclone', '/usr/bin/aws': 'awscli', '/usr/bin/zstd': 'zstd', '/usr/bin/time': 'time', '/usr/bin/restic': 'restic' };
  const missing = Object.entries(need)
    .filter(([path]) => !existsSync(path))
    .map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')} (Debian packages)`);
  const apt = ['-q', '-o', 'DPkg::Lock::Timeout=300'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', [...apt, 'update'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', [...apt, 'install', '-y', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env });
}

/** Debian's aws (v2) by absolute path: a pip/pyenv `aws` earlier in PATH may be another major version. */
export const AWS = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
export const RCLONE = existsSync('/usr/bin/rclone') ? '/usr/bin/rclone' : 'rclone';

export interface S3Server {
  settings: RgwSettings;
  bucket: TestBucket;
  client: S3Client;
  /** memstore or bluestore. */
  store: string;
  /** Environment for our CLI, aws and the lib-storage script. */
  env: Record<string, string | undefined>;
  /** Environment defining the rclone remote `rgw:`. */
  rcloneEnv: Record<string, string | undefined>;
  /** CPU seconds used so far by radosgw, the OSD and the monitor (they share the machine's cores). */
  cpuSeconds(): number;
  /** Deletes every object under the prefix (between measurements, to keep the server's RAM/disk low). */
  clear(prefix: string): Promise<void>;
  close(): Promise<void>;
}

/** Size of the private bluestore instance's block file for streams of up to `maxGiB`. */
export const bluestoreGiB = (maxGiB: number): number => Math.ceil(2 * maxGiB) + 4;

function rgw(args: string[], env: NodeJS.ProcessEnv): boolean {
  return spawnSync('bash', [RGW_SH, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] }).status === 0;
}

function envFile(dir: string): RgwSettings {
  const vars: Record<string, string> = {};
  for (const m of readFileSync(join(dir, 'env'), 'utf8').matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]!] = m[2]!;
  return { endpoint: vars.AWS_ENDPOINT_URL!, accessKeyId: vars.AWS_ACCESS_KEY_ID!, secretAccessKey: vars.AWS_SECRET_ACCESS_KEY!, region: vars.AWS_REGION || 'us-east-1' };
}

/**
 * `memstore`: the test server of `npm test` (RGW_DIR, default /tmp/zfs-offsite-rgw), used as it
 * is when running, else started here and stopped at the end. `bluestore`: a private instance
 * (objects on disk, for streams of several GiB that memstore would hold in RAM), started here
 * and stopped at the end.
 */
export async function openS3(store: 'memstore' | 'bluestore', maxGiB: number): Promise<S3Server> {
  // The bluestore block file is sparse but never shrinks: deleted objects leave their blocks
  // allocated in it. Sized at 2× the largest stream + 4 GiB (and garbage collected after every
  // measurement, see clear()), bluestore must reuse freed space instead of eating the disk.
  const own =
    store === 'bluestore'
      ? {
          RGW_DIR: process.env.BENCH_RGW_DIR ?? '/tmp/zfs-offsite-bench-rgw',
          RGW_PORT: process.env.BENCH_RGW_PORT ?? '7490',
          RGW_STORE: 'bluestore',
          RGW_BLUESTORE_GIB: String(bluestoreGiB(maxGiB)),
        }
      : { RGW_DIR: process.env.RGW_DIR ?? '/tmp/zfs-offsite-rgw' };
  let started = false;
  if (!rgw(['status'], own)) {
    log(`starting Ceph RGW (${store}) in ${own.RGW_DIR}`);
    if (!rgw(['start'], own)) throw new Error('scripts/rgw.sh start failed');
    started = true;
  }
  const conf = readFileSync(join(own.RGW_DIR, 'ceph.conf'), 'utf8');
  const actualStore = /osd objectstore = (\w+)/.exec(conf)?.[1] ?? 'unknown';
  const settings = envFile(own.RGW_DIR);
  const bucket = await createTestBucket(settings);
  const client = rgwClient(settings);
  return {
    settings,
    bucket,
    client,
    store: actualStore,
    env: {
      AWS_ENDPOINT_URL: settings.endpoint,
      AWS_ACCESS_KEY_ID: settings.accessKeyId,
      AWS_SECRET_ACCESS_KEY: settings.secretAccessKey,
      AWS_REGION: settings.region,
      AWS_PROFILE: undefined,
      AWS_CA_BUNDLE: undefined,
      AWS_PAGER: '',
    },
    rcloneEnv: {
      RCLONE_CONFIG_RGW_TYPE: 's3',
      RCLONE_CONFIG_RGW_PROVIDER: 'Ceph',
      RCLONE_CONFIG_RGW_ENDPOINT: settings.endpoint,
      RCLONE_CONFIG_RGW_ACCESS_KEY_ID: settings.accessKeyId,
      RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY: settings.secretAccessKey,
      RCLONE_CONFIG_RGW_REGION: settings.region,
      RCLONE_CONFIG_RGW_FORCE_PATH_STYLE: 'true',
      RCLONE_CONFIG_RGW_NO_CHECK_BUCKET: 'true',
      RCLONE_CONFIG: '/dev/null',
      AWS_CA_BUNDLE: undefined,
    },
    cpuSeconds: () => processCpuSeconds(['client.rgw', 'osd.0', 'mon.a'].map((n) => join(own.RGW_DIR, 'run', `${n}.pid`))),
    async clear(prefix: string) {
      for (;;) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: prefix }));
        const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
        if (keys.length === 0) return;
        await client.send(new DeleteObjectsCommand({ Bucket: bucket.name, Delete: { Objects: keys, Quiet: true } }));
        // Free the deleted objects' space now, not after RGW's GC delay (the next upload needs it).
        if (actualStore === 'bluestore') spawnSync('radosgw-admin', ['-c', join(own.RGW_DIR, 'ceph.conf'), 'gc', 'process', '--include-all'], { stdio: 'ignore' });
      }
    },
    async close() {
      try {
        await bucket.cleanup();
      } finally {
        client.destroy();
        if (started) {
          log(`stopping the Ceph RGW started for the bench (${own.RGW_DIR})`);
          rgw(['stop'], own);
        }
      }
    },
  };
}

export interface SftpServer {
  settings: SshdSettings;
  /** Our CLI's target URL for `dir` (relative to the login directory). */
  url(dir: string): string;
  /** Extra CLI arguments (key, known_hosts). */
  args: string[];
  /** Environment defining the rclone remote `box:`. */
  rcloneEnv: Record<string, string | undefined>;
  /** Removes `dir` (relative to the login directory) on this host. */
  clear(dir: string): void;
  close(): void;
}

/** The test SFTP server when scripts/sshd.sh exists (started here if it is not running). */
export function openSftp(): SftpServer | undefined {
  if (!existsSync(SSHD_SH)) return undefined;
  let settings = sshdSettings();
  let started = false;
  if (!settings) {
    log('starting the test SFTP server (scripts/sshd.sh start)');
    if (spawnSync('bash', [SSHD_SH, 'start'], { stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) {
      log('scripts/sshd.sh start failed: SFTP is left out');
      return undefined;
    }
    started = true;
    settings = sshdSettings();
    if (!settings) return undefined;
  }
  const s = settings;
  return {
    settings: s,
    url: (dir) => `sftp://${s.user}@${s.host}:${s.port}/${dir}`,
    args: ['--sftp-key', s.key, '--sftp-known-hosts', s.knownHosts],
    rcloneEnv: {
      RCLONE_CONFIG_BOX_TYPE: 'sftp',
      RCLONE_CONFIG_BOX_HOST: s.host,
      RCLONE_CONFIG_BOX_PORT: String(s.port),
      RCLONE_CONFIG_BOX_USER: s.user,
      RCLONE_CONFIG_BOX_KEY_FILE: s.key,
      RCLONE_CONFIG_BOX_KNOWN_HOSTS_FILE: s.knownHosts,
      // An SFTP-only account (storage box): no shell for hashing or `df`.
      RCLONE_CONFIG_BOX_SHELL_TYPE: 'none',
      RCLONE_CONFIG_BOX_DISABLE_HASHCHECK: 'true',
      RCLONE_CONFIG: '/dev/null',
    },
    clear: (dir) => rmSync(join(s.chroot, 'home', dir), { recursive: true, force: true }),
    close: () => {
      if (started) spawnSync('bash', [SSHD_SH, 'stop'], { stdio: 'ignore' });
    },
  };
}
