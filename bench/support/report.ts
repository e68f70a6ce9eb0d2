/**
 * The markdown report of `npm run bench`: machine facts, one row per tool/data/size/target
 * (median over the repetitions, with the spread), our ratio to each relevant peer, and the
 * issue's targets with met / not met.
 */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { type CaseId, type Measurement, type Target, TARGET_NAMES } from './cases.js';
import { output } from './measure.js';
import { AWS, RCLONE } from './servers.js';
import type { DataKind } from './streams.js';

const MiB = 1024 * 1024;

export interface Sample extends Measurement {
  kind: DataKind;
  gib: number;
  rawBytes: number;
  rep: number;
}

export interface RunFacts {
  sizes: number[];
  repeats: number;
  rgwStore?: string;
  sftp: boolean;
  loadStart: number[];
  putArgs: string[];
  restoreArgs: string[];
  notes: string[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const rate = (s: Sample): number => s.rawBytes / MiB / s.usage.wallSeconds;
const f = (n: number, digits = 0): string => n.toFixed(digits);
/** Table cells: a `|` inside one (shell pipelines) must be escaped. */
const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function machineFacts(facts: RunFacts): string[] {
  const first = (argv: string[]): string => output(argv)?.split('\n')[0] ?? 'n/a';
  const zstd = /v\d+\.\d+\.\d+/.exec(first(['zstd', '--version']))?.[0] ?? 'n/a';
  const aws = first([AWS, '--version']).split(' ').slice(0, 2).join(' ');
  const load = (l: number[]): string => l.map((x) => x.toFixed(1)).join(' ');
  return [
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; RAM ${f(totalmem() / 1024 ** 3, 1)} GiB; kernel ${release()}`,
    `- node ${process.version}; zstd ${zstd}; ${first([RCLONE, 'version'])}; ${aws}`,
    `- S3: Ceph RGW ${facts.rgwStore ? `(${facts.rgwStore}) on 127.0.0.1` : 'not measured'}; SFTP: ${facts.sftp ? 'OpenSSH internal-sftp on 127.0.0.1 (scripts/sshd.sh)' : 'not measured'}`,
    `- streams: ${facts.sizes.map((g) => `${g} GiB`).join(', ')}; repetitions: ${facts.repeats}; load average at start ${load(facts.loadStart)}, at end ${load(loadavg())}`,
    ...(facts.putArgs.length || facts.restoreArgs.length ? [`- extra arguments: put ${facts.putArgs.join(' ') || '(none)'}; restore ${facts.restoreArgs.join(' ') || '(none)'}`] : []),
  ];
}

interface Group {
  key: string;
  samples: Sample[];
}

function groups(samples: Sample[]): Group[] {
  const map = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.gib}|${s.kind}|${s.target}|${s.id}`;
    map.set(key, [...(map.get(key) ?? []), s]);
  }
  return [...map.entries()].map(([key, samples]) => ({ key, samples }));
}

/** The pairs the issue compares; for put to RGW the best peer pipeline is picked per repetition. */
const PEERS: { ours: CaseId; peers: CaseId[]; label: string; goal?: number }[] = [
  { ours: 'ours-put', peers: ['zstd-file'], label: 'zstd -T0 -3 > file' },
  { ours: 'ours-restore', peers: ['zstd-d-file'], label: 'zstd -d > file' },
  { ours: 'ours-put', peers: ['zstd-rclone', 'zstd-aws', 'aws-raw'], label: 'best peer pipeline', goal: 1.3 },
  { ours: 'ours-put', peers: ['lib-storage'], label: 'raw lib-storage ingest', goal: 0.9 },
  { ours: 'ours-restore', peers: ['rclone-zstd-d'], label: 'rclone cat | zstd -d', goal: 1.3 },
  { ours: 'ours-restore', peers: ['aws-zstd-d'], label: 'aws s3 cp - | zstd -d' },
];

export interface Ratio {
  gib: number;
  kind: DataKind;
  target: Target;
  ours: CaseId;
  label: string;
  median: number;
  min: number;
  max: number;
  /** Which peer was best, per repetition (for "best peer pipeline"). */
  best: string[];
  goal?: number;
}

export function ratios(samples: Sample[]): Ratio[] {
  const out: Ratio[] = [];
  const at = (s: Sample, id: CaseId): Sample | undefined => samples.find((x) => x.gib === s.gib && x.kind === s.kind && x.target === s.target && x.rep === s.rep && x.id === id);
  const seen = new Set<string>();
  for (const s of samples) {
    for (const p of PEERS) {
      if (s.id !== p.ours) continue;
      const key = `${s.gib}|${s.kind}|${s.target}|${p.label}`;
      if (seen.has(key)) continue;
      const mine = samples.filter((x) => x.gib === s.gib && x.kind === s.kind && x.target === s.target && x.id === p.ours);
      const values: number[] = [];
      const best: string[] = [];
      for (const m of mine) {
        const peers = p.peers.map((id) => at(m, id)).filter((x): x is Sample => x !== undefined);
        if (peers.length === 0) continue;
        const top = peers.reduce((a, b) => (rate(a) >= rate(b) ? a : b));
        values.push(rate(m) / rate(top));
        best.push(top.tool);
      }
      if (values.length === 0) continue;
      seen.add(key);
      // The issue's goals are about RGW (and, for the lib-storage one, incompressible data).
      const goal = s.target === 'rgw' && (p.label !== 'raw lib-storage ingest' || s.kind === 'incompressible') ? p.goal : undefined;
      out.push({ gib: s.gib, kind: s.kind, target: s.target, ours: p.ours, label: p.label, median: median(values), min: Math.min(...values), max: Math.max(...values), best, goal });
    }
  }
  return out;
}

/** Median CPU seconds of the RGW daemons during the measurement (blank when not probed). */
function server(samples: Sample[]): string {
  const xs = samples.flatMap((s) => (s.usage.serverCpuSeconds === undefined ? [] : [s.usage.serverCpuSeconds]));
  return xs.length ? f(median(xs), 1) : '';
}

export function table(samples: Sample[], facts: RunFacts): string {
  const rs = ratios(samples);
  const lines = ['# zfs-offsite throughput (`npm run bench`)', '', ...machineFacts(facts), ''];
  lines.push(
    '| tool | data | GiB | target | MiB/s | spread MiB/s | wall s | CPU s | server CPU s | peak RSS MiB | stored/raw | ours ÷ peer |',
    '|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const g of groups(samples)) {
    const s0 = g.samples[0]!;
    const rates = g.samples.map(rate);
    const stored = s0.stored !== undefined ? f(s0.stored / s0.rawBytes, 3) : '';
    const vs = rs
      .filter((r) => r.gib === s0.gib && r.kind === s0.kind && r.target === s0.target && r.ours === s0.id)
      .map((r) => `${f(r.median, 2)}× ${r.label}${r.label === 'best peer pipeline' ? ` (${[...new Set(r.best)].join(', ')})` : ''}`)
      .join('; ');
    lines.push(
      `| ${cell(s0.tool)} | ${s0.kind} | ${s0.gib} | ${TARGET_NAMES[s0.target]} | ${f(median(rates))} | ${rates.length > 1 ? `${f(Math.min(...rates))}–${f(Math.max(...rates))}` : ''} | ` +
        `${f(median(g.samples.map((s) => s.usage.wallSeconds)), 1)} | ${f(median(g.samples.map((s) => s.usage.cpuSeconds)), 1)} | ${server(g.samples)} | ` +
        `${f(Math.max(...g.samples.map((s) => s.usage.peakRssMiB)))} | ${stored} | ${cell(vs)} |`,
    );
  }
  lines.push('', '## Targets (issue 9)', '', '| target | data | GiB | ours ÷ | median | spread | goal | met |', '|---|---|---:|---|---:|---:|---:|---|');
  for (const r of rs.filter((x) => x.goal !== undefined)) {
    const what = r.ours === 'ours-put' ? 'put to RGW' : 'restore from RGW';
    lines.push(
      `| ${what} | ${r.kind} | ${r.gib} | ${cell(r.label)} | ${f(r.median, 3)} | ${r.min === r.max ? '' : `${f(r.min, 3)}–${f(r.max, 3)}`} | ≥ ${r.goal} | ${r.median >= r.goal! ? 'yes' : 'no'} |`,
    );
  }
  lines.push(...rssLines(samples), '', ...notes(facts));
  return lines.join('\n');
}

/** Peak RSS of our put and restore against the 256 MiB goal, and how flat it is across sizes. */
function rssLines(samples: Sample[]): string[] {
  const ours = samples.filter((s) => s.id.startsWith('ours-'));
  if (ours.length === 0) return [];
  const lines = [
    '',
    '### Peak RSS of zfs-offsite (goal ≤ 256 MiB, flat ±10 % from 1 to 8 GiB)',
    '',
    `| command | target | data | ${[...new Set(ours.map((s) => `${s.gib} GiB`))].join(' | ')} | flat |`,
  ];
  const sizes = [...new Set(ours.map((s) => s.gib))];
  lines.push(`|---|---|---|${sizes.map(() => '---:').join('|')}|---|`);
  const keys = [...new Set(ours.map((s) => `${s.tool}|${s.target}|${s.kind}`))];
  for (const key of keys) {
    const [tool, target, kind] = key.split('|') as [string, Target, DataKind];
    const peaks = sizes.map((g) => {
      const xs = ours.filter((s) => s.tool === tool && s.target === target && s.kind === kind && s.gib === g).map((s) => s.usage.peakRssMiB);
      return xs.length ? Math.max(...xs) : undefined;
    });
    const known = peaks.filter((x): x is number => x !== undefined);
    const flat = known.length > 1 ? (Math.max(...known) <= Math.min(...known) * 1.1 ? 'yes' : 'no') : '';
    lines.push(`| ${cell(tool)} | ${TARGET_NAMES[target]} | ${kind} | ${peaks.map((p) => (p === undefined ? '' : `${f(p)}${p > 256 ? ' (over)' : ''}`)).join(' | ')} | ${flat} |`);
  }
  return lines;
}

function notes(facts: RunFacts): string[] {
  return [
    'Notes:',
    '- MiB/s = raw stream MiB ÷ wall time of the whole pipeline, fed by `cat FILE |` (like `zfs send |`); the median over repetitions, spread = min–max.',
    "- CPU s = user + sys of every stage (not `cat`); peak RSS of a pipeline = the SUM of its stages' peaks. GNU time per stage.",
    "- server CPU s = CPU used meanwhile by radosgw + ceph-osd + ceph-mon, which run on the SAME cores: client CPU taken from them slows the server down. (A shared test RGW also serves other users' tests.)",
    '- ours ÷ peer = our MiB/s ÷ the peer\'s, per repetition (measured back to back), median. "best peer pipeline" = the fastest of `zstd -T0 -3 | rclone rcat`, `zstd -T0 -3 | aws s3 cp -` and `aws s3 cp -` in that repetition.',
    '- stored/raw: ours from the manifest (chunk frames only), zstd from the .zst size; lib-storage and `aws s3 cp -` store raw bytes.',
    "- Every restore (ours and the peers') is compared byte for byte with the input (`cmp`); a mismatch fails the run.",
    '- Local-directory writes: ours fsyncs every object, `zstd > file` does not. rclone and aws run with their defaults (rclone: 5 MiB parts × 4; aws: 8 MiB × 10).',
    ...facts.notes.map((n) => `- ${n}`),
  ];
}
