/**
 * Ctrl-C and SIGTERM (issue 16, item 4). A `put` interrupted while `--bwlimit` holds its uploads
 * back saves a journal listing exactly the chunks stored in the target, says so in one line and
 * exits 130 (SIGINT) or 143 (SIGTERM); the rerun reuses those chunks and the archive restores
 * byte-identical. A `restore --output` interrupted midway exits 130 with one line and leaves no
 * temporary file behind.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../support/cli.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { writeRandomStream } from '../support/random-stream.js';

let dir: string;
let input: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-interrupt-'));
  input = join(dir, 'stream.zfs');
  writeRandomStream(input, 12, 'sig/ds@s1');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Journal {
  chunks: { key: string }[];
}

/** The stream directory's files: chunk object names and the journal, if any. */
function streamFiles(archive: string, dataset: string): { chunks: string[]; journal?: Journal } {
  const files = listFiles(join(archive, dataset));
  const journal = files.find((f) => f.endsWith('/journal.json'));
  const chunks = files.filter((f) => /\/\d{6}\.zst$/.test(f)).map((f) => f.slice(f.lastIndexOf('/') + 1));
  return { chunks: chunks.sort(), ...(journal ? { journal: readJson<Journal>(join(archive, dataset, journal)) } : {}) };
}

/** Starts `args`, waits until `ready()` holds, sends `signal`; exit code and stderr. */
async function interrupt(args: string[], ready: () => boolean, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string; signalled: boolean }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') } });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.resume();
  let done = false;
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => ((done = true), resolve(code))));
  while (!done && !ready()) await sleep(5);
  const signalled = !done;
  child.kill(signal);
  return { code: await exited, stderr, signalled };
}

function journaled(archive: string, dataset: string, atLeast: number): () => boolean {
  return () => {
    try {
      return (streamFiles(archive, dataset).journal?.chunks.length ?? 0) >= atLeast;
    } catch {
      return false; // not there yet, or being renamed into place
    }
  };
}

describe.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)('put interrupted by %s', (signal, exitCode) => {
  it(`saves a journal of every chunk stored, says so, exits ${exitCode}; the rerun resumes`, { timeout: 120_000 }, async () => {
    const archive = join(dir, `archive-${signal}`);
    const args = ['put', '--to', archive, '--input', input, '--chunk-size', '1M', '--bwlimit', '2M', '--parallel', '2'];
    const r = await interrupt(args, journaled(archive, 'sig/ds', 2), signal);
    expect(r.signalled).toBe(true);
    expect(r.code).toBe(exitCode);
    const line = /^zfs-offsite: interrupted: (\d+) chunks? stored; rerun the same command to resume$/m.exec(r.stderr);
    expect(line, r.stderr).not.toBeNull();
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const { chunks, journal } = streamFiles(archive, 'sig/ds');
    // Every chunk object in the target is in the journal, and nothing else: a rerun reuses them all.
    expect(journal!.chunks.map((c) => c.key).sort()).toEqual(chunks);
    expect(Number(line![1])).toBe(chunks.length);
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(chunks.length).toBeLessThan(13);
    expect(listFiles(archive).filter((f) => f.endsWith('manifest.json'))).toEqual([]);

    const rerun = await runCli([...args.filter((a, i) => a !== '--bwlimit' && args[i - 1] !== '--bwlimit'), '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { chunksReused: number }).chunksReused).toBe(chunks.length);
    const out = join(dir, `restored-${signal}.zfs`);
    const restored = await runCli(['restore', '--from', archive, 'sig/ds', '--output', out]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(input))).toBe(true);
  });
});

describe('restore --output interrupted', () => {
  it('exits 130 with one line and leaves neither the file nor its temporary name', { timeout: 120_000 }, async () => {
    const archive = join(dir, 'archive-restore');
    expect((await runCli(['put', '--to', archive, '--input', input, '--chunk-size', '1M', '--no-progress'])).code).toBe(0);
    const outDir = join(dir, 'out');
    rmSync(outDir, { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(outDir);
    // Slow enough to be caught midway: the temporary file exists, the restore is not done.
    const partial = () => readdirSync(outDir).some((f) => f.endsWith('.partial'));
    const r = await interrupt(['restore', '--from', archive, 'sig/ds', '--output', join(outDir, 'x.zfs'), '--parallel', '1'], partial, 'SIGINT');
    expect(r.signalled).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr.trim()).toBe('zfs-offsite: interrupted');
    expect(readdirSync(outDir)).toEqual([]);
  });
});
