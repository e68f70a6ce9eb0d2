/**
 * Issue 16.5, "smaller ones", as a user meets them on the command line (the built CLI, a real
 * local-directory target, the zfs stand-in for `send`): a put whose base the archive lacks is
 * warned about; put/send --dry-run say what would be sent and write nothing; restore of several
 * streams to files; `--output -` on a terminal; aws-cli's --endpoint-url/--profile; -q/-v.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { addSettingFlags, settingsFromFlags } from '../../src/cli/setting-flags.js';
import { listFiles } from '../support/archive-files.js';
import { CLI, runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const TINY = 'labpool/zfs-send-tiny';
const FULL = fixtureBytes('zse-tiny-full.zfs');
const INCR = fixtureBytes('zse-tiny-incremental.zfs');
const BASE_GUID = firstBeginGuids(FULL).toguid.toString();
const INCR_GUID = firstBeginGuids(INCR).toguid.toString();

let dir: string;
let archive: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-conventions-'));
  archive = join(dir, 'archive');
  env = { ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });
const put = (input: Buffer, ...args: string[]) => cli(['put', '--to', archive, ...args], input);

/** Every file below `root` with its bytes: what "the target is unchanged" compares. */
function snapshotOf(root: string): Record<string, string> {
  if (!existsSync(root)) return {};
  return Object.fromEntries(listFiles(root).map((f) => [f, readFileSync(join(root, f)).toString('base64')]));
}

/** Runs the CLI with a terminal as stdin, stdout and stderr (util-linux script): returns what the terminal showed and the exit code. */
function underTerminal(args: string[]): { code: number | null; screen: string } {
  const line = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qec', line, '/dev/null'], { env: { ...process.env, ...env, ZFS_OFFSITE_TARGET: '' }, encoding: 'utf8' });
  return { code: r.status, screen: r.stdout };
}

describe('put of an incremental whose base is not in the archive (16.5a)', () => {
  it('is archived (exit 0) with one warning line naming the base GUID and how to restore it', async () => {
    const r = await put(INCR);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^archived labpool\/zfs-send-tiny@incremental \(incremental from guid /);
    expect(r.stderr).toBe(
      `zfs-offsite: warning: the base of this incremental stream (the snapshot with GUID ${BASE_GUID}, from its BEGIN record) is not in the archive of ${TINY}: ` +
        'put the stream that ends at that snapshot too, or a restore needs that snapshot on the receiving pool already\n',
    );
  });

  it('says nothing when the base is there', async () => {
    expect((await put(FULL)).code).toBe(0);
    const r = await put(INCR);
    expect([r.code, r.stderr]).toEqual([0, '']);
  });
});

describe('put --dry-run (16.5b)', () => {
  it('says dataset, snapshot, base and the size of an --input FILE, and writes nothing (no archive marker either)', async () => {
    const file = join(dir, 'incr.zfs');
    writeFileSync(file, INCR);
    const r = await put(Buffer.alloc(0), '--input', file, '--dry-run');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      [
        `would archive ${TINY}@incremental (incremental from the snapshot with GUID ${BASE_GUID}) → ${archive}/${TINY}`,
        `  size: 11.2 KiB stream (${INCR.length} bytes)`,
        `  the archive does not hold the base (GUID ${BASE_GUID}): a restore needs it on the receiving pool already`,
        `  no archive at ${archive} yet: it would be created`,
        'nothing was written (dry run)',
        '',
      ].join('\n'),
    );
    expect(existsSync(archive)).toBe(false);
  });

  it('--json on stdin: full or incremental, the base by name when archived; the target is unchanged', async () => {
    expect((await put(FULL)).code).toBe(0);
    const before = snapshotOf(archive);
    const r = await put(INCR, '--dry-run', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      dryRun: true,
      dataset: TINY,
      snapshot: `${TINY}@incremental`,
      kind: 'incremental',
      base: { name: `${TINY}@base`, guid: BASE_GUID, inArchive: true },
      raw: false,
      archiveExists: true,
      alreadyArchived: false,
    });
    const again = await put(FULL, '--dry-run', '--json', '--dataset', 'other/name');
    expect(JSON.parse(again.stdout)).toMatchObject({ dataset: 'other/name', snapshot: 'other/name@base', kind: 'full', alreadyArchived: false });
    expect(snapshotOf(archive)).toEqual(before);
  });
});

describe('send --dry-run (16.5b)', () => {
  let state: object;
  const stateFile = () => join(dir, 'state.json');
  const send = (...args: string[]) => {
    writeFileSync(stateFile(), JSON.stringify(state));
    return runCli(['send', ...args, '--to', archive], { env: { ...env, ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: stateFile() } });
  };
  const zfsSends = () =>
    readFileSync(join(dir, 'zfs.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[])
      // `send -n` is zfs's estimate: it sends nothing.
      .filter((a) => a[0] === 'send' && a[1] !== '-n');

  beforeEach(() => {
    state = {
      log: join(dir, 'zfs.log'),
      send: { estimate: 3 * 1024 * 1024 },
      datasets: {
        [TINY]: {
          encryption: 'off',
          snapshots: [
            { name: 'base', guid: BASE_GUID, createtxg: 100, creation: 1786111636 },
            { name: 'incremental', guid: INCR_GUID, createtxg: 200, creation: 1786111636 },
          ],
        },
      },
      streams: { [`0:${BASE_GUID}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs'), [`${BASE_GUID}:${INCR_GUID}`]: join(FIXTURE_DIR, 'zse-tiny-incremental.zfs') },
    };
    writeFileSync(join(dir, 'zfs.log'), '');
  });

  it('names the base the planner would choose and the zfs send it would run; runs no zfs send, writes nothing', async () => {
    const first = await send(`${TINY}@incremental`, '--dry-run');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      [
        `would archive ${TINY}@incremental (full) → ${archive}/${TINY}`,
        `  zfs send -L -c ${TINY}@incremental`,
        '  size: ~3.00 MiB stream (zfs send -nvP estimates 3145728 bytes)',
        `  no archive at ${archive} yet: it would be created`,
        'nothing was written (dry run)',
        '',
      ].join('\n'),
    );
    expect(existsSync(archive)).toBe(false);
    expect((await send(`${TINY}@base`)).code).toBe(0);
    const before = snapshotOf(archive);
    const sendsBefore = zfsSends().length;
    const r = await send(`${TINY}@incremental`, '--dry-run', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toEqual({
      dryRun: true,
      dataset: TINY,
      snapshot: `${TINY}@incremental`,
      kind: 'incremental',
      base: { name: `${TINY}@base`, guid: BASE_GUID, inArchive: true },
      raw: false,
      archiveExists: true,
      alreadyArchived: false,
      sendArgs: ['zfs', 'send', '-L', '-c', '-i', `${TINY}@base`, `${TINY}@incremental`],
      bytes: 3145728,
      estimated: true,
    });
    expect(zfsSends().length).toBe(sendsBefore);
    expect(snapshotOf(archive)).toEqual(before);
    const full = await send(`${TINY}@incremental`, '--dry-run', '--full', '--json');
    expect(JSON.parse(full.stdout)).toMatchObject({ kind: 'full', sendArgs: ['zfs', 'send', '-L', '-c', `${TINY}@incremental`] });
    // A zfs that cannot estimate: the plan says the size is not known, and still exits 0.
    state = { ...state, send: { estimateFails: 'invalid option: n' } };
    const unknown = await send(`${TINY}@incremental`, '--dry-run');
    expect([unknown.code, unknown.stdout]).toEqual([0, expect.stringContaining('  size: not known before the stream is read\n')]);
  });
});

describe('restore of several streams to files (16.5c)', () => {
  beforeEach(async () => {
    expect((await put(FULL)).code).toBe(0);
    expect((await put(INCR)).code).toBe(0);
  });

  it('--output-dir writes one file per stream, numbered in order, and prints the zfs receive commands', async () => {
    const out = join(dir, 'out');
    const r = await cli(['restore', '--from', archive, TINY, '--output-dir', out, '--no-mount']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const files = [`0001-labpool_zfs-send-tiny@base.zstream`, `0002-labpool_zfs-send-tiny@incremental.zstream`];
    expect(readdirSync(out)).toEqual(files);
    expect(readFileSync(join(out, files[0]!)).equals(FULL)).toBe(true);
    expect(readFileSync(join(out, files[1]!)).equals(INCR)).toBe(true);
    expect(r.stdout).toContain(`wrote one file per stream; receive them in this order:\n  zfs receive -u ${TINY} < ${join(out, files[0]!)}\n  zfs receive -u ${TINY} < ${join(out, files[1]!)}\n`);
    // Existing files are refused before anything is read, and replaced with --force.
    const again = await cli(['restore', '--from', archive, TINY, '--output-dir', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`zfs-offsite: error: ${join(out, files[0]!)} exists (a regular file): --force replaces it\n`);
    writeFileSync(join(out, files[1]!), 'stale');
    expect((await cli(['restore', '--from', archive, TINY, '--output-dir', out, '--force', '--json'])).code).toBe(0);
    expect(readFileSync(join(out, files[1]!)).equals(INCR)).toBe(true);
    expect(readdirSync(out)).toEqual(files);
  });

  it('--output-dir --dry-run lists the files and creates nothing; --output and --output-dir together are refused', async () => {
    const out = join(dir, 'never');
    const r = await cli(['restore', '--from', archive, TINY, '--output-dir', out, '--dry-run', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { files: { path: string }[] }).files.map((f) => f.path)).toEqual([
      join(out, '0001-labpool_zfs-send-tiny@base.zstream'),
      join(out, '0002-labpool_zfs-send-tiny@incremental.zstream'),
    ]);
    expect(existsSync(out)).toBe(false);
    const both = await cli(['restore', '--from', archive, TINY, '--output-dir', out, '--output', join(dir, 'x')]);
    expect([both.code, both.stderr]).toEqual([2, 'zfs-offsite: error: --output and --output-dir exclude each other\n']);
    const noParent = await cli(['restore', '--from', archive, TINY, '--output-dir', join(dir, 'no', 'such')]);
    expect([noParent.code, noParent.stderr]).toEqual([2, `zfs-offsite: error: cannot create ${join(dir, 'no', 'such')}: no such directory\n`]);
  });

  it('--output FILE with several streams still writes them in order, and says that one zfs receive reads only the first', async () => {
    const file = join(dir, 'all.zfs');
    const r = await cli(['restore', '--from', archive, TINY, '--output', file]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(readFileSync(file).equals(Buffer.concat([FULL, INCR]))).toBe(true);
    expect(r.stdout).toContain(`  ${file} holds the 2 streams one after another, and one zfs receive reads only the first: use --output-dir DIR for one file per stream\n`);
    const one = await cli(['restore', '--from', archive, `${TINY}@base`, '--output', join(dir, 'one.zfs')]);
    expect(one.stdout).not.toContain('--output-dir');
  });
});

describe('terminals (16.5d, 16.5g)', () => {
  beforeEach(async () => {
    expect((await put(FULL)).code).toBe(0);
  });

  it('--output - is refused when stdout is a terminal (exit 2, one line), and nothing binary reaches it', () => {
    const r = underTerminal(['restore', '--from', archive, TINY, '--output', '-']);
    expect(r.code).toBe(2);
    expect(r.screen).toBe('zfs-offsite: error: refusing to write a binary stream to a terminal: redirect it (--output - | zfs receive …, or > FILE), or give --output FILE\r\n');
    // --dry-run writes no stream: allowed.
    expect(underTerminal(['restore', '--from', archive, TINY, '--output', '-', '--dry-run']).code).toBe(0);
  });

  it('-q turns the progress line off as --no-progress does', () => {
    const file = (name: string) => join(dir, name);
    const shown = underTerminal(['restore', '--from', archive, TINY, '--output', file('a.zfs')]);
    expect(shown.code).toBe(0);
    expect(shown.screen).toContain('\r\x1b[K');
    const quiet = underTerminal(['-q', 'restore', '--from', archive, TINY, '--output', file('b.zfs')]);
    expect(quiet.code).toBe(0);
    expect(quiet.screen).not.toContain('\x1b[K');
    expect(quiet.screen).toMatch(/^restored labpool\/zfs-send-tiny@base/);
  });
});

describe('-q and -v (16.5g)', () => {
  it('-v logs what is done (info), -vv debug, -q hides warnings; -q with -v or --log-level is a usage error', async () => {
    const verbose = await put(FULL, '-v');
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toMatch(/^zfs-offsite: info: stream committed /m);
    expect(verbose.stderr).not.toMatch(/zfs-offsite: debug:/);
    mkdirSync(join(dir, 'other'));
    const debug = await cli(['-vv', 'list', archive]);
    expect(debug.code).toBe(0);
    const quiet = await cli(['put', '--to', join(dir, 'other'), '-q'], INCR);
    expect([quiet.code, quiet.stderr]).toEqual([0, '']);
    for (const args of [
      ['-q', '-v', 'list', archive],
      ['--quiet', '--verbose', 'list', archive],
      ['-q', '--log-level', 'info', 'list', archive],
      ['-v', '--log-level', 'info', 'list', archive],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^zfs-offsite: error: (-q and -v|-q and --log-level|-v and --log-level) exclude each other\n$/);
    }
  });
});

describe("aws-cli's --endpoint-url and --profile (16.5f)", () => {
  it('give the very values of --s3-endpoint and --s3-profile', () => {
    const parse = (args: string[]) => settingsFromFlags(addSettingFlags(new Command('x').exitOverride(), 'target').parse(args, { from: 'user' }).opts(), ['target']);
    const aws = parse(['--endpoint-url', 'https://s3.example.test', '--profile', 'backup']);
    expect(aws).toEqual(parse(['--s3-endpoint', 'https://s3.example.test', '--s3-profile', 'backup']));
    expect(aws).toMatchObject({ s3Endpoint: 'https://s3.example.test', s3Profile: 'backup' });
  });

  it('are the --s3-endpoint and --s3-profile settings: same checks, and giving both spellings is refused', async () => {
    expect((await put(FULL)).code).toBe(0);
    const bad = await cli(['list', archive, '--endpoint-url', 'ftp://example.test']);
    expect([bad.code, bad.stderr]).toEqual([2, 'zfs-offsite: error: invalid --endpoint-url: "ftp://example.test" (expected an http:// or https:// URL without credentials)\n']);
    const creds = await cli(['list', archive, '--endpoint-url', 'https://key:secret@example.test']);
    expect(creds.code).toBe(2);
    expect(creds.stderr).not.toContain('secret');
    const both = await cli(['list', archive, '--endpoint-url', 'https://a.test', '--s3-endpoint', 'https://b.test']);
    expect([both.code, both.stderr]).toEqual([2, 'zfs-offsite: error: --s3-endpoint and --endpoint-url are the same setting: give one of them\n']);
    const profiles = await cli(['list', archive, '--profile', 'a', '--s3-profile', 'b']);
    expect([profiles.code, profiles.stderr]).toEqual([2, 'zfs-offsite: error: --s3-profile and --profile are the same setting: give one of them\n']);
    // A local target takes them as it takes --s3-endpoint: they change nothing there.
    const ok = await cli(['list', archive, '--endpoint-url', 'https://s3.example.test', '--profile', 'backup']);
    expect(ok.code).toBe(0);
    for (const command of ['put', 'send', 'list', 'verify', 'restore', 'prune']) {
      const help = await cli([command, '--help']);
      expect(help.stdout, command).toMatch(/--endpoint-url <url> +the same as --s3-endpoint/);
      expect(help.stdout, command).toMatch(/--profile <name> +the same as --s3-profile/);
    }
  });
});

describe('Node.js version of install.sh and README (16.5h)', () => {
  it('install.sh refuses Node.js 18 (Debian 12 nodejs) pointing to nodejs.org, as README says, and does nothing else', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // A `node` that is Debian 12's: version 18.
    writeFileSync(join(bin, 'node'), '#!/bin/sh\ncase "$1" in --version) echo v18.19.0 ;; *) echo 18 ;; esac\n', { mode: 0o755 });
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const r = spawnSync('bash', [join(root, 'scripts/install.sh')], { env: { PATH: `${bin}:/usr/bin:/bin`, HOME: dir }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "install.sh: Node.js 20 or newer is required (found: v18.19.0); Debian 12's nodejs package is 18, too old: install Node.js 20 or newer as https://nodejs.org/en/download describes (e.g. its prebuilt Linux binaries), then run this again\n",
    );
    expect(readdirSync(dir).sort()).toEqual(['bin']);
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toContain("Debian 12's own `nodejs` package is Node.js 18,\ntoo old: install Node.js 20 or newer as <https://nodejs.org/en/download> describes");
    expect(readme).not.toMatch(/apt(-get)? install[^\n]*nodejs/);
  });
});
