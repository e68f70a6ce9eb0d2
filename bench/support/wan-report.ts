/**
 * The WAN section of `npm run bench`'s report (issue 17): one row per tool, with MiB/s, client
 * CPU s per GiB, peak RSS, connections opened through the proxy and ours ÷ the best peer; then the
 * issue's goals (defaults: put and restore ≥ 1.3× the best peer, peak RSS ≤ 256 MiB) met or not.
 */
import type { DataKind } from './streams.js';
import type { WanCaseId, WanLink, WanMeasurement } from './wan.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface WanSample extends WanMeasurement {
  kind: DataKind;
  gib: number;
  rawBytes: number;
  rep: number;
}

const PEERS: Record<'put' | 'restore', WanCaseId[]> = { put: ['aws-put', 'rclone-put', 'restic-put'], restore: ['aws-get', 'rclone-get', 'restic-get'] };
const OURS: WanCaseId[] = ['ours-put', 'ours-restore', 'ours-put-p8', 'ours-restore-p8'];
const GOAL = 1.3;
const RSS_GOAL = 256;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const rate = (s: WanSample): number => s.rawBytes / MiB / s.usage.wallSeconds;
const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** Ours ÷ the fastest peer of the same op, per repetition (measured back to back), median; and which peer. */
function versusBest(samples: WanSample[], s: WanSample): { ratio: number; best: string[] } | undefined {
  const values: number[] = [];
  const best: string[] = [];
  for (const m of samples.filter((x) => x.id === s.id && x.gib === s.gib && x.kind === s.kind)) {
    const peers = samples.filter((x) => x.rep === m.rep && x.gib === m.gib && x.kind === m.kind && PEERS[m.op].includes(x.id));
    if (peers.length === 0) continue;
    const top = peers.reduce((a, b) => (rate(a) >= rate(b) ? a : b));
    values.push(rate(m) / rate(top));
    best.push(top.tool);
  }
  return values.length ? { ratio: median(values), best: [...new Set(best)] } : undefined;
}

export function wanTable(samples: WanSample[], link: WanLink): string[] {
  if (samples.length === 0) return [];
  const lines = [
    '',
    `## WAN: Ceph RGW through the shaping proxy (${link.rttMs} ms round trip, ${(link.rate / MiB).toFixed(1)} MiB/s per connection and direction)`,
    '',
    '| tool | op | data | GiB | MiB/s | spread MiB/s | wall s | client CPU s/GiB | server+proxy CPU s | peak RSS MiB | connections | ours ÷ best peer |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const keys = [...new Set(samples.map((s) => `${s.gib}|${s.kind}|${s.id}`))];
  for (const key of keys) {
    const group = samples.filter((s) => `${s.gib}|${s.kind}|${s.id}` === key);
    const s0 = group[0]!;
    const rates = group.map(rate);
    const cpuPerGiB = median(group.map((s) => s.usage.cpuSeconds / (s.rawBytes / GiB)));
    const server = group.flatMap((s) => (s.usage.serverCpuSeconds === undefined ? [] : [s.usage.serverCpuSeconds]));
    const vs = OURS.includes(s0.id) ? versusBest(samples, s0) : undefined;
    lines.push(
      `| ${cell(s0.tool)} | ${s0.op} | ${s0.kind} | ${s0.gib} | ${median(rates).toFixed(0)} | ${rates.length > 1 ? `${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}` : ''} | ` +
        `${median(group.map((s) => s.usage.wallSeconds)).toFixed(1)} | ${cpuPerGiB.toFixed(1)} | ${server.length ? median(server).toFixed(1) : ''} | ` +
        `${Math.max(...group.map((s) => s.usage.peakRssMiB)).toFixed(0)} | ${median(group.map((s) => s.connections)).toFixed(0)} | ${vs ? `${vs.ratio.toFixed(2)}× (${cell(vs.best.join(', '))})` : ''} |`,
    );
  }
  lines.push('', '### Goals over the WAN link (issue 17, defaults)', '', '| goal | data | GiB | measured | met |', '|---|---|---:|---|---|');
  for (const key of [...new Set(samples.map((s) => `${s.gib}|${s.kind}`))]) {
    const here = samples.filter((s) => `${s.gib}|${s.kind}` === key);
    const { gib, kind } = here[0]!;
    for (const id of ['ours-put', 'ours-restore'] as const) {
      const mine = here.filter((s) => s.id === id);
      if (mine.length === 0) continue;
      const vs = versusBest(here, mine[0]!);
      const what = id === 'ours-put' ? 'put' : 'restore';
      if (vs) lines.push(`| ${what} ≥ ${GOAL}× best peer | ${kind} | ${gib} | ${vs.ratio.toFixed(2)}× (${cell(vs.best.join(', '))}) | ${vs.ratio >= GOAL ? 'yes' : 'no'} |`);
      const rss = Math.max(...mine.map((s) => s.usage.peakRssMiB));
      lines.push(`| ${what} peak RSS ≤ ${RSS_GOAL} MiB | ${kind} | ${gib} | ${rss.toFixed(0)} MiB | ${rss <= RSS_GOAL ? 'yes' : 'no'} |`);
    }
  }
  lines.push(
    '',
    'WAN notes:',
    '- Every tool runs with its own defaults (aws: 8 MiB parts, 10 requests in flight; rclone: 5 MiB parts × 4; restic 0.14: 16 MiB packs, its compression `auto`); ours also with `--parallel 8`.',
    '- connections = TCP connections the command opened through the proxy (a client that reuses connections opens few; each new one costs a handshake and, on a real link, a slow start).',
    '- server+proxy CPU s = radosgw + ceph-osd + ceph-mon + the proxy process, all on the same cores as the client.',
    '- The rate cap is per connection: the proxy does not cap the total, so parallel connections add up (as on a real link that is not itself the limit).',
  );
  return lines;
}
