/**
 * The scale bench (issue 17): how the cost of a command grows with the archive's history.
 * Synthetic archives (bench/support/synthetic-archive.ts) are written straight into the RGW, then
 * `put` of one more incremental, `list`, quick `verify` and `restore --dry-run` (the plan) are
 * timed through the shaping proxy (or over loopback), each with its peak RSS and the connections
 * it opened. Knobs: bench/README.md (BENCH_SCALE_*).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../../test/support/cli.js';
import { BIN_NODE_FLAGS } from './cases.js';
import { measure, type Usage } from './measure.js';
import { machineFacts } from './report.js';
import type { S3Server } from './servers.js';
import { parseRate } from './shaping-proxy.mjs';
import { S3Backend } from '../../src/storage/s3.js';
import { type ArchiveShape, chainStream, writeSyntheticArchive } from './synthetic-archive.js';
import type { ProxyProcess, WanLink } from './wan.js';

const log = (msg: string): void => void process.stderr.write(`bench scale: ${msg}\n`);

export interface ScaleConfig {
  /** Single-dataset chains to measure, by number of streams (1 = the baseline). */
  chains: number[];
  /** Many-dataset archives: [datasets, streams each]. */
  many: [number, number][];
  link: 'wan' | 'loopback';
  wan: WanLink;
  dir: string;
}

const list = (s: string | undefined, fallback: string): string[] =>
  (s || fallback)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function scaleConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ScaleConfig {
  const chains = list(env.BENCH_SCALE_CHAIN, '1,2000').map(Number);
  if (chains.some((n) => !(n >= 1) || !Number.isInteger(n))) throw new Error(`BENCH_SCALE_CHAIN: expected stream counts like 1,2000, got ${env.BENCH_SCALE_CHAIN}`);
  const none = env.BENCH_SCALE_MANY === 'none';
  const many = list(none ? '' : env.BENCH_SCALE_MANY, '20x100').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`BENCH_SCALE_MANY: expected DATASETSxSTREAMS like 20x100, got ${s}`);
    return [Number(m[1]), Number(m[2])] as [number, number];
  });
  const link = env.BENCH_SCALE_LINK ?? 'wan';
  if (link !== 'wan' && link !== 'loopback') throw new Error(`BENCH_SCALE_LINK: expected wan or loopback, got ${link}`);
  return {
    chains,
    many: none ? [] : many,
    link,
    wan: { rttMs: Number(env.BENCH_WAN_RTT_MS ?? '40'), rate: parseRate(env.BENCH_WAN_RATE ?? '20MiB') },
    dir: env.BENCH_DIR ?? '/tmp/zfs-offsite-bench',
  };
}

type Command = 'put' | 'list' | 'verify' | 'restore plan';
interface Row {
  archive: string;
  streams: number;
  buildSeconds: number;
  results: Map<Command, { usage: Usage; connections: number }>;
}

/** Builds every archive of `c`, times the commands on each, and returns the markdown report. */
export async function runScale(c: ScaleConfig, s3: S3Server, proxy: ProxyProcess | undefined): Promise<string> {
  mkdirSync(c.dir, { recursive: true });
  const lockDir = mkdtempSync(join(c.dir, 'scale-locks-'));
  const endpoint = proxy?.endpoint ?? s3.settings.endpoint;
  const env = { ...s3.env, AWS_ENDPOINT_URL: endpoint, ZFS_OFFSITE_LOCK_DIR: lockDir };
  const node = [process.execPath, ...BIN_NODE_FLAGS, CLI];
  const shapes: { name: string; shape: ArchiveShape }[] = [
    ...c.chains.map((n) => ({ name: `1 dataset × ${n}`, shape: { datasets: ['scale/chain'], streams: n } })),
    ...c.many.map(([d, n]) => ({ name: `${d} datasets × ${n}`, shape: { datasets: Array.from({ length: d }, (_, i) => `scale/ds-${String(i).padStart(4, '0')}`), streams: n } })),
  ];
  const rows: Row[] = [];
  try {
    for (const [k, { name, shape }] of shapes.entries()) {
      const prefix = `scale-${k}`;
      const url = `s3://${s3.bucket.name}/${prefix}`;
      const started = performance.now();
      // An archive written by put has a stream index per dataset (src/archive/format/stream-index.ts),
      // its SHA256SUMS stamped: written by the builder as put writes it, counted in the build time.
      const objects = await withBackend(s3, prefix, (backend) => writeSyntheticArchive(s3.client, s3.bucket.name, prefix, shape, 32, backend));
      const row: Row = { archive: name, streams: shape.datasets.length * shape.streams, buildSeconds: (performance.now() - started) / 1000, results: new Map() };
      log(`${name}: wrote ${objects} objects in ${row.buildSeconds.toFixed(0)} s`);
      const dataset = shape.datasets[0]!;
      const run = (cmd: Command, argv: string[], input?: string): void => {
        const before = proxy?.connections() ?? 0;
        const usage = measure({ stages: [[...node, ...argv]], env, ...(input ? { input } : {}) });
        row.results.set(cmd, { usage, connections: (proxy?.connections() ?? 0) - before });
        log(`${name}: ${cmd}: ${usage.wallSeconds.toFixed(2)} s, RSS ${usage.peakRssMiB.toFixed(0)} MiB`);
      };
      try {
        run('list', ['list', url]);
        run('verify', ['verify', url, '--no-progress']);
        run('restore plan', ['restore', '--from', url, dataset, '--dry-run']);
        // Three puts of the next incrementals, the median shown: one put's wall time on a shared
        // 2-core machine varies by seconds.
        const puts: { usage: Usage; connections: number }[] = [];
        for (let k = 0; k < 3; k++) {
          const next = join(c.dir, 'scale-next.zfs');
          writeFileSync(next, chainStream(dataset, 0, shape.streams + k).bytes);
          run('put', ['put', '--to', url, '--no-progress'], next);
          rmSync(next, { force: true });
          puts.push(row.results.get('put')!);
        }
        puts.sort((a, b) => a.usage.wallSeconds - b.usage.wallSeconds);
        row.results.set('put', { ...puts[1]!, usage: { ...puts[1]!.usage, peakRssMiB: Math.max(...puts.map((p) => p.usage.peakRssMiB)) } });
      } finally {
        await s3.clear(`${prefix}/`);
      }
      rows.push(row);
    }
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
  return report(rows, c, s3);
}

function report(rows: Row[], c: ScaleConfig, s3: S3Server): string {
  const commands: Command[] = ['put', 'list', 'verify', 'restore plan'];
  const link = c.link === 'wan' ? `the shaping proxy (${c.wan.rttMs} ms round trip, ${(c.wan.rate / 1024 ** 2).toFixed(1)} MiB/s per connection)` : 'loopback';
  const lines = [
    '# zfs-offsite scale (`npm run bench`, bench/scale.bench.ts)',
    '',
    ...machineFacts({ sizes: [], repeats: 1, rgwStore: s3.store, sftp: false, loadStart: [0, 0, 0], putArgs: [], restoreArgs: [], notes: [] }).filter((l) => !l.startsWith('- streams')),
    `- link: Ceph RGW through ${link}`,
    '',
    `| archive | streams | build s | ${commands.map((x) => `${x} s`).join(' | ')} | ${commands.map((x) => `${x} RSS MiB`).join(' | ')} | ${commands.map((x) => `${x} conns`).join(' | ')} |`,
    `|---|---:|---:|${commands.map(() => '---:').join('|')}|${commands.map(() => '---:').join('|')}|${commands.map(() => '---:').join('|')}|`,
  ];
  const baseline = rows.find((r) => r.streams === 1)?.results.get('put')?.usage.wallSeconds;
  for (const r of rows) {
    const get = (cmd: Command) => r.results.get(cmd);
    const put = get('put')?.usage.wallSeconds;
    if (baseline !== undefined && put !== undefined && r.streams > 1) r.archive += ` (put ${put - baseline >= 0 ? '+' : ''}${(put - baseline).toFixed(2)} s vs 1 stream)`;
    lines.push(
      `| ${r.archive} | ${r.streams} | ${r.buildSeconds.toFixed(0)} | ${commands.map((x) => get(x)?.usage.wallSeconds.toFixed(2) ?? '').join(' | ')} | ` +
        `${commands.map((x) => get(x)?.usage.peakRssMiB.toFixed(0) ?? '').join(' | ')} | ${commands.map((x) => get(x)?.connections ?? '').join(' | ')} |`,
    );
  }
  lines.push(
    '',
    'Notes:',
    "- Archives are written straight into the RGW (not through the proxy): every stream a valid tiny send stream (one 16 MiB-chunk-size chunk, a few KiB), its manifest built with the project's own `buildManifest`.",
    '- put = one more incremental of the first dataset (`cat next.zfs | zfs-offsite put`), three in a row: the median wall time, the highest peak RSS; list = the whole archive; verify = quick verify of the whole archive (listing and manifests; exit 0 = no problem found); restore plan = `restore --dry-run` of the first dataset.',
    '- conns = TCP connections the command opened through the proxy.',
    '- Goals (issue 17): put ≤ 1 s more at 10,000 streams than at 1; list ≤ 60 s and quick verify ≤ 3 min at 100 datasets × 1,000 streams (BENCH_SCALE_CHAIN=1,10000 BENCH_SCALE_MANY=100x1000).',
  );
  return lines.join('\n');
}

/** `use` with a backend on `prefix` of the bench bucket, straight to the server. */
async function withBackend<T>(s3: S3Server, prefix: string, use: (backend: S3Backend) => Promise<T>): Promise<T> {
  const { endpoint, region, accessKeyId, secretAccessKey } = s3.settings;
  const backend = new S3Backend({ bucket: s3.bucket.name, prefix, endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  try {
    return await use(backend);
  } finally {
    await backend.close();
  }
}
