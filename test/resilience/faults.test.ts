/**
 * Faults between the CLI and its storage or its zfs: connections reset or stalled on the way to
 * Ceph RGW, a full or read-only local target, zfs send killed mid-stream. Each either completes
 * correctly or fails with a clear error and nothing committed — and never leaks a secret.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/util/random.js';
import { listFiles } from '../support/archive-files.js';
import { CLI, runCli } from '../support/cli.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';
import { createTestBucket, rgwSettings, type TestBucket } from '../support/rgw.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';

const STREAM = Buffer.from(
  buildStream({
    substreams: [
      {
        ...FULL,
        toname: 'faults/ds@s1',
        features: RAW_FEATURES,
        records: Array.from({ length: 160 }, (_, i): ContentRecord => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 })),
      },
    ],
  }).bytes,
);
const rgw = rgwSettings();

describe.skipIf(!rgw)('S3 through a proxy that resets and stalls connections', () => {
  let bucket: TestBucket;
  beforeAll(async () => {
    bucket = await createTestBucket();
  });
  afterAll(async () => bucket?.cleanup());

  it('archives and restores completely and intact', async () => {
    const port = Number(new URL(rgw!.endpoint).port);
    const proxy = await startFaultProxy({ targetPort: port, pattern: ['reset', 'none', 'stall', 'none', 'none'], maxBytesBeforeFault: 1024 * 1024, random: seededRandom(4242), lifetimeMs: 240_000 });
    const viaProxy = { AWS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`, AWS_ACCESS_KEY_ID: rgw!.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw!.secretAccessKey, AWS_REGION: rgw!.region };
    const direct = { ...viaProxy, AWS_ENDPOINT_URL: rgw!.endpoint };
    const url = `s3://${bucket.name}/faults`;
    try {
      const put = await runCli(['put', '--to', url, '--chunk-size', '1M', '--parallel', '3', '--s3-timeout', '2s', '--log-level', 'warn'], { input: STREAM, env: viaProxy });
      expect(put.stderr).not.toContain(rgw!.secretAccessKey);
      expect(put.code).toBe(0);
      const back = await runCli(['restore', '--from', url, 'faults/ds', '--output', '-', '--s3-timeout', '2s'], { env: viaProxy });
      expect(back.code).toBe(0);
      expect(back.stdoutBytes.equals(STREAM)).toBe(true);
      console.log(`fault proxy: ${JSON.stringify(proxy.stats)}`);
      // The faults really happened, and what they left behind is clean.
      expect(proxy.stats.resets).toBeGreaterThan(0);
      expect(proxy.stats.stalls).toBeGreaterThan(0);
      const verify = await runCli(['verify', url, '--deep'], { env: direct });
      expect(verify.stdout).toMatch(/clean/);
      expect(verify.code).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

/** A tmpfs of the given size (root only), or undefined when mounting is not possible here. */
function tmpfs(options: string): { path: string; cleanup(): void } | undefined {
  const path = mkdtempSync(join(tmpdir(), 'zfs-offsite-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', path], { stdio: 'ignore' });
  } catch {
    rmSync(path, { recursive: true, force: true });
    return undefined;
  }
  return { path, cleanup: () => (execFileSync('umount', [path]), rmSync(path, { recursive: true, force: true })) };
}

describe('local target faults', () => {
  it('a full disk: clear error, exit 1, nothing committed', async () => {
    const fs = tmpfs('size=2m');
    if (!fs) return void console.warn('skipped: cannot mount a tmpfs here (needs root): run the suite as root, as CI does');
    try {
      const r = await runCli(['put', '--to', fs.path, '--chunk-size', '1M'], { input: STREAM });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^zfs-offsite: error: .*(no space|full)/i);
      expect(listFiles(fs.path).filter((f) => f.endsWith('manifest.json'))).toEqual([]);
    } finally {
      fs.cleanup();
    }
  });

  it('a read-only target: clear error, exit 1, nothing written', async () => {
    const fs = tmpfs('size=8m,ro');
    if (!fs) return void console.warn('skipped: cannot mount a tmpfs here (needs root): run the suite as root, as CI does');
    try {
      const r = await runCli(['put', '--to', join(fs.path, 'archive')], { input: fixtureBytes('zse-tiny-full.zfs') });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^zfs-offsite: error: .*(read-only|permission)/i);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      fs.cleanup();
    }
  });
});

describe('zfs send killed mid-stream', () => {
  it('fails with the signal named, exit 1, nothing committed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-killed-'));
    try {
      const guid = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
      const state = {
        log: join(dir, 'zfs.log'),
        datasets: { 'labpool/zfs-send-tiny': { encryption: 'off', snapshots: [{ name: 'base', guid, createtxg: 1, creation: 1 }] } },
        streams: { [`0:${guid}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') },
        send: { killAfterBytes: 30_000 },
      };
      writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
      mkdirSync(join(dir, 'archive'));
      const standIn = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
      const r = await runCli(['send', 'labpool/zfs-send-tiny@base', '--to', join(dir, 'archive')], {
        env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${standIn}`, ZFS_STAND_IN_STATE: join(dir, 'state.json') },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^zfs-offsite: error: zfs send -L -c labpool\/zfs-send-tiny@base was killed by SIGKILL: .*nothing was committed\n$/);
      expect(listFiles(join(dir, 'archive')).filter((f) => f.endsWith('manifest.json'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!rgw)('secrets in failures', () => {
  it('never appear in logs or errors, even at debug level', async () => {
    const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
    const outputs: string[] = [];
    const cases: [string[], NodeJS.ProcessEnv][] = [
      [['put', '--to', 's3://no-such-bucket-zo/x'], { AWS_SECRET_ACCESS_KEY: secret }], // wrong secret
      [['put', '--to', 's3://no-such-bucket-zo/x'], { AWS_SECRET_ACCESS_KEY: secret, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }], // unreachable
      [['list', 's3://no-such-bucket-zo'], { AWS_SECRET_ACCESS_KEY: secret, AWS_ACCESS_KEY_ID: 'unknown-key' }],
      [['restore', '--from', 's3://no-such-bucket-zo', 'x', '--output', '-'], { AWS_SECRET_ACCESS_KEY: secret }],
    ];
    for (const [args, env] of cases) {
      const r = await runCli(['--log-level', 'debug', ...args, '--s3-timeout', '2s'], {
        input: fixtureBytes('zse-tiny-full.zfs'),
        env: { AWS_ENDPOINT_URL: rgw!.endpoint, AWS_ACCESS_KEY_ID: rgw!.accessKeyId, AWS_REGION: rgw!.region, ...env },
      });
      expect(r.code).not.toBe(0);
      outputs.push(r.stdout, r.stderr);
    }
    const all = outputs.join('\n');
    expect(all).toMatch(/secret access key is wrong|access key ID is unknown|cannot/); // the failures did happen
    expect(all).not.toContain(secret);
  });
});

describe('SFTP server stopped mid-upload', () => {
  const dir = '/tmp/zfs-offsite-sshd-stopped';
  const env = { SFTP_DIR: dir, SFTP_PORT: '2297' };
  const script = fileURLToPath(new URL('../../scripts/sshd.sh', import.meta.url));
  let up = false;
  beforeAll(() => {
    try {
      execFileSync('bash', [script, 'start'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      up = true;
    } catch {
      up = false;
    }
  });
  afterAll(() => {
    if (up) execFileSync('bash', [script, 'stop'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  });

  it('fails with a clear error, exit 1, nothing committed, and the password never shown', async () => {
    if (!up) {
      if (process.env.CI) throw new Error('CI must test SFTP: scripts/sshd.sh could not start a second server');
      return void console.warn('skipped: scripts/sshd.sh cannot start an SFTP server here (needs root and openssh-server)');
    }
    const vars = Object.fromEntries(
      readFileSync(join(dir, 'env'), 'utf8')
        .split('\n')
        .flatMap((l) => {
          const m = /^(?:export\s+)?(\w+)=(.*)$/.exec(l.trim());
          return m ? [[m[1]!, m[2]!.replace(/^(['"])(.*)\1$/, '$2')]] : [];
        }),
    ) as Record<string, string>;
    const chroot = vars.SFTP_TEST_CHROOT!;
    const child = spawn(
      process.execPath,
      [CLI, 'put', '--to', vars.SFTP_TEST_URL!, '--sftp-known-hosts', vars.SFTP_TEST_KNOWN_HOSTS!, '--chunk-size', '1M', '--retries', '3', '--retry-time', '5s', '--log-level', 'debug'],
      {
        env: { ...process.env, ZFS_OFFSITE_SFTP_PASSWORD: vars.SFTP_TEST_PASSWORD!, ZFS_OFFSITE_SFTP_KEY: '', SSH_AUTH_SOCK: '' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.on('error', () => undefined);
    child.stdin.write(STREAM.subarray(0, 8 * 1024 * 1024)); // the rest comes after the server is gone
    const journal = () => listFiles(join(chroot, 'home')).some((f) => f.endsWith('journal.json'));
    for (let i = 0; i < 600 && !journal(); i++) await sleep(50);
    expect(journal()).toBe(true);
    // The listener first (no new connections), then every process still holding a connection on
    // the port — sessions can be accepted while we look, so until none is left.
    const listener = readFileSync(join(dir, 'sshd.pid'), 'utf8').trim();
    execFileSync('kill', ['-KILL', listener]);
    for (let i = 0; i < 50; i++) {
      const holders =
        execFileSync('ss', ['-tnpH', 'sport', '=', ':2297'])
          .toString()
          .match(/pid=(\d+)/g)
          ?.map((m) => m.slice(4)) ?? [];
      if (holders.length === 0) break;
      execFileSync('kill', ['-KILL', ...new Set(holders)]);
      await sleep(50);
    }
    const after = execFileSync('ss', ['-tnH', 'sport', '=', ':2297']).toString();
    child.stdin.end(STREAM.subarray(8 * 1024 * 1024));
    const code = await closed;
    const output = Buffer.concat(out).toString();
    if (code !== 1) console.log(`put after the server was killed (sockets then: ${after}):\n${output}`);
    expect(code).toBe(1);
    expect(output).toMatch(/zfs-offsite: error: .*(ECONNREFUSED|connect|connection)/i);
    expect(output).not.toContain(vars.SFTP_TEST_PASSWORD!);
    expect(listFiles(join(chroot, 'home')).filter((f) => f.endsWith('manifest.json'))).toEqual([]);
  });
});
