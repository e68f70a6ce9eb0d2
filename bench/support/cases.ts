/**
 * The measurements of one stream on one target: our `put` and `restore --output`, then the peer
 * pipelines on the same bytes and the same server. Every restore is compared byte for byte with
 * the input; what a measurement stored is deleted before the next one starts.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../../test/support/cli.js';
import { assertIdentical, measure, type Pipeline, type Usage } from './measure.js';
import { AWS, RCLONE, ROOT, type S3Server, type SftpServer } from './servers.js';
import type { BenchStream } from './streams.js';

export type Target = 'local' | 'rgw' | 'sftp';
export const TARGET_NAMES: Record<Target, string> = { local: 'local dir', rgw: 'Ceph RGW', sftp: 'SFTP' };

/** Stable ids: report.ts pairs them into ratios. */
export type CaseId = 'ours-put' | 'ours-restore' | 'zstd-file' | 'zstd-d-file' | 'zstd-rclone' | 'rclone-zstd-d' | 'zstd-aws' | 'aws-zstd-d' | 'aws-raw' | 'lib-storage';

export interface Measurement {
  id: CaseId;
  tool: string;
  op: 'put' | 'restore';
  target: Target;
  usage: Usage;
  /** Stored bytes (put only). */
  stored?: number;
}

export interface CaseContext {
  stream: BenchStream;
  /** Scratch directory for archives, compressed files and restored streams. */
  dir: string;
  s3?: S3Server;
  sftp?: SftpServer;
  /** Extra arguments for our CLI (BENCH_PUT_ARGS, BENCH_RESTORE_ARGS) and for node (BENCH_NODE_ARGS). */
  putArgs: string[];
  restoreArgs: string[];
  nodeArgs: string[];
  rep: number;
}

const LIB_STORAGE = join(ROOT, 'bench/support/lib-storage-ingest.mjs');
const ZSTD = ['zstd', '-q', '-T0', '-3', '-c'];
const UNZSTD = ['zstd', '-q', '-d', '-c'];

export function storedFromJson(stdout: string): number {
  const result = JSON.parse(stdout) as { manifest?: { storedBytes?: number } };
  const n = result.manifest?.storedBytes;
  if (typeof n !== 'number') throw new Error(`put --json printed no manifest.storedBytes: ${stdout.slice(0, 500)}`);
  return n;
}

/** The node flags of the CLI's `#!/usr/bin/env -S node …` line: measured as its bin runs. */
export const BIN_NODE_FLAGS = (/^#!.*\bnode\s+(.*)$/m.exec(readFileSync(CLI, 'utf8').split('\n', 1)[0]!)?.[1] ?? '').split(/\s+/).filter(Boolean);

/** Our put then restore to/from `target`, and the restore checked against the input. */
function ours(c: CaseContext, target: Target, location: string, extra: Pipeline['env'], extraArgs: string[] = [], serverCpu?: () => number): Measurement[] {
  const node = [process.execPath, ...BIN_NODE_FLAGS, ...c.nodeArgs, CLI];
  const put = measure({
    input: c.stream.path,
    stages: [[...node, 'put', '--to', location, '--no-progress', '--json', ...extraArgs, ...c.putArgs]],
    env: extra,
    serverCpu,
  });
  const restored = join(c.dir, 'restored.zfs');
  const back = measure({
    stages: [[...node, 'restore', '--from', location, c.stream.dataset, '--output', restored, '--no-progress', ...extraArgs, ...c.restoreArgs]],
    env: extra,
    serverCpu,
  });
  assertIdentical(c.stream.path, restored, `zfs-offsite restore from ${TARGET_NAMES[target]}`);
  rmSync(restored, { force: true });
  return [
    { id: 'ours-put', tool: 'zfs-offsite put', op: 'put', target, usage: put, stored: storedFromJson(put.stdout) },
    { id: 'ours-restore', tool: 'zfs-offsite restore --output', op: 'restore', target, usage: back },
  ];
}

/** A peer's compressed object fetched back with `fetch` | zstd -d, checked against the input. */
function peerRestore(c: CaseContext, id: CaseId, tool: string, target: Target, fetch: string[], env: Pipeline['env'], serverCpu?: () => number): Measurement {
  const restored = join(c.dir, 'restored.zfs');
  const usage = measure({ stages: [fetch, UNZSTD], output: restored, env, serverCpu });
  assertIdentical(c.stream.path, restored, tool);
  rmSync(restored, { force: true });
  return { id, tool, op: 'restore', target, usage };
}

export function localCases(c: CaseContext): Measurement[] {
  const archive = join(c.dir, 'archive');
  rmSync(archive, { recursive: true, force: true });
  const rows = ours(c, 'local', archive, {});
  rmSync(archive, { recursive: true, force: true });
  const zst = join(c.dir, 'peer.zst');
  const usage = measure({ input: c.stream.path, stages: [ZSTD], output: zst });
  rows.push({ id: 'zstd-file', tool: 'zstd -T0 -3 > file', op: 'put', target: 'local', usage, stored: statSync(zst).size });
  const restored = join(c.dir, 'restored.zfs');
  const back = measure({ input: zst, stages: [UNZSTD], output: restored });
  assertIdentical(c.stream.path, restored, 'zstd -d');
  rows.push({ id: 'zstd-d-file', tool: 'zstd -d file > file', op: 'restore', target: 'local', usage: back });
  rmSync(zst, { force: true });
  rmSync(restored, { force: true });
  return rows;
}

export async function rgwCases(c: CaseContext): Promise<Measurement[]> {
  const s3 = c.s3!;
  const bucket = s3.bucket.name;
  const base = `${c.stream.kind}-${c.stream.gib}g-r${c.rep}`;
  const rows: Measurement[] = [];
  const serverCpu = (): number => s3.cpuSeconds();
  const step = async <T>(prefix: string, fn: () => T): Promise<T> => {
    try {
      return fn();
    } finally {
      await s3.clear(prefix);
    }
  };
  rows.push(...(await step(`${base}/ours/`, () => ours(c, 'rgw', `s3://${bucket}/${base}/ours`, s3.env, [], serverCpu))));

  const peerKey = `${base}/peer/stream.zst`;
  const rcloneEnv = { ...s3.env, ...s3.rcloneEnv };
  await step(`${base}/peer/`, () => {
    const put = measure({ input: c.stream.path, stages: [ZSTD, [RCLONE, 'rcat', `rgw:${bucket}/${peerKey}`]], env: rcloneEnv, serverCpu });
    const stored = Number(JSON.parse(measure({ stages: [[RCLONE, 'lsjson', '--stat', `rgw:${bucket}/${peerKey}`]], env: rcloneEnv }).stdout).Size);
    rows.push({ id: 'zstd-rclone', tool: 'zstd -T0 -3 | rclone rcat', op: 'put', target: 'rgw', usage: put, stored });
    rows.push(peerRestore(c, 'rclone-zstd-d', 'rclone cat | zstd -d', 'rgw', [RCLONE, 'cat', `rgw:${bucket}/${peerKey}`], rcloneEnv, serverCpu));
  });

  const aws = (...args: string[]): string[] => [AWS, 's3', 'cp', '--only-show-errors', '--endpoint-url', s3.settings.endpoint, ...args];
  await step(`${base}/aws/`, () => {
    const key = `s3://${bucket}/${base}/aws/stream.zst`;
    const put = measure({ input: c.stream.path, stages: [ZSTD, aws('-', key)], env: s3.env, serverCpu });
    rows.push({ id: 'zstd-aws', tool: 'zstd -T0 -3 | aws s3 cp -', op: 'put', target: 'rgw', usage: put });
    rows.push(peerRestore(c, 'aws-zstd-d', 'aws s3 cp - | zstd -d', 'rgw', aws(key, '-'), s3.env, serverCpu));
  });
  await step(`${base}/aws-raw/`, () => {
    const put = measure({ input: c.stream.path, stages: [aws('-', `s3://${bucket}/${base}/aws-raw/stream.zfs`)], env: s3.env, serverCpu });
    rows.push({ id: 'aws-raw', tool: 'aws s3 cp - (uncompressed)', op: 'put', target: 'rgw', usage: put, stored: c.stream.bytes });
  });
  await step(`${base}/lib-storage/`, () => {
    const put = measure({ input: c.stream.path, stages: [[process.execPath, LIB_STORAGE, bucket, `${base}/lib-storage/stream.zfs`, '16', '4']], env: s3.env, serverCpu });
    rows.push({ id: 'lib-storage', tool: 'lib-storage Upload (16 MiB × 4, uncompressed)', op: 'put', target: 'rgw', usage: put, stored: c.stream.bytes });
  });
  return rows;
}

export function sftpCases(c: CaseContext): Measurement[] {
  const sftp = c.sftp!;
  const dir = `bench-${process.pid}-${c.stream.kind}-${c.rep}`;
  const rows: Measurement[] = [];
  try {
    rows.push(...ours(c, 'sftp', sftp.url(`${dir}/ours`), {}, sftp.args));
    sftp.clear(`${dir}/ours`);
    const env = sftp.rcloneEnv;
    const put = measure({ input: c.stream.path, stages: [ZSTD, [RCLONE, 'rcat', `box:${dir}/peer/stream.zst`]], env });
    const stored = statSync(join(sftp.settings.chroot, 'home', dir, 'peer/stream.zst')).size;
    rows.push({ id: 'zstd-rclone', tool: 'zstd -T0 -3 | rclone rcat', op: 'put', target: 'sftp', usage: put, stored });
    rows.push(peerRestore(c, 'rclone-zstd-d', 'rclone cat | zstd -d', 'sftp', [RCLONE, 'cat', `box:${dir}/peer/stream.zst`], env));
  } finally {
    sftp.clear(dir);
  }
  return rows;
}
