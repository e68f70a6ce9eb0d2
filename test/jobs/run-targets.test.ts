/**
 * `run --config` with several targets for one dataset (issue 19), against the zfs stand-in (real
 * OpenZFS streams): one `zfs send` feeds both targets, both archives restore the same bytes, each
 * target keeps a bookmark of its own (so destroying the base snapshots keeps both incremental),
 * a failing target fails alone, and bookmarks of a target dropped from the config are reported.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const DS = 'labpool/zfs-send-tiny';
const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
const incremental = firstBeginGuids(fixtureBytes('zse-tiny-incremental.zfs')).toguid.toString();

let dir: string;
const statePath = () => join(dir, 'state.json');
const state = () => JSON.parse(readFileSync(statePath(), 'utf8')) as { datasets: Record<string, { snapshots: { name: string }[]; bookmarks?: { name: string; guid: string }[] }> };
const targetId = (archive: string) => (JSON.parse(readFileSync(join(archive, 'zfs-offsite.json'), 'utf8')) as { id: string }).id;
const A = () => join(dir, 'a');
const B = () => join(dir, 'b');
const env = () => ({ ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: statePath(), ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') });
const cli = (...args: string[]) => runCli(args, { env: env() });

function config(pattern: string, targets: string[], extra = ''): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `datasets:\n  - name: ${DS}\n    snapshot: { mode: pick, pattern: "${pattern}" }\n    targets: [${targets.join(', ')}]\n${extra}`);
  return file;
}

/** The real `zfs send` runs (the stand-in's log), not the `-n` size estimates. */
function sends(): string[][] {
  return readFileSync(join(dir, 'zfs.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('["send"'))
    .map((l) => JSON.parse(l) as string[])
    .filter((a) => !a.includes('-n'));
}

function manifests(archive: string): Manifest[] {
  return listFiles(archive)
    .filter((f) => f.endsWith('manifest.json'))
    .map((f) => readJson<Manifest>(join(archive, f)));
}

function destroySnapshot(name: string): void {
  const s = JSON.parse(readFileSync(statePath(), 'utf8'));
  s.datasets[DS].snapshots = s.datasets[DS].snapshots.filter((x: { name: string }) => x.name !== name);
  writeFileSync(statePath(), JSON.stringify(s));
}

async function restored(archive: string): Promise<Buffer> {
  const out = join(dir, `restored-${readdirSync(dir).length}.zfs`);
  const r = await cli('restore', DS, '--from', archive, '--output', out);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return readFileSync(out);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-run-targets-'));
  writeFileSync(
    statePath(),
    JSON.stringify({
      log: join(dir, 'zfs.log'),
      datasets: {
        [DS]: {
          encryption: 'off',
          snapshots: [
            { name: 'base', guid: base, createtxg: 100, creation: 1786111636 },
            { name: 'incremental', guid: incremental, createtxg: 200, creation: 1786111637 },
          ],
        },
      },
      streams: { [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs'), [`${base}:${incremental}`]: join(FIXTURE_DIR, 'zse-tiny-incremental.zfs') },
    }),
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('run --config with targets: [a, b]', () => {
  it('reads the source once for both targets, and both archives restore the same bytes', async () => {
    const r = await cli('run', '--config', config('base', [A(), B()]), '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { results: { dataset: string; target: string; status: string; kind: string }[] };
    expect(report.results.map((x) => [x.target, x.status, x.kind])).toEqual([
      [A(), 'ok', 'full'],
      [B(), 'ok', 'full'],
    ]);
    expect(sends()).toEqual([['send', '-L', '-c', `${DS}@base`]]);
    const full = fixtureBytes('zse-tiny-full.zfs');
    expect((await restored(A())).equals(full)).toBe(true);
    expect((await restored(B())).equals(full)).toBe(true);
    // list and verify --config: every target of the entry, each its own section.
    const file = config('base', [A(), B()]);
    const listed = await cli('list', '--config', file, '--json');
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { target: string; datasets: { dataset: string }[] }[]).map((t) => [t.target, t.datasets.map((d) => d.dataset)])).toEqual([
      [A(), [DS]],
      [B(), [DS]],
    ]);
    const verified = await cli('verify', '--config', file, '--dataset', DS, '--json');
    expect(verified.code).toBe(0);
    expect((JSON.parse(verified.stdout) as { targets: unknown[] }).targets).toHaveLength(2);
    // One bookmark per target, each named by its archive's id.
    expect(targetId(A())).not.toBe(targetId(B()));
    expect(
      state()
        .datasets[DS]!.bookmarks!.map((b) => b.name)
        .sort(),
    ).toEqual([`zfs-offsite-${targetId(A())}_base`, `zfs-offsite-${targetId(B())}_base`].sort());
  });

  it('both targets continue with incrementals after the base snapshot was destroyed (one send, from a target bookmark)', async () => {
    expect((await cli('run', '--config', config('base', [A(), B()]))).code).toBe(0);
    destroySnapshot('base'); // a local pruning tool
    const r = await cli('run', '--config', config('*', [A(), B()]));
    expect(r.stdout).toMatch(/all 2 dataset\(s\) ok/);
    expect(r.code).toBe(0);
    expect(sends().at(-1)).toEqual(['send', '-L', '-c', '-i', `${DS}#zfs-offsite-${targetId(A())}_base`, `${DS}@incremental`]);
    expect(sends()).toHaveLength(2);
    for (const archive of [A(), B()]) {
      expect(
        manifests(archive)
          .map((m) => [m.kind, m.to.name, m.from?.name ?? null])
          .sort(),
      ).toEqual([
        ['full', 'base', null],
        ['incr', 'incremental', expect.stringMatching(/base$/)],
      ]);
    }
    const both = Buffer.concat([fixtureBytes('zse-tiny-full.zfs'), fixtureBytes('zse-tiny-incremental.zfs')]);
    expect((await restored(A())).equals(both)).toBe(true);
    expect((await restored(B())).equals(both)).toBe(true);
    expect(
      state()
        .datasets[DS]!.bookmarks!.map((b) => b.name)
        .sort(),
    ).toEqual([`zfs-offsite-${targetId(A())}_incremental`, `zfs-offsite-${targetId(B())}_incremental`].sort());
  });

  it('a target that fails during the shared send fails alone: the other completes, the exit code is 1', async () => {
    // Target b cannot hold this stream: a plain file where its directory must be (its name from a
    // put of the same stream elsewhere), so b fails once the shared zfs send has started.
    const scratch = join(dir, 'scratch');
    expect((await cli('put', '--to', scratch, '--input', join(FIXTURE_DIR, 'zse-tiny-full.zfs'), '--dataset', DS)).code).toBe(0);
    const [streamId] = readdirSync(join(scratch, DS)).filter((n) => n.includes('-full-'));
    mkdirSync(join(B(), DS), { recursive: true });
    writeFileSync(join(B(), DS, streamId!), 'not a directory');
    const r = await cli('run', '--config', config('base', [A(), B()]), '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { ok: boolean; results: { target: string; status: string; kind?: string; step?: string }[] };
    expect(report.ok).toBe(false);
    expect(report.results.map((x) => [x.target, x.status, x.kind ?? x.step])).toEqual([
      [A(), 'ok', 'full'],
      [B(), 'failed', 'send'],
    ]);
    expect((await restored(A())).equals(fixtureBytes('zse-tiny-full.zfs'))).toBe(true);
    expect(state().datasets[DS]!.bookmarks!.map((b) => b.name)).toEqual([`zfs-offsite-${targetId(A())}_base`]);
  });

  it("hold: true holds the newest archived snapshot with each target's tag, and releases the older one", async () => {
    const holds = () => Object.fromEntries((state().datasets[DS]!.snapshots as { name: string; holds?: string[] }[]).map((s) => [s.name, (s.holds ?? []).sort()]));
    expect((await cli('run', '--config', config('base', [A(), B()], '    hold: true\n'))).code).toBe(0);
    const tags = [`zfs-offsite-${targetId(A())}`, `zfs-offsite-${targetId(B())}`].sort();
    expect(holds()).toEqual({ base: tags, incremental: [] });
    expect((await cli('run', '--config', config('*', [A(), B()], '    hold: true\n'))).code).toBe(0);
    expect(holds()).toEqual({ base: [], incremental: tags });
  });

  it('reports the bookmarks of a target no longer in the config, and keeps them', async () => {
    expect((await cli('run', '--config', config('base', [A(), B()]))).code).toBe(0);
    const r = await cli('run', '--config', config('*', [A()]));
    expect(r.code).toBe(0);
    const orphan = `${DS}#zfs-offsite-${targetId(B())}_base`;
    expect(r.stderr).toContain(`bookmarks of targets no longer in`);
    expect(r.stderr).toContain(orphan);
    expect(state().datasets[DS]!.bookmarks!.map((b) => b.name)).toContain(`zfs-offsite-${targetId(B())}_base`);
  });
});

describe('send to two targets in turn (issue 19, "What was found")', () => {
  it("sending to target b keeps target a's base: after the base snapshot is destroyed, both send incrementals", async () => {
    for (const archive of [A(), B()]) expect((await cli('send', `${DS}@base`, '--to', archive)).code).toBe(0);
    destroySnapshot('base');
    for (const archive of [A(), B()]) {
      const r = await cli('send', `${DS}@incremental`, '--to', archive);
      expect(r.stderr).not.toMatch(/new full/);
      expect(r.code).toBe(0);
      expect(sends().at(-1)).toEqual(['send', '-L', '-c', '-i', `${DS}#zfs-offsite-${targetId(archive)}_base`, `${DS}@incremental`]);
      expect(
        manifests(archive)
          .map((m) => m.kind)
          .sort(),
      ).toEqual(['full', 'incr']);
    }
  });
});
