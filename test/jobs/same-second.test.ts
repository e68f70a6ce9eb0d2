/**
 * Snapshots taken in the same second (sanoid's hourly/daily/monthly, scripts), through the built
 * CLI on a local directory: `prune` keeps the newest, `restore` picks it, `list` shows the chain
 * in its order; and `put` records `createtxg` when this host has the snapshots (zfs stand-in).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { ListedDataset } from '../../src/jobs/list.js';
import type { PruneReport } from '../../src/jobs/prune.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { buildStream, type SubstreamSpec } from '../support/synthetic-stream.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const SECOND = Date.UTC(2026, 5, 1, 0, 0, 0) / 1000;
const bytesOf = (substreams: SubstreamSpec[]) => Buffer.from(buildStream({ substreams }).bytes);
const sub = (toname: string, toguid: bigint, fromguid: bigint): SubstreamSpec => ({ toname, toguid, fromguid, creationTime: SECOND });

let dir: string;
let archive: string;

function manifestsOf(dataset: string): Manifest[] {
  return listFiles(archive)
    .filter((f) => f.endsWith('manifest.json'))
    .map((f) => readJson<Manifest>(join(archive, f)))
    .filter((m) => m.dataset === dataset);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-same-second-'));
  archive = join(dir, 'archive');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function put(stream: Buffer, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await runCli(['put', '--to', archive], { input: stream, env: { ZFS_OFFSITE_ZFS_CMD: '/nonexistent/zfs', ...env } });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

describe('snapshots taken in one second', () => {
  it('prune --keep-last 1 keeps the newest of three (sanoid), and restore picks it', async () => {
    const DS = 'pool/sanoid';
    // GUID text sorts oldest first, names newest first: neither may decide.
    const [monthly, daily, hourly] = [0x1000_0000_0000_0001n, 0x1000_0000_0000_0002n, 0x1000_0000_0000_0003n];
    const streams = [
      bytesOf([sub(`${DS}@autosnap_2026-06-01_00:00:00_monthly`, monthly, 0n)]),
      bytesOf([sub(`${DS}@autosnap_2026-06-01_00:00:00_daily`, daily, monthly)]),
      bytesOf([sub(`${DS}@autosnap_2026-06-01_00:00:00_hourly`, hourly, daily)]),
    ];
    for (const s of streams) await put(s);
    const pruned = await runCli(['prune', archive, DS, '--keep-last', '1', '--json']);
    expect(pruned.stderr).toBe('');
    expect(pruned.code).toBe(0);
    const report = JSON.parse(pruned.stdout) as PruneReport;
    expect(report.deletedStreams).toBe(0);
    expect(report.datasets[0]!.keptSnapshots).toEqual([{ name: 'autosnap_2026-06-01_00:00:00_hourly', why: ['newest', 'last 1'] }]);
    expect(manifestsOf(DS)).toHaveLength(3);
    const file = join(dir, 'sanoid.zfs');
    const restored = await runCli(['restore', '--from', archive, DS, '--output', file, '--json']);
    expect(restored.code).toBe(0);
    expect((JSON.parse(restored.stdout) as { target: { guid: string } }).target.guid).toBe(hourly.toString());
    expect(readFileSync(file).equals(Buffer.concat(streams))).toBe(true);
  });

  it('list shows a chain made in one second in its order (s8 → s9 → s10), not by stream id', async () => {
    const DS = 'pool/burst';
    const guid = (i: number) => 0x2000_0000_0000_0000n + BigInt(i);
    const link = (i: number) => sub(`${DS}@s${i}`, guid(i), i === 0 ? 0n : guid(i - 1));
    // A full, a -I stream s1..s8, then s9 and s10: stream ids sort `…-incr-s10-…` before `…-incr-s8-…`.
    await put(bytesOf([link(0)]));
    await put(Buffer.from(buildStream({ compound: { toname: `${DS}@s8` }, substreams: Array.from({ length: 8 }, (_, k) => link(k + 1)) }).bytes));
    await put(bytesOf([link(9)]));
    await put(bytesOf([link(10)]));
    const json = await runCli(['list', archive, DS, '--json']);
    expect(json.code).toBe(0);
    const [listed] = JSON.parse(json.stdout) as ListedDataset[];
    const names = Array.from({ length: 11 }, (_, i) => `s${i}`);
    expect(listed!.chains.map((c) => c.snapshots)).toEqual([names]);
    expect(listed!.streams.map((s) => s.snapshot)).toEqual(['s0', 's8', 's9', 's10']);
    const human = await runCli(['list', archive, DS]);
    expect(human.stdout).toContain(`chain 1: ${names.join(' → ')} (4 streams)`);
  });
});

describe('put records createtxg', () => {
  const DS = 'pool/txg';
  const [a, b] = [0x3000_0000_0000_0001n, 0x3000_0000_0000_0002n];
  let state: string;
  const standIn = (snapshots: { name: string; guid: bigint; createtxg: number }[]) => {
    state = join(dir, 'state.json');
    const log = join(dir, 'zfs.log');
    writeFileSync(log, '');
    const rows = snapshots.map((s) => ({ name: s.name, guid: s.guid.toString(), createtxg: s.createtxg, creation: SECOND }));
    writeFileSync(state, JSON.stringify({ log, datasets: { [DS]: { encryption: 'off', snapshots: rows } }, streams: {} }));
    return { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: state };
  };

  it('from zfs on this host when the snapshots have the same GUIDs, and not otherwise', async () => {
    // @b was destroyed and re-created on this host: same name, another GUID, so no txg for it.
    const env = standIn([
      { name: 'a', guid: a, createtxg: 70 },
      { name: 'b', guid: 0x3000_0000_0000_0099n, createtxg: 90 },
    ]);
    await put(bytesOf([sub(`${DS}@a`, a, 0n)]), env);
    await put(bytesOf([sub(`${DS}@b`, b, a)]), env);
    const [full, incr] = manifestsOf(DS).sort((x, y) => x.kind.localeCompare(y.kind));
    expect([full!.to.createtxg, full!.substreams[0]!.createtxg]).toEqual(['70', '70']);
    expect(incr!.from).toEqual({ name: 'a', guid: a.toString(), createtxg: '70' });
    expect([incr!.to.createtxg, incr!.substreams[0]!.createtxg]).toEqual([undefined, undefined]);
  });

  it('and archives all the same without zfs', async () => {
    const DS2 = 'pool/nozfs';
    await put(bytesOf([sub(`${DS2}@a`, 0x4000_0000_0000_0001n, 0n)]));
    const [m] = manifestsOf(DS2);
    expect(m!.to.createtxg).toBeUndefined();
    expect(m!.substreams[0]!.createtxg).toBeUndefined();
  });
});
