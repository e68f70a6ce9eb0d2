/**
 * Snapshot, bookmark and dataset-listing methods of the zfs module, run against the zfs stand-in
 * (test/support/zfs-stand-in.mjs): exact argument arrays, name checks before anything runs,
 * and errors mapped as for the existing methods.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/util/errors.js';
import { Zfs, ZfsCommandError } from '../../src/zfs/zfs.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));

let dir: string;
let statePath: string;
let zfs: Zfs;

const state = () => JSON.parse(readFileSync(statePath, 'utf8')) as { datasets: Record<string, { snapshots: { name: string; guid: string }[]; bookmarks?: { name: string; guid: string }[] }> };
const calls = () =>
  readFileSync(join(dir, 'zfs.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as string[]);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-zfs-'));
  statePath = join(dir, 'state.json');
  const datasets = {
    tank: { encryption: 'off', snapshots: [] },
    'tank/home': { encryption: 'off', snapshots: [{ name: 'a', guid: '123456789012345678', createtxg: 10, creation: 1700000000 }] },
    'tank/home/alice': { encryption: 'off', snapshots: [] },
    'tank/vm disk': { encryption: 'off', snapshots: [] },
    'other/x': { encryption: 'off', snapshots: [] },
  };
  writeFileSync(statePath, JSON.stringify({ log: join(dir, 'zfs.log'), datasets, streams: {} }));
  writeFileSync(join(dir, 'zfs.log'), '');
  process.env.ZFS_STAND_IN_STATE = statePath;
  zfs = new Zfs([process.execPath, STAND_IN]);
});

afterEach(() => {
  delete process.env.ZFS_STAND_IN_STATE;
  rmSync(dir, { recursive: true, force: true });
});

describe('zfs snapshots, bookmarks and datasets', () => {
  it('creates a snapshot with one argument array', async () => {
    await zfs.createSnapshot('tank/home@zfs-offsite_20261122T020000Z');
    expect(calls()).toEqual([['snapshot', 'tank/home@zfs-offsite_20261122T020000Z']]);
    const snap = await zfs.findSnapshot('tank/home@zfs-offsite_20261122T020000Z');
    expect(snap?.createtxg).toBe(11n);
  });

  it('bookmarks a snapshot under the same dataset, keeping its GUID', async () => {
    await zfs.createBookmark('tank/home@a', 'tank/home#zfs-offsite_a');
    expect(calls()).toEqual([['bookmark', 'tank/home@a', 'tank/home#zfs-offsite_a']]);
    expect(state().datasets['tank/home']!.bookmarks).toEqual([expect.objectContaining({ name: 'zfs-offsite_a', guid: '123456789012345678' })]);
    const listed = await zfs.listSnapshots('tank/home');
    expect(listed.map((s) => [s.name, s.kind, s.guid])).toEqual([
      ['tank/home@a', 'snapshot', 123456789012345678n],
      ['tank/home#zfs-offsite_a', 'bookmark', 123456789012345678n],
    ]);
    await expect(zfs.createBookmark('tank/home@a', 'tank/other#a')).rejects.toThrow('bookmark tank/other#a must belong to the dataset of tank/home@a');
    await expect(zfs.createBookmark('tank/home@a', 'tank/home@b')).rejects.toThrow(/expected pool\/dataset#bookmark/);
  });

  it('destroys bookmarks only', async () => {
    await zfs.createBookmark('tank/home@a', 'tank/home#old');
    await zfs.destroyBookmark('tank/home#old');
    expect(calls().at(-1)).toEqual(['destroy', 'tank/home#old']);
    expect(state().datasets['tank/home']!.bookmarks).toEqual([]);
    for (const name of ['tank/home', 'tank/home@a', 'tank/home#a;rm -rf /']) {
      await expect(zfs.destroyBookmark(name)).rejects.toThrow(UsageError);
    }
    await expect(zfs.destroyBookmark('tank/home#missing')).rejects.toThrow(ZfsCommandError);
    expect(calls().filter((c) => c[0] === 'destroy')).toEqual([
      ['destroy', 'tank/home#old'],
      ['destroy', 'tank/home#missing'],
    ]);
  });

  it('lists a dataset alone or with its descendants', async () => {
    expect(await zfs.listDatasets('tank/home', false)).toEqual(['tank/home']);
    expect(await zfs.listDatasets('tank/home', true)).toEqual(['tank/home', 'tank/home/alice']);
    expect(await zfs.listDatasets('tank', true)).toEqual(['tank', 'tank/home', 'tank/home/alice', 'tank/vm disk']);
    expect(calls()[1]).toEqual(['list', '-H', '-o', 'name', '-t', 'filesystem,volume', '-r', 'tank/home']);
    await expect(zfs.listDatasets('tank/nope', true)).rejects.toThrow('dataset not found: tank/nope');
    await expect(zfs.listDatasets('tank/home@a', false)).rejects.toThrow(UsageError);
  });

  it('checks names before running anything', async () => {
    await expect(zfs.createSnapshot('tank/home')).rejects.toThrow(/expected pool\/dataset@snapshot/);
    await expect(zfs.createSnapshot('-o x=y@s')).rejects.toThrow(/invalid ZFS snapshot name/);
    await expect(zfs.createSnapshot('tank/nope@s')).rejects.toThrow('dataset not found: tank/nope');
    expect(calls()).toEqual([['snapshot', 'tank/nope@s']]);
  });
});
