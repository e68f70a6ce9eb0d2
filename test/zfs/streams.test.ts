/**
 * The `zfs send` and `zfs receive` handles (src/zfs/streams.ts): the stream or sink, a completion
 * that fails with ZfsCommandError (exit code or signal, stderr), and abort — run against the zfs
 * stand-in (test/support/zfs-stand-in.mjs) and, for processes that will not stop, sh.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ByteSource } from '../../src/util/byte-source.js';
import { OperationalError } from '../../src/util/errors.js';
import { ZfsCommandError } from '../../src/zfs/process.js';
import { Zfs } from '../../src/zfs/zfs.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const FULL = fixtureBytes('zse-tiny-full.zfs');
const GUID = firstBeginGuids(FULL).toguid.toString();

let dir: string;
let zfs: Zfs;

const calls = () =>
  readFileSync(join(dir, 'zfs.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as string[]);
const received = () => (existsSync(join(dir, 'received')) ? readFileSync(join(dir, 'received')) : Buffer.alloc(0));

function setState(extra: object = {}): void {
  const datasets = { 'tank/fs': { encryption: 'off', snapshots: [{ name: 'a', guid: GUID, createtxg: 1, creation: 1 }] } };
  const streams = { [`0:${GUID}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') };
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ log: join(dir, 'zfs.log'), datasets, streams, receive: { into: join(dir, 'received') }, ...extra }));
}

async function readAll(source: ByteSource): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(64 * 1024);
    const n = await source.fill(buf);
    parts.push(buf.subarray(0, n));
    if (n < buf.length) return Buffer.concat(parts);
  }
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** Writes `bytes` in 64 KiB pieces until done or the sink fails; resolves with the first write error. */
async function writeAll(sink: NodeJS.WritableStream, bytes: Buffer): Promise<Error | undefined> {
  let failure: Error | undefined;
  sink.on('error', (err: Error) => (failure ??= err));
  for (let at = 0; at < bytes.length && !failure; at += 64 * 1024) {
    await new Promise<void>((resolve) => sink.write(bytes.subarray(at, at + 64 * 1024), (err) => ((failure ??= err ?? undefined), resolve())));
  }
  return failure;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-streams-'));
  writeFileSync(join(dir, 'zfs.log'), '');
  setState();
  process.env.ZFS_STAND_IN_STATE = join(dir, 'state.json');
  zfs = new Zfs([process.execPath, STAND_IN]);
});

afterEach(() => {
  delete process.env.ZFS_STAND_IN_STATE;
  rmSync(dir, { recursive: true, force: true });
});

describe('zfs send handle', () => {
  it('streams what zfs send writes and completes on exit 0', async () => {
    const send = zfs.send(['-L', 'tank/fs@a']);
    expect((await readAll(send.stream)).equals(FULL)).toBe(true);
    await expect(send.completion).resolves.toBeUndefined();
    expect(await send.abort()).toBeUndefined();
    expect(calls()).toEqual([['send', '-L', 'tank/fs@a']]);
  });

  it('fails with the exit code and error output of a send that exits non-zero', async () => {
    setState({ send: { exitCode: 1, stderr: 'warning: cannot send: I/O error' } });
    const send = zfs.send(['tank/fs@a']);
    await readAll(send.stream);
    const err = await failureOf(send.completion);
    expect(err).toBeInstanceOf(ZfsCommandError);
    expect(err).toMatchObject({ args: ['send', 'tank/fs@a'], exitCode: 1, signal: null, stopped: false });
    expect((err as Error).message).toBe('zfs send tank/fs@a failed (exit 1): warning: cannot send: I/O error');
    expect((err as ZfsCommandError).explained({ outcome: 'nothing was committed' }).message).toBe('zfs send tank/fs@a failed (exit 1): warning: cannot send: I/O error; nothing was committed');
    // Its own failure, with something to say: abort hands it over.
    expect(await send.abort()).toBe(err);
  });

  it('names the signal that killed a send, and abort hands that failure over', async () => {
    setState({ send: { killAfterBytes: 30_000 } });
    const send = zfs.send(['tank/fs@a']);
    expect((await readAll(send.stream)).length).toBe(30_000);
    const err = await failureOf(send.completion);
    expect(err).toMatchObject({ exitCode: null, signal: 'SIGKILL', stopped: false });
    expect((err as Error).message).toBe('zfs send tank/fs@a was killed by SIGKILL: no error output');
    expect(await send.abort()).toBe(err);
  });

  it('abort stops a running send with SIGTERM; that is no failure of its own', async () => {
    const send = new Zfs(['sh', '-c', 'exec sleep 30', 'sh']).send(['tank/fs@a']);
    const started = Date.now();
    expect(await send.abort()).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await failureOf(send.completion)).toMatchObject({ signal: 'SIGTERM', stopped: true });
    await expect(send.stream.fill(Buffer.alloc(1))).rejects.toThrow();
  });

  it('abort kills a send that ignores SIGTERM once the grace period is over', async () => {
    const send = new Zfs(['sh', '-c', 'trap "" TERM; exec sleep 30', 'sh']).send(['tank/fs@a'], { graceMs: 200 });
    await new Promise((r) => setTimeout(r, 100)); // the trap is set
    const started = Date.now();
    expect(await send.abort()).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await failureOf(send.completion)).toMatchObject({ signal: 'SIGKILL', stopped: true });
  });

  it('fails with "cannot run" when the command does not exist', async () => {
    const send = new Zfs(['/nonexistent/zfs']).send(['tank/fs@a']);
    const err = await failureOf(send.completion);
    expect(err).toBeInstanceOf(OperationalError);
    expect(err).not.toBeInstanceOf(ZfsCommandError);
    expect((err as Error).message).toBe('cannot run zfs send: spawn /nonexistent/zfs ENOENT');
    expect(await send.abort()).toBeUndefined();
  });

  it('keeps only the tail of a large error output', async () => {
    const script = 'head -c 200000 /dev/zero | tr "\\0" x >&2; echo >&2; echo the last words >&2; exit 3';
    const send = new Zfs(['sh', '-c', script, 'sh']).send([]);
    const err = (await failureOf(send.completion)) as ZfsCommandError;
    expect(err.exitCode).toBe(3);
    expect(err.stderr.length).toBeLessThanOrEqual(64 * 1024);
    expect(err.stderr.length).toBeGreaterThan(60 * 1024);
    expect(err.stderr.endsWith('the last words\n')).toBe(true);
  });
});

describe('zfs receive handle', () => {
  it('receives what is written to its sink, with the flags asked for', async () => {
    const receive = zfs.receive('tank/new', { force: true, resumable: true, noMount: true });
    expect(receive.args).toEqual(['receive', '-F', '-s', '-u', 'tank/new']);
    expect(await writeAll(receive.sink, FULL)).toBeUndefined();
    await receive.finish();
    expect(received().equals(FULL)).toBe(true);
    expect(calls()).toEqual([['receive', '-F', '-s', '-u', 'tank/new']]);
  });

  it('a receive that fails part-way: writes fail, completion says why, abort discards the resumable state', async () => {
    setState({ receive: { into: join(dir, 'received'), failAfterBytes: 100_000, stderr: 'cannot receive new filesystem stream: out of space' } });
    const receive = zfs.receive('tank/new', { resumable: true });
    const big = Buffer.concat(Array.from({ length: 64 }, () => FULL)); // several MiB: more than a pipe holds
    const writeError = await writeAll(receive.sink, big);
    expect((writeError as NodeJS.ErrnoException | undefined)?.code).toBe('EPIPE');
    const ended = await receive.abort();
    expect(ended).toBeInstanceOf(ZfsCommandError);
    expect(ended).toMatchObject({ args: ['receive', '-s', 'tank/new'], exitCode: 1, stopped: false });
    expect((ended as ZfsCommandError).explained({ during: 'on stream S (tank/fs@a)' }).message).toBe(
      'zfs receive -s tank/new failed (exit 1) on stream S (tank/fs@a): cannot receive new filesystem stream: out of space',
    );
    await expect(receive.completion).rejects.toBe(ended);
    expect(received().length).toBe(100_000);
    expect(calls()).toEqual([
      ['receive', '-s', 'tank/new'],
      ['receive', '-A', 'tank/new'],
    ]);
  });

  it('a receive that rejects the whole stream fails finish() with its exit code', async () => {
    setState({ receive: { into: join(dir, 'received'), exitCode: 1, stderr: 'cannot receive: invalid backup stream' } });
    const receive = zfs.receive('tank/new');
    await writeAll(receive.sink, FULL);
    const err = await failureOf(receive.finish());
    expect((err as Error).message).toBe('zfs receive tank/new failed (exit 1): cannot receive: invalid backup stream');
  });

  it('abort of a receive that is not resumable leaves no receive -A behind', async () => {
    const receive = zfs.receive('tank/new');
    await writeAll(receive.sink, FULL.subarray(0, 1000));
    while (calls().length === 0) await new Promise((r) => setTimeout(r, 20)); // it runs
    await receive.abort();
    expect(calls()).toEqual([['receive', 'tank/new']]);
  });

  it('checks the dataset name before anything runs', () => {
    expect(() => zfs.receive('tank/new; rm -rf /')).toThrow(/invalid ZFS dataset name/);
    expect(calls()).toEqual([]);
  });
});
