/**
 * Runs one measured command line: a shell pipeline whose stages each run under GNU time, so CPU
 * time (user + sys) and peak RSS are known per process. The `cat` that feeds a stream in is
 * not counted (it is the same for every tool); wall time is that of the whole pipeline.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Usage {
  wallSeconds: number;
  /** user + sys of every measured stage. */
  cpuSeconds: number;
  /** Sum of the stages' peak RSS (a pipeline's stages run at the same time). */
  peakRssMiB: number;
  /** Per stage: peak RSS MiB, for the table's notes. */
  stages: { argv0: string; cpuSeconds: number; rssMiB: number }[];
  stdout: string;
  /** CPU seconds the server's processes used meanwhile (RGW: radosgw + OSD + mon), when probed. */
  serverCpuSeconds?: number;
}

export const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export interface Pipeline {
  /** File fed to the first stage's stdin through `cat` (like `zfs send |`); none: no stdin. */
  input?: string;
  /** Stages of the pipeline, each an argv. */
  stages: string[][];
  /** File the last stage's stdout goes to; none: captured (e.g. `--json`). */
  output?: string;
  /** Extra environment; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  /** CPU seconds used so far by the server's processes: the server shares the machine's cores. */
  serverCpu?: () => number;
}

/** Runs the pipeline; throws with its stderr when any stage fails. */
export function measure(p: Pipeline): Usage {
  const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-bench-time-'));
  try {
    const timed = p.stages.map((argv, i) => ['/usr/bin/time', '-f', '%e %U %S %M', '-o', join(dir, `t${i}`), ...argv].map(shellQuote).join(' '));
    let script = timed.join(' | ');
    if (p.input !== undefined) script = `cat ${shellQuote(p.input)} | ${script}`;
    if (p.output !== undefined) script += ` > ${shellQuote(p.output)}`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(p.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const serverBefore = p.serverCpu?.();
    const started = performance.now();
    const r = spawnSync('bash', ['-c', `set -o pipefail; ${script}`], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
    const wallSeconds = (performance.now() - started) / 1000;
    const serverCpuSeconds = serverBefore === undefined ? undefined : p.serverCpu!() - serverBefore;
    if (r.status !== 0) {
      throw new Error(`failed (exit ${r.status ?? r.signal}): ${script}\n${(r.stderr ?? '').slice(-4000)}`);
    }
    const stages = p.stages.map((argv, i) => {
      const lines = readFileSync(join(dir, `t${i}`), 'utf8')
        .trim()
        .split('\n');
      const [, u, s, m] = lines[lines.length - 1]!.split(' ').map(Number);
      return { argv0: argv[0]!, cpuSeconds: u! + s!, rssMiB: m! / 1024 };
    });
    return {
      wallSeconds,
      cpuSeconds: stages.reduce((n, s) => n + s.cpuSeconds, 0),
      peakRssMiB: stages.reduce((n, s) => n + s.rssMiB, 0),
      stages,
      stdout: r.stdout,
      ...(serverCpuSeconds !== undefined ? { serverCpuSeconds } : {}),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Throws unless the two files are byte-identical (a fast but wrong restore must not pass). */
export function assertIdentical(expected: string, actual: string, what: string): void {
  const r = spawnSync('cmp', ['--silent', expected, actual]);
  if (r.status !== 0) throw new Error(`${what}: restored bytes differ from the input stream (cmp ${expected} ${actual})`);
}

/** CPU seconds (user + sys) used so far by the processes whose pids are in these pid files. */
export function processCpuSeconds(pidFiles: string[]): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const file of pidFiles) {
    try {
      const pid = readFileSync(file, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime (fields 14, 15)
    } catch {
      // gone or unreadable: counts nothing
    }
  }
  return total;
}

/** Runs a command for its output (set-up steps, versions); undefined when it fails. */
export function output(argv: string[], env?: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: env ?? process.env });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
