/**
 * Orchestrates `npm run bench` (see bench/README.md for the knobs): for every size and data kind,
 * a stream is generated once, then every repetition measures the local directory, RGW and SFTP
 * cases back to back, so load on a shared machine hits ours and the peers alike.
 */
import { mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type CaseContext, localCases, type Measurement, rgwCases, sftpCases, type Target } from './cases.js';
import { type RunFacts, type Sample, table } from './report.js';
import { bluestoreGiB, ensurePeers, openS3, openSftp, type S3Server, type SftpServer } from './servers.js';
import { benchStream, DATA_KINDS, type DataKind } from './streams.js';
import { parseRate } from './shaping-proxy.mjs';
import { type ProxyProcess, startProxyProcess, type WanLink, wanCases } from './wan.js';
import { type WanSample, wanTable } from './wan-report.js';

const GiB = 1024 ** 3;
const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

export interface BenchConfig {
  sizes: number[];
  kinds: DataKind[];
  targets: Target[];
  repeats: number;
  dir: string;
  rgwStore: 'memstore' | 'bluestore';
  keepStreams: boolean;
  putArgs: string[];
  restoreArgs: string[];
  nodeArgs: string[];
  /** Links the RGW cases run over: loopback (direct) and/or wan (through the shaping proxy). */
  links: ('loopback' | 'wan')[];
  wan: WanLink;
}

const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter(Boolean);
const list = (s: string | undefined, fallback: string): string[] =>
  (s || fallback)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const sizes = list(env.BENCH_SIZES, '1').map(Number);
  if (sizes.some((g) => !(g > 0))) throw new Error(`BENCH_SIZES: expected GiB numbers like 1,8, got ${env.BENCH_SIZES}`);
  const kinds = list(env.BENCH_KINDS, DATA_KINDS.join(',')) as DataKind[];
  if (kinds.some((k) => !DATA_KINDS.includes(k))) throw new Error(`BENCH_KINDS: expected ${DATA_KINDS.join(',')}`);
  const targets = list(env.BENCH_TARGETS, 'local,rgw,sftp') as Target[];
  const store = env.BENCH_RGW_STORE ?? 'auto';
  // memstore keeps objects in RAM (~1.5× the data, freed only after RGW's GC): fine for 1-2 GiB.
  const rgwStore = store === 'auto' ? (Math.max(...sizes) > 2 ? 'bluestore' : 'memstore') : (store as 'memstore' | 'bluestore');
  return {
    sizes,
    kinds,
    targets,
    repeats: Math.max(1, Number(env.BENCH_REPEATS ?? '1') | 0),
    dir: env.BENCH_DIR ?? '/tmp/zfs-offsite-bench',
    rgwStore,
    keepStreams: env.BENCH_KEEP_STREAMS === '1',
    putArgs: words(env.BENCH_PUT_ARGS),
    restoreArgs: words(env.BENCH_RESTORE_ARGS),
    nodeArgs: words(env.BENCH_NODE_ARGS),
    links: linksFromEnv(env),
    wan: { rttMs: Number(env.BENCH_WAN_RTT_MS ?? '40'), rate: parseRate(env.BENCH_WAN_RATE ?? '20MiB') },
  };
}

/** BENCH_LINKS=loopback,wan (default loopback); BENCH_WAN=1 adds wan. */
function linksFromEnv(env: NodeJS.ProcessEnv): ('loopback' | 'wan')[] {
  const links = list(env.BENCH_LINKS, 'loopback');
  if (env.BENCH_WAN === '1' && !links.includes('wan')) links.push('wan');
  if (links.some((l) => l !== 'loopback' && l !== 'wan')) throw new Error(`BENCH_LINKS: expected loopback,wan, got ${env.BENCH_LINKS}`);
  return links as ('loopback' | 'wan')[];
}

/** Wall-clock budget for the vitest test: generous, the bench asserts nothing about speed. */
export function timeoutMs(c: BenchConfig): number {
  return (c.links.includes('wan') ? 40 : 20) * 60_000 * c.sizes.reduce((a, b) => a + b, 0) * c.kinds.length * c.repeats + 15 * 60_000;
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export interface BenchResult {
  markdown: string;
  path: string;
  samples: Sample[];
}

export async function runBench(c: BenchConfig): Promise<BenchResult> {
  ensurePeers();
  mkdirSync(c.dir, { recursive: true });
  const facts: RunFacts = { sizes: c.sizes, repeats: c.repeats, sftp: false, loadStart: loadavg(), putArgs: c.putArgs, restoreArgs: c.restoreArgs, notes: [] };
  let s3: S3Server | undefined;
  let sftp: SftpServer | undefined;
  let proxy: ProxyProcess | undefined;
  const samples: Sample[] = [];
  const wanSamples: WanSample[] = [];
  try {
    if (c.targets.includes('rgw')) {
      const block = c.rgwStore === 'bluestore' ? bluestoreGiB(Math.max(...c.sizes)) * GiB : 0;
      const total = block + Math.max(...c.sizes) * GiB * 3.2;
      if (freeBytes(c.dir) < total)
        throw new Error(
          `${(freeBytes(c.dir) / GiB).toFixed(0)} GiB free in ${c.dir}; the run needs ~${(total / GiB).toFixed(0)} GiB (bluestore RGW ${block / GiB} GiB + streams): free some or lower BENCH_SIZES`,
        );
      s3 = await openS3(c.rgwStore, Math.max(...c.sizes));
      facts.rgwStore = s3.store;
      if (c.links.includes('wan')) proxy = await startProxyProcess(s3.settings.endpoint, c.wan, c.dir);
    }
    if (c.targets.includes('sftp')) {
      sftp = openSftp();
      facts.sftp = sftp !== undefined;
      if (!sftp) facts.notes.push('SFTP not measured: scripts/sshd.sh is missing or its server did not start.');
    }
    for (const gib of c.sizes) {
      for (const kind of c.kinds) {
        // The stream, then an archive (or .zst) and a restored copy of it at once; the bluestore
        // RGW's block file (sized at start for the largest stream) already holds its disk space.
        const need = gib * GiB * 3.2;
        if (freeBytes(c.dir) < need) {
          facts.notes.push(`${gib} GiB ${kind} skipped: ${(freeBytes(c.dir) / GiB).toFixed(0)} GiB free in ${c.dir}, ~${(need / GiB).toFixed(0)} GiB needed.`);
          continue;
        }
        const stream = benchStream(c.dir, kind, gib);
        if (stream.generateSeconds > 0) log(`generated ${stream.path} (${(stream.bytes / GiB).toFixed(2)} GiB) in ${stream.generateSeconds.toFixed(0)} s`);
        const useS3 = s3 && (s3.store !== 'memstore' || memAvailable() > gib * GiB * 3.5) ? s3 : undefined;
        if (s3 && !useS3) facts.notes.push(`RGW skipped at ${gib} GiB ${kind}: memstore would hold ~${(gib * 2.5).toFixed(0)} GiB in RAM; run with BENCH_RGW_STORE=bluestore.`);
        try {
          for (let rep = 1; rep <= c.repeats; rep++) {
            const ctx: CaseContext = { stream, dir: c.dir, s3: useS3, sftp, putArgs: c.putArgs, restoreArgs: c.restoreArgs, nodeArgs: c.nodeArgs, rep };
            const add = (ms: Measurement[]): void => {
              for (const m of ms) {
                samples.push({ ...m, kind, gib, rawBytes: stream.bytes, rep });
                log(
                  `${gib} GiB ${kind} #${rep} ${m.target}: ${m.tool}: ${(stream.bytes / 1024 ** 2 / m.usage.wallSeconds).toFixed(0)} MiB/s, ${m.usage.wallSeconds.toFixed(1)} s, CPU ${m.usage.cpuSeconds.toFixed(1)} s, RSS ${m.usage.peakRssMiB.toFixed(0)} MiB`,
                );
              }
            };
            if (c.targets.includes('local')) add(localCases(ctx));
            if (useS3 && c.links.includes('loopback')) add(await rgwCases(ctx));
            if (useS3 && proxy) {
              for (const m of await wanCases({ stream, dir: c.dir, s3: useS3, proxy, rep, nodeArgs: c.nodeArgs })) {
                wanSamples.push({ ...m, kind, gib, rawBytes: stream.bytes, rep });
                log(
                  `${gib} GiB ${kind} #${rep} WAN: ${m.tool}: ${(stream.bytes / 1024 ** 2 / m.usage.wallSeconds).toFixed(0)} MiB/s, ${m.usage.wallSeconds.toFixed(1)} s, CPU ${m.usage.cpuSeconds.toFixed(1)} s, RSS ${m.usage.peakRssMiB.toFixed(0)} MiB, ${m.connections} connections`,
                );
              }
            }
            if (sftp) add(sftpCases(ctx));
          }
        } finally {
          if (!c.keepStreams) rmSync(stream.path, { force: true });
        }
      }
    }
  } finally {
    await proxy?.close();
    await s3?.close();
    sftp?.close();
  }
  const markdown = [table(samples, facts), ...wanTable(wanSamples, c.wan)].join('\n');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const path = join(c.dir, `results-${stamp}.md`);
  writeFileSync(path, `${markdown}\n`);
  writeFileSync(join(c.dir, 'latest.md'), `${markdown}\n`);
  writeFileSync(join(c.dir, `results-${stamp}.json`), JSON.stringify([...samples, ...wanSamples], null, 1));
  return { markdown, path, samples };
}
