/**
 * Every command with bad arguments, as a user types them: each is refused with one line
 * `zfs-offsite: error: …`, exit 2 (README, "Exit codes"), nothing on stdout, no stack trace, and
 * nothing created in the target's directory. The commands, their arguments and options are read
 * from the program itself (src/cli/program.ts) and the bad values from the settings table
 * (src/settings/table.ts), so a new command or option is swept without touching this file.
 *
 * Every case runs through the program's main() in this process (a few milliseconds each); one
 * case of each kind of mistake and command, and every case about the whole program, also runs
 * as the installed command in its own process (half a second of CPU each), a few at a time.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Argument, Command, Option } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram, main } from '../../src/cli/program.js';
import { SETTING_NAMES, type SettingSpec, settingSpec } from '../../src/settings/table.js';
import { silentLogger } from '../../src/util/logger.js';
import { TOOL_VERSION } from '../../src/util/version.js';
import { type CliResult, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';

/** Lines of a stack trace or of node's internals, which no user may see. */
const TRACE = /\n\s+at |node:internal|^\s+at /m;

/** How many CLI processes run at once: each node start is about half a second of CPU (two cores). */
const AT_ONCE = 3;

interface Case {
  /** What is wrong, for the failure message. */
  what: string;
  /** The kind of mistake: one case of each kind and command also runs as a process. */
  kind: string;
  /** The command it runs, '' for none. */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** What the one line must say besides the prefix. */
  says: RegExp;
}

const PROGRAM = buildProgram(() => silentLogger());
const COMMANDS = PROGRAM.commands;

/** A plausible value for an argument or option value placeholder (`<target>`, `<snapshot>`…). */
function valueFor(placeholder: string, target: string, dir: string): string {
  switch (placeholder) {
    case 'target':
      return target;
    case 'snapshot':
      return 'pool/fs@snap';
    case 'dataset':
      return 'pool/fs';
    case 'file':
      return join(dir, 'config.yaml');
    default:
      return 'x';
  }
}

function placeholderOf(opt: Option): string | undefined {
  return /<([^>]+)>/.exec(opt.flags)?.[1];
}

/** Where a command takes its target when ZFS_OFFSITE_TARGET may stand in for it: `[target]` or `--from`. */
const isDefaultedTarget = (a: Argument) => !a.required && a.name() === 'target';
const isFrom = (o: Option) => o.long === '--from' && placeholderOf(o) === 'target';

/** Valid enough arguments for `cmd`: its required arguments, target and mandatory options; prune a policy that keeps something. */
function baseArgs(cmd: Command, target: string, dir: string): string[] {
  const args = cmd.registeredArguments.filter((a: Argument) => a.required || isDefaultedTarget(a)).map((a: Argument) => valueFor(a.name(), target, dir));
  for (const opt of cmd.options.filter((o) => o.mandatory || isFrom(o))) args.push(opt.long!, valueFor(placeholderOf(opt) ?? '', target, dir));
  if (cmd.options.some((o) => o.long === '--keep-last')) args.push('--keep-last', '1');
  return args;
}

/** Values each setting of the table refuses: not a value of its type, and just outside its range. */
function badSettingValues(spec: SettingSpec): string[] {
  switch (spec.type) {
    case 'size':
      return ['lots', ...(spec.min ? [String(spec.min - 1)] : []), ...(spec.max === undefined ? [] : [String(spec.max + 1)])];
    case 'duration':
      return ['soon', '-1s', ...(spec.min ? ['0s'] : [])];
    case 'count':
      return ['many', '1.5', ...(spec.min === undefined ? [] : [String(spec.min - 1)]), ...(spec.max === undefined ? [] : [String(spec.max + 1)])];
    case 'string':
    case 'file':
      return ['', ...(spec.pattern ? ['no such value!'] : [])];
    default:
      return [];
  }
}

/** Bad values of an option: the table's for a setting flag, else by its placeholder; none for free text (names, paths). */
function badValues(opt: Option): string[] {
  const name = SETTING_NAMES.find((n) => [settingSpec(n).flag, settingSpec(n).alias].some((f) => f?.split(' ')[0] === opt.long));
  if (name !== undefined) return badSettingValues(settingSpec(name));
  switch (placeholderOf(opt)) {
    case 'n':
      return ['many', '-1', '1.5'];
    case 'size':
      return ['lots'];
    case 'duration':
      return ['soon'];
    case 'percent':
      return ['lots', '0%', '101%'];
    default:
      return [];
  }
}

const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every bad invocation of `cmd`. */
function casesFor(cmd: Command, target: string, dir: string): Case[] {
  const name = cmd.name();
  const base = baseArgs(cmd, target, dir);
  // Commander's own refusals end with where the usage is (src/cli/exit.ts); the program's name the flag.
  const parser = (what: string) => new RegExp(`^${what}.* \\(see: zfs-offsite ${name} --help\\)$`);
  const dryRun = cmd.options.some((o) => o.long === '--dry-run') ? ' \\(did you mean --dry-run\\?\\)' : '';
  const cases: Omit<Case, 'command'>[] = [
    { what: 'unknown option', kind: 'unknown-option', args: [name, ...base, '--no-such-option'], says: parser("unknown option '--no-such-option'") },
    { what: 'typo of --dry-run', kind: 'typo', args: [name, ...base, '--dryrun'], says: parser(`unknown option '--dryrun'${dryRun}`) },
    {
      what: 'a bad --log-level',
      kind: 'log-level',
      args: ['--log-level', 'bogus', name, ...base],
      says: /^--log-level must be one of trace, debug, info, warn, error, fatal, silent \(got "bogus"\)$/,
    },
    { what: 'a --log-file in no directory', kind: 'log-file', args: ['--log-file', join(dir, 'no', 'such', 'log'), name, ...base], says: /log file/ },
  ];
  // A command whose last argument is a list (`drill [datasets...]`) takes any number: nothing is extra.
  if (!cmd.registeredArguments.some((a) => a.variadic)) {
    cases.push({
      what: 'an extra argument',
      kind: 'extra',
      args: [name, ...base, ...cmd.registeredArguments.filter((a) => !a.required).map(() => 'pool/fs'), 'extra'],
      says: parser('too many arguments'),
    });
  }
  // Issue 16.3: no target given and no ZFS_OFFSITE_TARGET (set empty here: unset for the program).
  if (cmd.registeredArguments.some(isDefaultedTarget)) {
    cases.push({
      what: 'no target',
      kind: 'no-target',
      args: [name, ...base.filter((a) => a !== target)],
      env: { ZFS_OFFSITE_TARGET: '' },
      says: /^no target: give TARGET or set ZFS_OFFSITE_TARGET$/,
    });
  }
  if (cmd.options.some(isFrom)) {
    const i = base.indexOf('--from');
    cases.push({
      what: 'no --from',
      kind: 'no-target',
      args: [name, ...base.slice(0, i), ...base.slice(i + 2)],
      env: { ZFS_OFFSITE_TARGET: '' },
      says: /^no target: give --from TARGET or set ZFS_OFFSITE_TARGET$/,
    });
  }
  const required = cmd.registeredArguments.filter((a) => a.required);
  if (required.length > 0) {
    cases.push({ what: 'no arguments', kind: 'no-args', args: [name, ...base.slice(required.length)], says: parser(`missing required argument '${required[0]!.name()}'`) });
  }
  for (const opt of cmd.options.filter((o) => o.mandatory)) {
    const i = base.indexOf(opt.long!);
    cases.push({ what: `no ${opt.long}`, kind: 'no-required-option', args: [name, ...base.slice(0, i), ...base.slice(i + 2)], says: parser(`required option '${reEscape(opt.flags)}' not specified`) });
  }
  for (const opt of cmd.options) {
    const long = opt.long!;
    if (opt.required) {
      cases.push({ what: `${long} without its value`, kind: 'no-value', args: [name, ...base, long], says: parser(`option '${reEscape(opt.flags)}' argument missing`) });
      for (const bad of badValues(opt))
        cases.push({ what: `${long}=${JSON.stringify(bad)}`, kind: `bad-value ${placeholderOf(opt)}`, args: [name, ...base, `${long}=${bad}`], says: new RegExp(reEscape(long)) });
    } else if (!opt.negate && !opt.optional) {
      cases.push({ what: `a value given to the switch ${long}`, kind: 'switch-value', args: [name, ...base, `${long}=yes`], says: parser(`unknown option '${reEscape(long)}=yes'`) });
    }
  }
  return cases.map((c) => ({ ...c, command: name }));
}

/** Runs `jobs` with at most AT_ONCE at a time, results in order. */
async function pooled<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: AT_ONCE }, worker));
  return results;
}

/** main() in this process, with stdout and stderr captured (nothing else writes to them meanwhile). */
async function runInProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { out: process.stdout.write, err: process.stderr.write, env: { ...process.env } };
  const capture = (into: string[]) => ((chunk: string | Uint8Array) => (into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()), true)) as typeof process.stdout.write;
  Object.assign(process.env, env);
  process.stdout.write = capture(out);
  process.stderr.write = capture(err);
  try {
    const code = await main(['node', 'zfs-offsite', ...args]);
    const stdout = out.join('');
    return { code, stdout, stdoutBytes: Buffer.from(stdout), stderr: err.join('') };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    for (const key of Object.keys(env)) {
      if (saved.env[key] === undefined) delete process.env[key];
      else process.env[key] = saved.env[key];
    }
  }
}

function problemsOf(c: Case, r: CliResult): string[] {
  const problems: string[] = [];
  if (r.code !== 2) problems.push(`exit ${r.code}, not 2`);
  if (r.stdout !== '') problems.push(`stdout ${JSON.stringify(r.stdout.slice(0, 200))}`);
  if (TRACE.test(r.stderr)) problems.push('a stack trace on stderr');
  const lines = r.stderr.split('\n');
  if (lines.length !== 2 || lines[1] !== '' || !lines[0]!.startsWith('zfs-offsite: error: ')) problems.push(`stderr is not one error line: ${JSON.stringify(r.stderr.slice(0, 400))}`);
  else if (!c.says.test(lines[0]!.slice('zfs-offsite: error: '.length))) problems.push(`the line ${JSON.stringify(lines[0])} does not match ${c.says}`);
  return problems;
}

describe('bad arguments, every command', () => {
  let dir: string;
  let target: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-bad-args-'));
    target = join(dir, 'archive');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('are each refused with one line, exit 2, nothing on stdout, no stack trace, nothing created', async () => {
    expect(COMMANDS.map((c) => c.name())).toEqual(expect.arrayContaining(['put', 'send', 'list', 'restore', 'verify', 'prune', 'run']));
    const cases: Case[] = [
      ...COMMANDS.flatMap((cmd) => casesFor(cmd, target, dir)),
      { what: 'an unknown command', kind: 'global', command: '', args: ['frobnicate'], says: /^unknown command 'frobnicate' \(see: zfs-offsite --help\)$/ },
      { what: 'a misspelt command', kind: 'global', command: '', args: ['lst', target], says: /^unknown command 'lst' \(did you mean list\?\) \(see: zfs-offsite --help\)$/ },
      { what: 'an unknown global option', kind: 'global', command: '', args: ['--no-such-option', 'list', target], says: /^unknown option '--no-such-option' \(see: zfs-offsite --help\)$/ },
      // Issue 16.5: -q and -v are levels of the one log setting.
      { what: '-q with -v', kind: 'global', command: '', args: ['-q', '-v', 'list', target], says: /^-q and -v exclude each other$/ },
      { what: '--quiet with --log-level', kind: 'global', command: '', args: ['--quiet', '--log-level', 'debug', 'list', target], says: /^-q and --log-level exclude each other$/ },
      { what: '--log-level without its value', kind: 'global', command: '', args: ['--log-level'], says: /^option '--log-level <level>' argument missing \(see: zfs-offsite --help\)$/ },
      {
        what: 'a bad ZFS_OFFSITE_LOG_LEVEL',
        kind: 'global',
        command: '',
        args: ['list', target],
        env: { ZFS_OFFSITE_LOG_LEVEL: 'loud' },
        says: /^ZFS_OFFSITE_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent \(got "loud"\)$/,
      },
    ];
    // A lock directory inside the canary directory: taking a lock would show as a new entry.
    const env = { ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') };
    const failures: string[] = [];
    const report = (how: string, c: Case, r: CliResult) => failures.push(...problemsOf(c, r).map((p) => `${how}: ${c.what}: zfs-offsite ${c.args.join(' ')}: ${p}`));
    const started = Date.now();
    for (const c of cases) report('in process', c, await runInProcess(c.args, { ...env, ...c.env }));
    const inProcessMs = Date.now() - started;
    const seen = new Set<string>();
    const asProcess = cases.filter((c) => {
      // Per command what its own definition decides; the global options and values once.
      const key = c.kind === 'global' ? c.what : c.kind.startsWith('log-') ? c.kind : `${c.command} ${c.kind.replace(/ .*/, '')}`;
      return !seen.has(key) && Boolean(seen.add(key));
    });
    const results = await pooled(asProcess.map((c) => () => runCli(c.args, { env: { ...env, ...c.env } })));
    for (const [i, c] of asProcess.entries()) report('as a process', c, results[i]!);
    console.log(`bad-arguments sweep: ${cases.length} cases over ${COMMANDS.length} commands in process (${inProcessMs} ms), ${asProcess.length} of them also as processes`);
    expect(failures).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    expect(cases.length).toBeGreaterThan(100);
  }, 300_000);

  it('--help and --version still print on stdout and exit 0; no command at all is the help on stderr and exit 2', async () => {
    const version = await runCli(['--version']);
    expect([version.code, version.stdout, version.stderr]).toEqual([0, `${TOOL_VERSION}\n`, '']);
    const runs = await pooled([['--help'], ...COMMANDS.map((c) => [c.name(), '--help']), ['help', 'list']].map((args) => () => runCli(args)));
    for (const r of runs) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: zfs-offsite/);
      expect(r.stderr).toBe('');
    }
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toMatch(/^Usage: zfs-offsite/);
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

describe('restore --output on a full file system', () => {
  it('names ENOSPC and the file (exit 1), leaves nothing behind', async () => {
    const fs = tmpfs('size=16k');
    if (!fs) return void console.warn('skipped: cannot mount a tmpfs here (needs root): run the suite as root, as CI does');
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-enospc-'));
    try {
      const env = { ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') };
      const archive = join(dir, 'archive');
      expect((await runCli(['put', '--to', archive], { input: fixtureBytes('zse-tiny-full.zfs'), env })).code).toBe(0);
      const file = join(fs.path, 'stream.zfs');
      const r = await runCli(['restore', 'labpool/zfs-send-tiny', '--from', archive, '--output', file], { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`zfs-offsite: error: cannot write ${file}: ENOSPC: no space left on device, write\n`);
      expect(readdirSync(fs.path)).toEqual([]);
    } finally {
      fs.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
