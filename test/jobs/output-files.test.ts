/**
 * Files the program creates outside the target (`restore --output FILE`, `--log-file FILE`) in a
 * directory other people may write to: a link, FIFO or file planted at FILE or at a name the
 * program is known to use is never written through, an existing FILE is replaced only with
 * --force, a failure leaves FILE as it was and no temporary file behind, and every refusal is one
 * line with the README's exit code. A canary directory outside holds the victim a link points to.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CLI, type CliResult, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';

const TINY = 'labpool/zfs-send-tiny';
const STREAM = fixtureBytes('zse-tiny-full.zfs');
const VICTIM = 'the victim file: nothing of ours may ever land here\n';

/** What no output may contain: a line of a stack trace. */
const STACK = '    at ';

describe('files created outside the target', () => {
  let root: string;
  let url: string;
  let env: NodeJS.ProcessEnv;
  let out: string;
  let victim: string;
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });
  const restoreTo = (file: string, ...args: string[]) => cli(['restore', '--from', url, TINY, '--output', file, ...args]);

  /** One line `zfs-offsite: error: …`, no stack trace. */
  function expectOneLine(r: CliResult, code: number, pattern: RegExp): void {
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(/^zfs-offsite: error: [^\n]*\n$/);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toContain(STACK);
  }

  function expectVictimUntouched(): void {
    expect(lstatSync(victim).isFile()).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM);
    expect(readdirSync(join(root, 'canary'))).toEqual(['victim']);
  }

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'zfs-offsite-output-files-'));
    mkdirSync(join(root, 'target'));
    mkdirSync(join(root, 'canary'));
    url = `file://${join(root, 'target')}`;
    env = { ZFS_OFFSITE_LOCK_DIR: join(root, 'locks') };
    const put = await cli(['put', '--to', url], STREAM);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    out = mkdtempSync(join(root, 'out-'));
    victim = join(root, 'canary', 'victim');
    writeFileSync(victim, VICTIM);
  });

  describe('restore --output FILE', () => {
    it('does not write through a symlink planted at FILE.partial (the name it used to write to)', async () => {
      const file = join(out, 'stream.zfs');
      symlinkSync(victim, `${file}.partial`);
      const r = await restoreTo(file);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(readFileSync(file).equals(STREAM)).toBe(true);
      expectVictimUntouched();
      expect(readlinkSync(`${file}.partial`)).toBe(victim);
      expect(readdirSync(out).sort()).toEqual(['stream.zfs', 'stream.zfs.partial']);
    });

    it('writes a new FILE readable by its owner only (0600), leaving no temporary file', async () => {
      const file = join(out, 'stream.zfs');
      const r = await restoreTo(file);
      expect(r.code).toBe(0);
      expect(readFileSync(file).equals(STREAM)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600 & ~process.umask());
      expect(readdirSync(out)).toEqual(['stream.zfs']);
    });

    it('refuses a symlink at FILE without --force, before reading the archive (exit 2), and leaves the victim alone', async () => {
      const file = join(out, 'stream.zfs');
      symlinkSync(victim, file);
      expectOneLine(await restoreTo(file), 2, /stream\.zfs exists \(a symbolic link\): --force replaces it/);
      expect(readlinkSync(file)).toBe(victim);
      expectVictimUntouched();
      expect(readdirSync(out)).toEqual(['stream.zfs']);
      // Before anything is read: a "target" that is no archive at all is not even looked at.
      const empty = mkdtempSync(join(root, 'not-an-archive-'));
      const r = await cli(['restore', '--from', `file://${empty}`, TINY, '--output', file]);
      expectOneLine(r, 2, /stream\.zfs exists \(a symbolic link\): --force replaces it/);
    });

    it('with --force replaces the symlink itself by a regular file with the stream, never writing through it', async () => {
      const file = join(out, 'stream.zfs');
      symlinkSync(victim, file);
      const r = await restoreTo(file, '--force');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(lstatSync(file).isFile()).toBe(true);
      expect(readFileSync(file).equals(STREAM)).toBe(true);
      expectVictimUntouched();
      expect(readdirSync(out)).toEqual(['stream.zfs']);
    });

    it('refuses an existing regular FILE without --force (unchanged) and replaces it with --force (the stream, byte for byte)', async () => {
      const file = join(out, 'stream.zfs');
      writeFileSync(file, 'precious\n');
      expectOneLine(await restoreTo(file), 2, /stream\.zfs exists \(a regular file\): --force replaces it/);
      expect(readFileSync(file, 'utf8')).toBe('precious\n');
      const r = await restoreTo(file, '--force');
      expect(r.code).toBe(0);
      expect(readFileSync(file).equals(STREAM)).toBe(true);
      expect(readdirSync(out)).toEqual(['stream.zfs']);
    });

    it('refuses a FIFO or a directory at FILE even with --force, without hanging', async () => {
      const fifo = join(out, 'fifo');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      for (const force of [[], ['--force']]) expectOneLine(await restoreTo(fifo, ...force), 2, /cannot replace .*fifo: it is a FIFO; only a regular file or a symbolic link is replaced/);
      expect(lstatSync(fifo).isFIFO()).toBe(true);
      const dir = join(out, 'dir');
      mkdirSync(dir);
      expectOneLine(await restoreTo(dir, '--force'), 2, /cannot replace .*dir: it is a directory/);
      expect(readdirSync(dir)).toEqual([]);
      expect(readdirSync(out).sort()).toEqual(['dir', 'fifo']);
    });

    it('names a missing directory in one line (exit 2)', async () => {
      const file = join(out, 'no', 'such', 'x');
      const r = await restoreTo(file);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`zfs-offsite: error: cannot create ${file}: no such directory\n`);
      const underFile = join(out, 'plain');
      writeFileSync(underFile, '');
      expectOneLine(await restoreTo(join(underFile, 'x')), 2, /cannot create .*plain\/x: .*plain is not a directory/);
    });

    it('a restore that fails on a corrupt chunk leaves no temporary file and FILE as it was (absent, or the old file under --force)', async () => {
      const streamDir = join(root, 'target', TINY);
      const [stream] = readdirSync(streamDir);
      const chunk = join(streamDir, stream!, '000000.zst');
      const original = readFileSync(chunk);
      const damaged = Buffer.from(original);
      damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
      writeFileSync(chunk, damaged);
      try {
        const file = join(out, 'stream.zfs');
        expectOneLine(await restoreTo(file), 1, /000000\.zst/);
        expect(readdirSync(out)).toEqual([]);
        writeFileSync(file, 'precious\n');
        expectOneLine(await restoreTo(file, '--force'), 1, /000000\.zst/);
        expect(readFileSync(file, 'utf8')).toBe('precious\n');
        expect(readdirSync(out)).toEqual(['stream.zfs']);
      } finally {
        writeFileSync(chunk, original);
      }
    });

    it('a write that fails (file too large: an I/O error like ENOSPC) is one line naming FILE and the error (exit 1), nothing left behind', async () => {
      const file = join(out, 'stream.zfs');
      // A 16-block file size limit: the 52 KB stream cannot be written. XFSZ ignored so the write
      // fails with EFBIG instead of the signal killing the process.
      const args = ['restore', '--from', url, TINY, '--output', file].map((a) => `'${a}'`).join(' ');
      const r = await new Promise<CliResult>((resolve, reject) => {
        const child = spawn('sh', ['-c', `trap '' XFSZ; ulimit -f 16; exec '${process.execPath}' '${CLI}' ${args}`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        const o: Buffer[] = [];
        const e: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => o.push(b));
        child.stderr.on('data', (b: Buffer) => e.push(b));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout: Buffer.concat(o).toString(), stdoutBytes: Buffer.concat(o), stderr: Buffer.concat(e).toString() }));
      });
      expectOneLine(r, 1, new RegExp(`cannot write ${file}: EFBIG: file too large`));
      expect(readdirSync(out)).toEqual([]);
    });

    it('--output - still writes the stream to stdout', async () => {
      const r = await restoreTo('-');
      expect(r.code).toBe(0);
      expect(r.stdoutBytes.equals(STREAM)).toBe(true);
    });
  });

  describe('--log-file FILE', () => {
    const withLog = (log: string, ...args: string[]) => cli(['--log-file', log, 'list', url, ...args]);

    it('refuses a symlink (exit 2) and writes nothing through it', async () => {
      const log = join(out, 'zfs-offsite.log');
      symlinkSync(victim, log);
      expectOneLine(await withLog(log), 2, /cannot open the log file .*zfs-offsite\.log: it is a symbolic link, not a regular file/);
      expect(readlinkSync(log)).toBe(victim);
      expectVictimUntouched();
      // Also for a command that logs (put), before it reads its input.
      expectOneLine(await cli(['--log-file', log, 'put', '--to', url], STREAM), 2, /it is a symbolic link/);
      expectVictimUntouched();
    });

    it('refuses a FIFO without hanging, with or without a reader, and writes nothing into it', async () => {
      const fifo = join(out, 'fifo.log');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      expectOneLine(await withLog(fifo), 2, /cannot open the log file .*fifo\.log: it is a FIFO, not a regular file/);
      const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        expectOneLine(await withLog(fifo), 2, /it is a FIFO, not a regular file/);
        let got = 0;
        try {
          got = readSync(reader, Buffer.alloc(4096));
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).toBe('EAGAIN');
        }
        expect(got).toBe(0);
      } finally {
        closeSync(reader);
      }
    });

    it('refuses a directory, and names a missing directory in one line (exit 2)', async () => {
      expectOneLine(await withLog(out), 2, /cannot open the log file .*: it is a directory, not a regular file/);
      const log = join(out, 'no', 'such', 'zfs-offsite.log');
      const r = await withLog(log);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`zfs-offsite: error: cannot open the log file ${log}: no such directory\n`);
    });

    it('creates a missing log file 0600 and appends to it across runs', async () => {
      const log = join(out, 'zfs-offsite.log');
      // A fresh target, so that both runs archive something (and log it).
      const fresh = `file://${mkdtempSync(join(root, 'target-'))}`;
      const first = await cli(['--log-file', log, 'put', '--to', fresh], STREAM);
      expect(first.code).toBe(0);
      expect(statSync(log).mode & 0o777).toBe(0o600 & ~process.umask());
      const before = readFileSync(log, 'utf8');
      expect(before.split('\n').filter(Boolean).length).toBeGreaterThan(0);
      const second = await cli(['--log-file', log, 'put', '--to', fresh], fixtureBytes('zse-tiny-incremental.zfs'));
      expect(second.code).toBe(0);
      const after = readFileSync(log, 'utf8');
      expect(after.startsWith(before)).toBe(true);
      expect(after.length).toBeGreaterThan(before.length);
      for (const line of after.split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
      expect(existsSync(victim)).toBe(true);
      expect(readdirSync(out)).toEqual(['zfs-offsite.log']);
    });
  });
});
