/**
 * `restore` into `zfs receive` (not --output), with the zfs stand-in (test/support/zfs-stand-in.mjs)
 * as the receiving side: the bytes each receive gets, its flags, and the one-line error when it fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));

/** ~3 MiB of incompressible data: far more than a pipe holds, so a receive that quits breaks the pipe. */
const BIG_FULL = (() => {
  const records: ContentRecord[] = Array.from({ length: 24 }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * 128 * 1024, data: randomBytes(128 * 1024), compression: 2 }));
  return Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/big@a', features: RAW_FEATURES, records }] }).bytes);
})();

let dir: string;
let archive: string;
let n = 0;

/** A fresh stand-in state (no datasets: every destination is new) and its paths. */
function standIn(receive: object = {}): { env: NodeJS.ProcessEnv; received: string; calls(): string[][] } {
  const state = join(dir, `state-${++n}.json`);
  const log = join(dir, `zfs-${n}.log`);
  const received = join(dir, `received-${n}`);
  writeFileSync(log, '');
  writeFileSync(state, JSON.stringify({ log, datasets: {}, streams: {}, receive: { into: received, ...receive } }));
  return {
    env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: state },
    received,
    calls: () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]),
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-receive-'));
  archive = join(dir, 'archive');
  mkdirSync(archive);
  for (const input of [fixtureBytes('zse-tiny-full.zfs'), fixtureBytes('zse-tiny-incremental.zfs'), BIG_FULL]) {
    expect((await runCli(['put', '--to', archive, '--chunk-size', '1M'], { input })).code).toBe(0);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('restore into zfs receive', () => {
  it('replays the chain, one receive per stream with the flags asked for, byte-identically', async () => {
    const zfs = standIn();
    const r = await runCli(['restore', '--from', archive, 'labpool/zfs-send-tiny', '--into', 'tank/restored', '--force', '--resumable', '--no-mount'], { env: zfs.env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(zfs.received).equals(Buffer.concat([fixtureBytes('zse-tiny-full.zfs'), fixtureBytes('zse-tiny-incremental.zfs')]))).toBe(true);
    const receives = zfs.calls().filter((c) => c[0] === 'receive');
    expect(receives).toEqual([
      ['receive', '-F', '-s', '-u', 'tank/restored'],
      ['receive', '-F', '-s', '-u', 'tank/restored'],
    ]);
  });

  it('a receive that quits part-way: its own error in one line, exit 1, its resumable state discarded', async () => {
    const zfs = standIn({ failAfterBytes: 100_000, stderr: 'cannot receive new filesystem stream: out of space' });
    const r = await runCli(['restore', '--from', archive, 'pool/big', '--into', 'tank/big', '--resumable'], { env: zfs.env });
    expect(r.code).toBe(1);
    // Not "the reader of the output went away (EPIPE)": the receive that died says why.
    expect(r.stderr).toMatch(/^zfs-offsite: error: zfs receive -s tank\/big failed \(exit 1\) on stream \S+ \(pool\/big@a\): cannot receive new filesystem stream: out of space\n$/);
    expect(readFileSync(zfs.received).length).toBe(100_000);
    expect(zfs.calls().filter((c) => c[0] === 'receive')).toEqual([
      ['receive', '-s', 'tank/big'],
      ['receive', '-A', 'tank/big'],
    ]);
  });

  it('a receive that rejects a whole stream: its error in one line, exit 1, no later stream received', async () => {
    const zfs = standIn({ exitCode: 1, stderr: 'cannot receive: invalid backup stream' });
    const r = await runCli(['restore', '--from', archive, 'labpool/zfs-send-tiny', '--into', 'tank/restored'], { env: zfs.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^zfs-offsite: error: zfs receive tank\/restored failed \(exit 1\) on stream \S+ \(labpool\/zfs-send-tiny@base\): cannot receive: invalid backup stream\n$/);
    expect(zfs.calls().filter((c) => c[0] === 'receive')).toEqual([['receive', 'tank/restored']]);
  });
});
