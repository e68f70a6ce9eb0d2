/**
 * `npm run bench`: throughput of `zfs-offsite put` and `restore --output` on generated streams,
 * to/from a local directory and Ceph RGW (when running: `scripts/rgw.sh start`), next to
 * `zstd -T0 -3` / `zstd -d` on the same data in the same run. Prints a markdown table; asserts
 * nothing about speed.
 *   BENCH_GIB=1 (default) sets the stream size.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { describe, it } from 'vitest';
import { Feature } from '../src/stream/records.js';
import { CLI } from '../test/support/cli.js';
import { createTestBucket, rgwSettings } from '../test/support/rgw.js';
import { type ContentRecord, FULL, streamParts } from '../test/support/synthetic-stream.js';

const GiB = 1024 ** 3;
const SIZE = Number(process.env.BENCH_GIB ?? '1') * GiB;
const DIR = '/tmp/zfs-offsite-bench';
const RECORD = 128 * 1024;

/** A valid send stream of `SIZE` bytes of WRITE payload: random (like raw encrypted data) or text-like. */
function generate(kind: 'incompressible' | 'compressible'): string {
  const path = `${DIR}/${kind}-${SIZE / GiB}g.zfs`;
  if (existsSync(path)) return path;
  mkdirSync(DIR, { recursive: true });
  const words = Buffer.from('snapshot dataset pool tank backup offsite zstd chunk manifest guid ');
  const records: ContentRecord[] = [];
  for (let i = 0; i < SIZE / RECORD; i++) {
    let data: Buffer;
    if (kind === 'incompressible') data = randomBytes(RECORD);
    else {
      data = Buffer.alloc(RECORD);
      for (let o = 0; o < RECORD; o += words.length) words.copy(data, o);
      randomBytes(RECORD / 4).copy(data, (i * 7919) % (RECORD - RECORD / 4)); // a quarter noise
    }
    records.push({ kind: 'write', object: 2, offset: i * RECORD, data, compression: 2 });
  }
  const features = Feature.SA_SPILL | Feature.LZ4 | Feature.COMPRESSED | (kind === 'incompressible' ? Feature.RAW : 0);
  const fd = openSync(path, 'w');
  for (const part of streamParts({ substreams: [{ ...FULL, toname: `bench/${kind}@s1`, features, records }] })) writeSync(fd, part);
  closeSync(fd);
  return path;
}

interface Row {
  tool: string;
  data: string;
  target: string;
  seconds: number;
  cpuSeconds: number;
  peakRssMiB: number;
  ratio: string;
}

/** Runs a command under GNU time for wall, CPU and peak RSS. */
function measure(argv: string[], env: NodeJS.ProcessEnv = {}): { seconds: number; cpu: number; rssMiB: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', ...argv], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  const [e, u, s, m] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds: e!, cpu: u! + s!, rssMiB: m! / 1024 };
}

describe('put throughput', () => {
  it(`archives ${SIZE / GiB} GiB streams`, async () => {
    if (!existsSync('/usr/bin/time')) execFileSync('apt-get', ['install', '-y', '-qq', 'time']);
    const rows: Row[] = [];
    const rgw = rgwSettings();
    const bucket = rgw ? await createTestBucket() : undefined;
    const s3env = rgw ? { AWS_ENDPOINT_URL: rgw.endpoint, AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey, AWS_REGION: rgw.region } : {};
    try {
      for (const kind of ['incompressible', 'compressible'] as const) {
        const input = generate(kind);
        const rawBytes = statSync(input).size;
        const local = `${DIR}/archive-${kind}`;
        rmSync(local, { recursive: true, force: true });
        const ours = measure([process.execPath, CLI, 'put', '--to', local, '--input', input, '--no-progress']);
        const stored = Number(execFileSync('du', ['-sb', local]).toString().split('\t')[0]);
        const ratio = (stored / rawBytes).toFixed(3);
        rows.push({ tool: 'zfs-offsite put', data: kind, target: 'local dir', seconds: ours.seconds, cpuSeconds: ours.cpu, peakRssMiB: ours.rssMiB, ratio });
        const restored = `${DIR}/restored.zfs`;
        const back = measure([process.execPath, CLI, 'restore', '--from', local, `bench/${kind}`, '--output', restored, '--no-progress']);
        rows.push({ tool: 'zfs-offsite restore --output', data: kind, target: 'local dir', seconds: back.seconds, cpuSeconds: back.cpu, peakRssMiB: back.rssMiB, ratio });
        if (execFileSync('cmp', [input, restored]).length !== 0) throw new Error('restored stream differs');
        rmSync(local, { recursive: true, force: true });
        const zstdOut = `${DIR}/peer.zst`;
        const peer = measure(['zstd', '-q', '-f', '-T0', '-3', input, '-o', zstdOut]);
        rows.push({ tool: 'zstd -T0 -3 > file', data: kind, target: 'local dir', seconds: peer.seconds, cpuSeconds: peer.cpu, peakRssMiB: peer.rssMiB, ratio: (statSync(zstdOut).size / rawBytes).toFixed(3) });
        const unpack = measure(['zstd', '-q', '-f', '-d', zstdOut, '-o', restored]);
        rows.push({ tool: 'zstd -d file > file', data: kind, target: 'local dir', seconds: unpack.seconds, cpuSeconds: unpack.cpu, peakRssMiB: unpack.rssMiB, ratio: '' });
        rmSync(zstdOut, { force: true });
        if (bucket) {
          const s3 = measure([process.execPath, CLI, 'put', '--to', `s3://${bucket.name}/${kind}`, '--input', input, '--no-progress'], s3env);
          rows.push({ tool: 'zfs-offsite put', data: kind, target: 'Ceph RGW', seconds: s3.seconds, cpuSeconds: s3.cpu, peakRssMiB: s3.rssMiB, ratio: '' });
          const s3back = measure([process.execPath, CLI, 'restore', '--from', `s3://${bucket.name}/${kind}`, `bench/${kind}`, '--output', restored, '--no-progress'], s3env);
          rows.push({ tool: 'zfs-offsite restore --output', data: kind, target: 'Ceph RGW', seconds: s3back.seconds, cpuSeconds: s3back.cpu, peakRssMiB: s3back.rssMiB, ratio: '' });
          if (execFileSync('cmp', [input, restored]).length !== 0) throw new Error('restored stream differs');
        }
        rmSync(restored, { force: true });
      }
    } finally {
      await bucket?.cleanup();
    }
    const lines = [
      `machine: ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / GiB).toFixed(0)} GiB RAM, node ${process.version}; stream ${SIZE / GiB} GiB`,
      '',
      '| tool | data | target | MiB/s | wall s | CPU s | peak RSS MiB | stored/raw |',
      '|---|---|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.tool} | ${r.data} | ${r.target} | ${(SIZE / 1024 ** 2 / r.seconds).toFixed(0)} | ${r.seconds.toFixed(1)} | ${r.cpuSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} | ${r.ratio} |`),
    ];
    console.log(lines.join('\n'));
  });
});
