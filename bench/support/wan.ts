/**
 * WAN mode of `npm run bench` (issue 17): the RGW cases through bench/support/shaping-proxy.mjs,
 * which gives every TCP connection a round trip (default 40 ms) and a rate cap per direction
 * (default 20 MiB/s): what one connection to a cloud bucket typically gets. Ours with its
 * defaults and with `--parallel 8`, next to `aws s3 cp`, `zstd | rclone rcat` / `rclone cat |
 * zstd -d` and `restic backup --stdin` / `restic dump`, each with ITS defaults. The proxy runs in
 * its own process (measurements run synchronously here) and counts the connections each one opens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../../test/support/cli.js';
import { BIN_NODE_FLAGS, storedFromJson } from './cases.js';
import { assertIdentical, measure, type Pipeline, processCpuSeconds, type Usage } from './measure.js';
import { AWS, RCLONE, ROOT, type S3Server } from './servers.js';
import type { BenchStream } from './streams.js';

const PROXY = join(ROOT, 'bench/support/shaping-proxy.mjs');
export const RESTIC = '/usr/bin/restic';

export type WanCaseId = 'ours-put' | 'ours-restore' | 'ours-put-p8' | 'ours-restore-p8' | 'aws-put' | 'aws-get' | 'rclone-put' | 'rclone-get' | 'restic-put' | 'restic-get';

export interface WanMeasurement {
  id: WanCaseId;
  tool: string;
  op: 'put' | 'restore';
  usage: Usage;
  /** TCP connections the command opened through the proxy. */
  connections: number;
}

export interface WanLink {
  rttMs: number;
  /** Bytes/s per connection and direction. */
  rate: number;
}

export interface ProxyProcess {
  endpoint: string;
  /** Connections accepted so far. */
  connections(): number;
  /** CPU seconds the proxy process has used so far. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

/** Starts the proxy in front of `target` (an http://host:port endpoint) in a child process. */
export async function startProxyProcess(target: string, link: WanLink, dir: string): Promise<ProxyProcess> {
  const url = new URL(target);
  mkdirSync(dir, { recursive: true });
  const statsFile = join(dir, 'proxy-stats.json');
  const pidFile = join(dir, 'proxy.pid');
  const child: ChildProcess = spawn(
    process.execPath,
    [PROXY, '--listen', '127.0.0.1:0', '--to', `${url.hostname}:${url.port || 80}`, '--rtt-ms', String(link.rttMs), '--rate', String(link.rate), '--stats-file', statsFile],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  writeFileSync(pidFile, String(child.pid));
  const address = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening (\S+)\n/.exec(text);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`shaping proxy exited (${code}) before listening`)));
  });
  return {
    endpoint: `http://${address}`,
    connections: () => (JSON.parse(readFileSync(statsFile, 'utf8')) as { connections: number }).connections,
    cpuSeconds: () => processCpuSeconds([pidFile]),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface WanContext {
  stream: BenchStream;
  dir: string;
  s3: S3Server;
  proxy: ProxyProcess;
  rep: number;
  nodeArgs: string[];
}

const ZSTD = ['zstd', '-q', '-T0', '-3', '-c'];
const UNZSTD = ['zstd', '-q', '-d', '-c'];

/** Every WAN measurement of one stream; what each stored is deleted before the next one starts. */
export async function wanCases(c: WanContext): Promise<WanMeasurement[]> {
  const { s3, proxy } = c;
  const bucket = s3.bucket.name;
  const base = `wan-${c.stream.kind}-${c.stream.gib}g-r${c.rep}`;
  const endpoint = proxy.endpoint;
  const env: Pipeline['env'] = { ...s3.env, AWS_ENDPOINT_URL: endpoint };
  const serverCpu = (): number => s3.cpuSeconds() + proxy.cpuSeconds();
  const restored = join(c.dir, 'restored.zfs');
  const rows: WanMeasurement[] = [];
  /** Measures `p`, counting the connections it opened through the proxy. */
  const run = (id: WanCaseId, tool: string, op: 'put' | 'restore', p: Pipeline): Usage => {
    if (op === 'restore') rmSync(restored, { force: true }); // a leftover of an interrupted run
    const before = proxy.connections();
    const usage = measure({ ...p, serverCpu });
    rows.push({ id, tool, op, usage, connections: proxy.connections() - before });
    if (op === 'restore') {
      assertIdentical(c.stream.path, restored, tool);
      rmSync(restored, { force: true });
    }
    return usage;
  };
  const node = [process.execPath, ...BIN_NODE_FLAGS, ...c.nodeArgs, CLI];
  for (const [suffix, extra] of [
    ['', []],
    ['-p8', ['--parallel', '8']],
  ] as const) {
    const location = `s3://${bucket}/${base}/ours${suffix}`;
    const label = suffix ? ' --parallel 8' : '';
    try {
      const put = run(`ours-put${suffix}` as WanCaseId, `zfs-offsite put${label}`, 'put', {
        input: c.stream.path,
        stages: [[...node, 'put', '--to', location, '--no-progress', '--json', ...extra]],
        env,
      });
      storedFromJson(put.stdout);
      run(`ours-restore${suffix}` as WanCaseId, `zfs-offsite restore --output${label}`, 'restore', {
        stages: [[...node, 'restore', '--from', location, c.stream.dataset, '--output', restored, '--no-progress', ...extra]],
        env,
      });
    } finally {
      await s3.clear(`${base}/ours${suffix}/`);
    }
  }

  try {
    const key = `s3://${bucket}/${base}/aws/stream.zfs`;
    const aws = (...args: string[]): string[] => [AWS, 's3', 'cp', '--only-show-errors', '--endpoint-url', endpoint, ...args];
    run('aws-put', 'aws s3 cp -', 'put', { input: c.stream.path, stages: [aws('-', key)], env });
    run('aws-get', 'aws s3 cp - -', 'restore', { stages: [aws(key, '-')], output: restored, env });
  } finally {
    await s3.clear(`${base}/aws/`);
  }

  try {
    const remote = `rgw:${bucket}/${base}/rclone/stream.zst`;
    const rcloneEnv = { ...s3.env, ...s3.rcloneEnv, RCLONE_CONFIG_RGW_ENDPOINT: endpoint };
    run('rclone-put', 'zstd -T0 -3 | rclone rcat', 'put', { input: c.stream.path, stages: [ZSTD, [RCLONE, 'rcat', remote]], env: rcloneEnv });
    run('rclone-get', 'rclone cat | zstd -d', 'restore', { stages: [[RCLONE, 'cat', remote], UNZSTD], output: restored, env: rcloneEnv });
  } finally {
    await s3.clear(`${base}/rclone/`);
  }

  const cache = join(c.dir, 'restic-cache');
  try {
    const resticEnv = {
      ...s3.env,
      AWS_DEFAULT_REGION: s3.settings.region,
      RESTIC_REPOSITORY: `s3:${endpoint}/${bucket}/${base}/restic`,
      RESTIC_PASSWORD: 'zfs-offsite-bench',
      RESTIC_CACHE_DIR: cache,
    };
    measure({ stages: [[RESTIC, 'init', '--quiet']], env: resticEnv });
    run('restic-put', 'restic backup --stdin', 'put', { input: c.stream.path, stages: [[RESTIC, 'backup', '--quiet', '--stdin', '--stdin-filename', 'stream.zfs']], env: resticEnv });
    run('restic-get', 'restic dump', 'restore', { stages: [[RESTIC, 'dump', '--quiet', 'latest', '/stream.zfs']], output: restored, env: resticEnv });
  } finally {
    rmSync(cache, { recursive: true, force: true });
    await s3.clear(`${base}/restic/`);
  }
  return rows;
}
