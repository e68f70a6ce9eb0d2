/**
 * Issue 16.3: ZFS_OFFSITE_TARGET is the default target of list, verify, restore (--from) and
 * prune, as RESTIC_REPOSITORY is restic's. The rule for `[target] [dataset]`: with the variable
 * set, the target is its value unless both arguments are given, and a single argument is the
 * dataset. Without the variable and without a target: exit 2, one line naming the variable.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';

const TINY = 'labpool/zfs-send-tiny';
const RAW = 'labpool/zfse-raw-advanced';

let dir: string;
let archive: string;
/** The CLI with ZFS_OFFSITE_TARGET set to `target` (default: the archive), or unset for null. */
const withEnv = (args: string[], target: string | null = archive) => runCli(args, { env: { ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks'), ZFS_OFFSITE_TARGET: target ?? undefined } });
const ONE_LINE = /^zfs-offsite: error: no target: give (--from )?TARGET or set ZFS_OFFSITE_TARGET\n$/;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-default-target-'));
  archive = join(dir, 'archive');
  for (const name of ['zse-tiny-full.zfs', 'zse-advanced-raw-full.zfs']) {
    const put = await runCli(['put', '--to', archive], { input: fixtureBytes(name) });
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ZFS_OFFSITE_TARGET as the default target', () => {
  it('list: no argument lists the archive; one argument is the dataset; two are target and dataset', async () => {
    const all = await withEnv(['list', '--json']);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(TINY);
    expect(all.stdout).toContain(RAW);
    const one = await withEnv(['list', TINY, '--json']);
    expect([one.code, one.stderr]).toEqual([0, '']);
    expect(one.stdout).toContain(TINY);
    expect(one.stdout).not.toContain(RAW);
    // Both given: the variable is not used (it points nowhere here).
    const both = await withEnv(['list', archive, RAW, '--json'], join(dir, 'usb-typo'));
    expect([both.code, both.stderr]).toEqual([0, '']);
    expect(both.stdout).toContain(RAW);
    expect(both.stdout).not.toContain(TINY);
    expect(existsSync(join(dir, 'usb-typo'))).toBe(false);
  });

  it('verify: the default target, all of it or one dataset; a default target without an archive is exit 4', async () => {
    const all = await withEnv(['verify']);
    expect([all.code, all.stderr]).toEqual([0, '']);
    const one = await withEnv(['verify', TINY, '--deep', '--json']);
    expect([one.code, one.stderr]).toEqual([0, '']);
    const missing = await withEnv(['verify'], join(dir, 'usb-typo'));
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^zfs-offsite: error: no archive at \S*usb-typo /);
    expect(existsSync(join(dir, 'usb-typo'))).toBe(false);
  });

  it('restore: --from defaults to the variable; the stream comes back byte for byte', async () => {
    const out = join(dir, 'tiny.zfs');
    const r = await withEnv(['restore', TINY, '--output', out]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(readFileSync(out).equals(fixtureBytes('zse-tiny-full.zfs'))).toBe(true);
  });

  it('prune: one argument is the dataset of the default target', async () => {
    const r = await withEnv(['prune', TINY, '--keep-last', '1', '--dry-run', '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const report = JSON.parse(r.stdout) as { target: string; datasets: { dataset: string }[] };
    expect(report.datasets.map((d) => d.dataset)).toEqual([TINY]);
  });

  it('without a target and without the variable: exit 2, one line naming ZFS_OFFSITE_TARGET, for each command', async () => {
    for (const args of [['list'], ['verify'], ['prune', '--keep-last', '1'], ['restore', TINY, '--output', join(dir, 'never.zfs')]]) {
      for (const unset of [null, '']) {
        const r = await withEnv(args, unset);
        expect([args[0], r.code, r.stdout]).toEqual([args[0], 2, '']);
        expect(r.stderr).toMatch(ONE_LINE);
      }
    }
    expect(existsSync(join(dir, 'never.zfs'))).toBe(false);
  });
});
