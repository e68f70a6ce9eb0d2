/**
 * `send` against the zfs stand-in (test/support/zfs-stand-in.mjs), which serves real OpenZFS
 * streams: planning (raw, base), the exact zfs arguments, and failure handling.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const PLAIN = 'labpool/zfs-send-tiny';
const ENCRYPTED = 'labpool/zfse-encrypted-tiny';

const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
const incremental = firstBeginGuids(fixtureBytes('zse-tiny-incremental.zfs')).toguid.toString();
const encrypted = firstBeginGuids(fixtureBytes('zse-encrypted-raw-s1.zfs')).toguid.toString();

interface StandInState {
  log: string;
  datasets: Record<string, { encryption: string; snapshots: object[]; bookmarks?: object[] }>;
  streams: Record<string, string>;
  send?: { failAfterBytes?: number; exitCode?: number; stderr?: string };
}

let dir: string;
let archive: string;
let state: StandInState;

function save(): void {
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
}

function send(...args: string[]) {
  save();
  return runCli(['send', ...args, '--to', archive], {
    env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: join(dir, 'state.json') },
  });
}

/** The argv of every `zfs send` the CLI ran. */
function sends(): string[][] {
  const lines = readFileSync(state.log, 'utf8').split('\n').filter(Boolean);
  return lines.map((l) => JSON.parse(l) as string[]).filter((a) => a[0] === 'send');
}

function manifests(): Manifest[] {
  return listFiles(archive)
    .filter((f) => f.endsWith('manifest.json'))
    .map((f) => readJson<Manifest>(join(archive, f)));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-send-'));
  archive = join(dir, 'archive');
  state = {
    log: join(dir, 'zfs.log'),
    datasets: {
      [PLAIN]: {
        encryption: 'off',
        snapshots: [
          { name: 'base', guid: base, createtxg: 100, creation: 1786111636 },
          { name: 'incremental', guid: incremental, createtxg: 200, creation: 1786111636 },
        ],
      },
      [ENCRYPTED]: { encryption: 'aes-256-gcm', snapshots: [{ name: 's1', guid: encrypted, createtxg: 50, creation: 1786114820 }] },
    },
    streams: {
      [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs'),
      [`${base}:${incremental}`]: join(FIXTURE_DIR, 'zse-tiny-incremental.zfs'),
      [`0:${encrypted}`]: join(FIXTURE_DIR, 'zse-encrypted-raw-s1.zfs'),
    },
  };
  writeFileSync(state.log, '');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('send', () => {
  it('sends a full first, then an incremental from the newest archived snapshot', async () => {
    const full = await send(`${PLAIN}@base`);
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    const incr = await send(`${PLAIN}@incremental`);
    expect(incr.code).toBe(0);
    expect(sends()).toEqual([
      ['send', '-L', '-c', `${PLAIN}@base`],
      ['send', '-L', '-c', '-i', `${PLAIN}@base`, `${PLAIN}@incremental`],
    ]);
    const [m1, m2] = manifests().sort((a, b) => a.kind.localeCompare(b.kind));
    expect(m1!.kind).toBe('full');
    expect(m1!.sendArgs).toEqual(['zfs', 'send', '-L', '-c', `${PLAIN}@base`]);
    expect(m1!.zfsVersion).toBe('zfs-2.3.2-1');
    expect(m2!.kind).toBe('incr');
    // createtxg from zfs is recorded: it orders snapshots taken in the same second (both were).
    expect(m2!.from).toEqual({ name: 'base', guid: base, createtxg: '100' });
    expect(m2!.to.guid).toBe(incremental);
    expect([m1!.to.createtxg, m1!.substreams[0]!.createtxg, m2!.to.createtxg, m2!.substreams[0]!.createtxg]).toEqual(['100', '100', '200', '200']);
  });

  it('sends encrypted datasets raw by default', async () => {
    const r = await send(`${ENCRYPTED}@s1`);
    expect(r.code).toBe(0);
    expect(sends()).toEqual([['send', '-w', `${ENCRYPTED}@s1`]]);
    expect(manifests()[0]!.raw).toBe(true);
  });

  it('sends from the bookmark when the archived base snapshot was destroyed on the source', async () => {
    expect((await send(`${PLAIN}@base`)).code).toBe(0);
    state.datasets[PLAIN]!.snapshots.shift();
    state.datasets[PLAIN]!.bookmarks = [{ name: 'base', guid: base, createtxg: 100, creation: 1786111636 }];
    const r = await send(`${PLAIN}@incremental`);
    expect(r.code).toBe(0);
    expect(sends()[1]).toEqual(['send', '-L', '-c', '-i', `${PLAIN}#base`, `${PLAIN}@incremental`]);
    expect(manifests().find((m) => m.kind === 'incr')!.from).toEqual({ name: '#base', guid: base, createtxg: '100' });
  });

  it('honours --from and --full', async () => {
    expect((await send(`${PLAIN}@base`)).code).toBe(0);
    expect((await send(`${PLAIN}@incremental`, '--from', 'base')).code).toBe(0);
    expect(sends()[1]).toEqual(['send', '-L', '-c', '-i', `${PLAIN}@base`, `${PLAIN}@incremental`]);
    const bad = await send(`${PLAIN}@incremental`, '--from', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(`zfs-offsite: error: base not found: ${PLAIN}@nope\n`);
  });

  it('commits nothing when zfs send fails mid-stream, and shows its error', async () => {
    state.send = { failAfterBytes: 20_000, exitCode: 1, stderr: 'warning: cannot send: I/O error' };
    const r = await send(`${PLAIN}@base`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^zfs-offsite: error: zfs send .*failed \(exit 1\): warning: cannot send: I\/O error; nothing was committed\n$/);
    // Nothing committed; the journal stays so that a rerun resumes.
    expect(manifests()).toEqual([]);
    expect(listFiles(archive).filter((f) => f.endsWith('journal.json'))).toHaveLength(1);
  });

  it('commits nothing when zfs send exits non-zero after a complete stream', async () => {
    state.send = { exitCode: 1, stderr: 'internal error' };
    const r = await send(`${PLAIN}@base`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/internal error; nothing was committed/);
    expect(manifests()).toEqual([]);
  });

  it('commits nothing when the stream is not the snapshot zfs reported (GUID cross-check)', async () => {
    state.datasets[PLAIN]!.snapshots[0] = { name: 'base', guid: '12345', createtxg: 100, creation: 1 };
    state.streams['0:12345'] = join(FIXTURE_DIR, 'zse-tiny-full.zfs');
    const r = await send(`${PLAIN}@base`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has GUID 12345; nothing was committed/);
    expect(manifests()).toEqual([]);
  });

  it.each([
    [[`${PLAIN}@missing`], /^zfs-offsite: error: snapshot not found: labpool\/zfs-send-tiny@missing\n$/],
    [['nopool/ds@s1'], /^zfs-offsite: error: dataset not found: nopool\/ds\n$/],
    [[PLAIN], /expected a snapshot/],
    [['tank/ds;reboot@s'], /invalid ZFS snapshot name/],
    [[`${PLAIN}@base`, '--full', '--from', 'base'], /exclude each other/],
  ])('refuses %j with exit 2 and writes nothing', async (args, message) => {
    const r = await send(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(sends()).toEqual([]);
    expect(listFiles(dir).filter((f) => f.startsWith('archive/'))).toEqual([]);
  });
});
