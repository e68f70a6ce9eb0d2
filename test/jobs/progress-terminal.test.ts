/**
 * The progress line on a real terminal (issue 16, item 4): the CLI runs under util-linux
 * `script` (a pty) set to 80 columns. `put --input FILE` shows total, percent and ETA; `send`
 * the estimate of `zfs send -nvP` (the zfs stand-in answers it as OpenZFS does); restore and
 * verify too — and no line drawn on the terminal is longer than 80 columns.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';
import { writeRandomStream } from '../support/random-stream.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const ESC = String.fromCharCode(27);
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI on a pty of `columns` columns; what the terminal received. */
function onTerminal(args: string[], columns: number, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const command = `stty cols ${columns}; exec ${[process.execPath, CLI, ...args].map(shellQuote).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ZFS_OFFSITE_TARGET: undefined, ...env } });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: Buffer.concat(out).toString() }));
  });
}

/**
 * Every progress line drawn: each starts with `\r` and erase-line and is followed by the next
 * draw or the final erase (`\r`), where the summary printed once ends in a newline.
 */
function drawn(output: string): string[] {
  return [...output.matchAll(new RegExp(`\r${ESC}\\[K([^\r\n${ESC}]+)(?=\r(?!\n))`, 'g'))].map((m) => m[1]!);
}

/** The lines as the terminal shows them: split at \r and \n, escape sequences removed. */
function shownLines(output: string): string[] {
  return output
    .replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), '')
    .split(/[\r\n]/)
    .filter((l) => l.length > 0);
}

let dir: string;
let archive: string;
let input: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-tty-'));
  archive = join(dir, 'archive');
  input = join(dir, 'stream.zfs');
  writeRandomStream(input, 6, 'tty/ds@s1');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('progress on an 80-column terminal', () => {
  it('put --input FILE shows size, total, percent, rate and ETA, within 80 columns', { timeout: 60_000 }, async () => {
    const r = await onTerminal(['put', '--to', archive, '--input', input, '--chunk-size', '1M', '--bwlimit', '3M'], 80);
    expect(r.code).toBe(0);
    const lines = shownLines(r.output);
    const total = (statSync(input).size / 1024 / 1024).toFixed(2);
    const progress = lines.filter((l) => l.startsWith('archiving'));
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.some((l) => new RegExp(`^archiving  \\d+\\.\\d+ MiB / ${total} MiB  \\d+%  ETA \\d+s  `).test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('archived '))).toBe(true);
    expect(drawn(r.output).length).toBeGreaterThan(1);
    for (const l of drawn(r.output)) expect(l.length, l).toBeLessThanOrEqual(80);
  });

  it('restore --output and verify --deep lines fit 80 columns', { timeout: 60_000 }, async () => {
    const restored = await onTerminal(['restore', '--from', archive, 'tty/ds', '--output', join(dir, 'out.zfs')], 80);
    expect(restored.code).toBe(0);
    expect(readFileSync(join(dir, 'out.zfs')).equals(readFileSync(input))).toBe(true);
    const verified = await onTerminal(['verify', archive, '--deep'], 80);
    expect(verified.code).toBe(0);
    const lines = [...drawn(restored.output), ...drawn(verified.output)];
    expect(lines.filter((l) => /^stream 1\/1 {2}[\d.]+ MiB \/ 6\.01 MiB {2}\d+%/.test(l))).not.toEqual([]);
    expect(lines.filter((l) => l.startsWith('verifying  '))).not.toEqual([]);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
  });

  it('send shows the zfs send -nvP estimate as its total; a failed estimate only drops the total', { timeout: 60_000 }, async () => {
    const guid = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
    const state = {
      log: join(dir, 'zfs.log'),
      datasets: { 'labpool/tiny': { encryption: 'off', snapshots: [{ name: 'base', guid, createtxg: 100, creation: 1786111636 }] } },
      streams: { [`0:${guid}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') },
      send: { estimate: 3 * 1024 * 1024 },
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    const env = { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: join(dir, 'state.json') };
    const sent = await onTerminal(['send', 'labpool/tiny@base', '--to', join(dir, 'a1'), '--no-bookmark'], 80, env);
    expect(sent.code).toBe(0);
    expect(shownLines(sent.output).some((l) => /^archiving {2}.* \/ ~3\.00 MiB {2}\d+%/.test(l))).toBe(true);
    const calls = readFileSync(state.log, 'utf8').split('\n').filter(Boolean);
    expect(calls).toContain(JSON.stringify(['send', '-n', '-v', '-P', '-L', '-c', 'labpool/tiny@base']));

    writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...state, send: { estimateFails: 'invalid option P' } }));
    const unestimated = await onTerminal(['send', 'labpool/tiny@base', '--to', join(dir, 'a2'), '--no-bookmark'], 80, env);
    expect(unestimated.code).toBe(0);
    const shown = shownLines(unestimated.output);
    expect(shown.some((l) => /^archiving {2}[\d.]+ (B|KiB|MiB) {2}/.test(l))).toBe(true);
    expect(shown.some((l) => l.includes(' / '))).toBe(false);
  });
});
