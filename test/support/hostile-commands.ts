/**
 * Every command of the CLI against one hostile layout on one target (issue 15), through the
 * built CLI: read-only commands first (in parallel), then the writers, `run --config` with the
 * zfs stand-in, and the prunes. Each result is checked for what a user may see (exit code in
 * the documented set, no hang, no stack trace, failures as one `zfs-offsite: error:` line);
 * afterwards the canary beside the target must be byte-for-byte, time-for-time untouched.
 * Returns the list of broken expectations, so one case reports every command that failed.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type HostileBackend, type HostileCase, crashSigns, releaseFifos, runTimed, snapshotTree, type TimedResult } from './hostile.js';
import { GUIDS, type Layout, type Template } from './hostile-layouts.js';

const STAND_IN = fileURLToPath(new URL('./zfs-stand-in.mjs', import.meta.url));

/** The commands each layout is attacked with (counted in the suite's summary). */
export const COMMANDS = [
  'list',
  'verify',
  'verify --sample 100%',
  'prune --dry-run',
  'restore pool/fs@c --output',
  'restore pool/other@o --output',
  'put (new stream)',
  'put (rerun of the interrupted upload)',
  'run --config',
  'prune TARGET DATASET',
  'prune TARGET',
] as const;
type CommandName = (typeof COMMANDS)[number];

type Level = 'archive' | 'stream' | 'lease' | 'resume';

/** Where a layout plants: in a stream of pool/fs, at pool/fs's lease, in pool/resume's upload, or higher up. */
function levelOf(layout: Layout): Level {
  if (layout.group === 'control' || layout.group === 'escape') return 'archive';
  const key = layout.planted({ a: 'A', b: 'B', c: 'C', o: 'O', r: 'R' });
  if (key.startsWith('R')) return 'resume';
  if (key.endsWith('lease.json')) return 'lease';
  return key.startsWith('A') || key.startsWith('C') ? 'stream' : 'archive';
}

/**
 * The commands that can meet what `layout` plants (the suite's run time is mostly one CLI
 * start per command, on two cores): the marker, the datasets directory, a dataset directory,
 * the escapes and the control get every command; a stream of pool/fs is attacked by the
 * readers, the writer and the prunes of pool/fs; a lease by its writers and prunes; the
 * interrupted upload by its rerun, the listing readers and the prunes.
 */
export function commandsFor(layout: Layout): CommandName[] {
  const skip: Record<Level, CommandName[]> = {
    archive: [],
    stream: ['put (rerun of the interrupted upload)', 'restore pool/other@o --output', 'prune --dry-run', 'run --config'],
    lease: ['put (rerun of the interrupted upload)', 'restore pool/other@o --output', 'restore pool/fs@c --output', 'verify --sample 100%', 'prune --dry-run'],
    resume: ['verify --sample 100%', 'prune --dry-run', 'restore pool/fs@c --output', 'restore pool/other@o --output', 'put (new stream)', 'run --config'],
  };
  const level = levelOf(layout);
  return COMMANDS.filter((c) => !skip[level].includes(c));
}

interface Problem {
  kind: string;
}

const tail = (r: TimedResult) => `exit ${r.code}${r.timedOut ? ' (TIMED OUT, killed)' : ''}\n  stdout: ${r.stdout.trim().slice(0, 1500)}\n  stderr: ${r.stderr.trim().slice(0, 1500)}`;

function runConfig(c: HostileCase, streamD: Buffer): string[] {
  const dir = join(c.workDir, 'run');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'd.zfs'), streamD);
  const snap = (name: string, g: bigint, txg: number, d: number) => ({ name, guid: g.toString(), createtxg: txg, creation: Date.UTC(2026, 0, d, 2) / 1000 });
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({
      log: join(dir, 'zfs.log'),
      datasets: { 'pool/fs': { encryption: 'off', snapshots: [snap('a', GUIDS.a, 1, 1), snap('b', GUIDS.b, 2, 2), snap('c', GUIDS.c, 3, 10), snap('d', GUIDS.d, 4, 15)] } },
      streams: { [`${GUIDS.c}:${GUIDS.d}`]: join(dir, 'd.zfs'), [`0:${GUIDS.d}`]: join(dir, 'd.zfs') },
    }),
  );
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `defaults:\n  target: "${c.url}"\n  keep: { last: 1 }\n  chunk_size: 1M\ndatasets:\n  - name: pool/fs\n    snapshot: { mode: pick, pattern: "d" }\n`);
  return ['run', '--config', config];
}

/** Plants `layout` on a fresh case of `backend`, runs every command, and returns what went wrong. */
export async function attack(backend: HostileBackend, layout: Layout, t: Template): Promise<string[]> {
  const c = backend.makeCase();
  const failures: string[] = [];
  try {
    execFileSync('cp', ['-a', t.dir, c.targetDir]);
    execFileSync('cp', ['-a', t.canary, c.canaryDir]);
    layout.plant(c.targetDir, c.canaryDir, t.ids, t);
    c.handOver();
    const before = snapshotTree(c.canaryDir);
    const runDir = join(c.workDir, 'run');
    const env = { ...c.env, ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: join(runDir, 'state.json') };
    const wanted = commandsFor(layout);
    const skipped: TimedResult = { code: null, stdout: '', stdoutBytes: Buffer.alloc(0), stderr: '', timedOut: false };
    const cli = (name: CommandName, args: string[], input?: Buffer) => (wanted.includes(name) ? runTimed(args, { env, ...(input ? { input } : {}) }) : Promise.resolve(skipped));
    const broken = (ds: string) => layout.breaks === 'all' || layout.breaks.includes(ds);
    const anyBroken = layout.breaks === 'all' || layout.breaks.length > 0 || layout.group === 'escape';
    const all = layout.breaks === 'all';
    const planted = layout.planted(t.ids);

    const check = (name: CommandName, r: TimedResult, allowed: number[], extra?: (r: TimedResult) => string | undefined) => {
      if (r === skipped) return;
      const wrong: string[] = [];
      if (r.timedOut) wrong.push('hung (killed after the timeout)');
      for (const sign of [...crashSigns(r.stdout), ...crashSigns(r.stderr)]) wrong.push(`output shows a crash: ${sign}`);
      if (!allowed.includes(r.code ?? -1)) wrong.push(`exit ${r.code}, expected ${allowed.join(' or ')}`);
      const lines = r.stderr.split('\n').filter(Boolean);
      if (lines.some((l) => !l.startsWith('zfs-offsite: '))) wrong.push('stderr has lines that are not zfs-offsite messages');
      if ((r.code === 1 || r.code === 2) && name !== 'run --config' && !lines.at(-1)?.startsWith('zfs-offsite: error: ')) wrong.push('failure without a final "zfs-offsite: error:" line');
      const more = r.timedOut ? undefined : extra?.(r);
      if (more) wrong.push(more);
      if (wrong.length > 0) failures.push(`${name}: ${wrong.join('; ')}\n  ${tail(r)}`);
    };
    const verifyExpect = (r: TimedResult): string | undefined => {
      if (layout.group === 'control' || r.code !== 3) return undefined;
      let problems: Problem[];
      try {
        problems = (JSON.parse(r.stdout) as { problems: Problem[] }).problems;
      } catch {
        return 'verify --json printed no JSON report';
      }
      if (layout.group === 'escape') return problems.some((p) => JSON.stringify(p).includes(planted)) ? undefined : `no problem names ${planted}`;
      return problems.some((p) => p.kind === 'unsafe-entry' && JSON.stringify(p).includes(planted))
        ? undefined
        : `no problem of kind unsafe-entry names ${planted} (kinds: ${problems.map((p) => p.kind).join(', ')})`;
    };
    const restored = (file: string, want: Buffer) => (r: TimedResult) => {
      if (r.code !== 0) return undefined;
      return readFileSync(file).equals(want) ? undefined : `restored bytes differ from the archived stream`;
    };
    const listExpect = (r: TimedResult) =>
      layout.group === 'escape' && r.code === 0 && !(r.stdout.includes('pool/other') && r.stdout.includes('pool/fs')) ? 'list does not show pool/fs and pool/other' : undefined;
    const keep = ['--keep-last', '1'];
    const verifyCodes = layout.group === 'control' ? [0] : all ? [1, 3] : [3];
    const out = (name: string) => join(c.workDir, name);

    // Read-only commands, in parallel.
    const [list, verify, sample, dry, restoreC, restoreO] = await Promise.all([
      cli('list', ['list', c.url]),
      cli('verify', ['verify', c.url, '--json']),
      cli('verify --sample 100%', ['verify', c.url, '--sample', '100%', '--json']),
      cli('prune --dry-run', ['prune', c.url, ...keep, '--dry-run', '--json']),
      cli('restore pool/fs@c --output', ['restore', '--from', c.url, 'pool/fs@c', '--output', out('c.zfs')]),
      cli('restore pool/other@o --output', ['restore', '--from', c.url, 'pool/other@o', '--output', out('o.zfs')]),
    ]);
    releaseFifos(c.targetDir); // wakes an SFTP server still blocked on a FIFO for a killed command
    check('list', list, all ? [0, 1] : [0], listExpect);
    check('verify', verify, verifyCodes, verifyExpect);
    check('verify --sample 100%', sample, verifyCodes, verifyExpect);
    check('prune --dry-run', dry, anyBroken ? [0, 1] : [0], (r) => {
      // Whatever else the archive holds, the whole-archive prune still plans pool/fs's old streams away.
      if (broken('pool/fs') || (r.code !== 0 && r.code !== 1)) return undefined;
      let report: { datasets: { dataset: string; deleted: { streamId: string }[] }[] };
      try {
        report = JSON.parse(r.stdout) as typeof report;
      } catch {
        return 'prune --json printed no report';
      }
      const deleted = report.datasets.find((d) => d.dataset === 'pool/fs')?.deleted.map((s) => s.streamId) ?? [];
      const want = [t.ids.a, t.ids.b].map((id) => id.split('/').pop()!);
      return want.every((id) => deleted.includes(id)) ? undefined : `the plan does not delete pool/fs's old streams a and b (deletes: ${deleted.join(', ') || 'nothing'})`;
    });
    check('restore pool/fs@c --output', restoreC, broken('pool/fs') ? [0, 1, 2] : [0], restored(out('c.zfs'), t.streams.c));
    check('restore pool/other@o --output', restoreO, broken('pool/other') ? [0, 1, 2] : [0], restored(out('o.zfs'), t.streams.o));

    // Writers of two different datasets, in parallel.
    const [putNew, putRerun] = await Promise.all([
      cli('put (new stream)', ['put', '--to', c.url, '--chunk-size', '1M'], t.streams.n),
      cli('put (rerun of the interrupted upload)', ['put', '--to', c.url, '--chunk-size', '1M'], t.streams.r),
    ]);
    releaseFifos(c.targetDir);
    check('put (new stream)', putNew, broken('pool/fs') ? [0, 1] : [0]);
    check('put (rerun of the interrupted upload)', putRerun, broken('pool/resume') ? [0, 1] : [0]);

    check('run --config', await cli('run --config', runConfig(c, t.streams.d)), broken('pool/fs') ? [0, 1] : [0]);
    releaseFifos(c.targetDir);

    check('prune TARGET DATASET', await cli('prune TARGET DATASET', ['prune', c.url, layout.focus, ...keep]), broken(layout.focus) ? [0, 1, 2] : [0]);
    releaseFifos(c.targetDir);
    check('prune TARGET', await cli('prune TARGET', ['prune', c.url, ...keep, '--stale-after', '1s']), anyBroken ? [0, 1] : [0], () => {
      // Other streams keep working: pool/fs's old streams are gone unless pool/fs is what was attacked.
      if (broken('pool/fs')) return undefined;
      return lstatSync(join(c.targetDir, t.ids.a, 'manifest.json'), { throwIfNoEntry: false }) ? 'the doomed stream a of pool/fs was not pruned' : undefined;
    });

    releaseFifos(c.canaryDir);
    const after = snapshotTree(c.canaryDir);
    const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => before[k] !== after[k]);
    if (changed.length > 0) failures.push(`CANARY CHANGED: ${changed.map((k) => `${k}: ${before[k] ?? '(absent)'} → ${after[k] ?? '(absent)'}`).join('\n  ')}`);
  } finally {
    c.cleanup();
  }
  return failures;
}
