/**
 * Issue 16.1: a wrong or unmounted target, an unknown dataset and an archive inside an archive
 * are answered honestly. Read-only commands (list, verify, restore, prune) create nothing, need
 * the marker at the target's root (exit 4 without it), refuse a dataset the archive does not
 * hold (exit 2, naming the datasets it holds, with a "did you mean"), and never walk into
 * another archive below the root.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { sshdSettings } from '../support/sshd.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const TINY = 'labpool/zfs-send-tiny';
const RAW = 'labpool/zfse-raw-advanced';
const NO_ARCHIVE = /^zfs-offsite: error: no archive at \S*\/usb-typo \(no zfs-offsite\.json\) — is it mounted\?\n$/;

/** Where a file-tree target lives on this host (the test SFTP server serves a local directory); undefined for S3. */
function localPath(url: string): string | undefined {
  if (url.startsWith('file://')) return fileURLToPath(url);
  if (url.startsWith('sftp://')) return join(sshdSettings()!.chroot, 'home', new URL(url).pathname.slice(1));
  return undefined;
}

async function keysOf(backend: Backend, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  await backend.list(prefix, (o) => keys.push(o.key));
  return keys.sort();
}

describe.each(testTargets())('a missing archive, an unknown dataset, a nested archive on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let out: string;
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, ...(input ? { input } : {}) });

  /** Nothing at all under `sub` of the target: no directory (local, SFTP), no object (S3). */
  async function nothingAt(sub: string): Promise<void> {
    const path = localPath(url);
    if (path) expect(existsSync(join(path, sub)), `${sub} was created`).toBe(false);
    expect(await keysOf(backend, `${sub}/`)).toEqual([]);
  }

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-missing-'));
    for (const name of ['zse-tiny-full.zfs', 'zse-advanced-raw-full.zfs']) {
      const put = await cli(['put', '--to', url], fixtureBytes(name));
      expect(put.stderr).toBe('');
      expect(put.code).toBe(0);
    }
  });
  afterAll(async () => {
    await cleanup?.();
    rmSync(out, { recursive: true, force: true });
  });

  it('a target without an archive is exit 4, one line, and nothing is created there', async () => {
    const typo = `${url}/usb-typo`;
    const before = await keysOf(backend);
    const output = join(out, 'typo.zfs');
    for (const args of [
      ['verify', typo],
      ['verify', typo, '--json'],
      ['verify', typo, TINY, '--deep'],
      ['list', typo],
      ['list', typo, TINY, '--json'],
      ['prune', typo, '--keep-last', '1'],
      ['prune', typo, TINY, '--keep-last', '1', '--dry-run'],
      ['restore', '--from', typo, TINY, '--output', output],
    ]) {
      const r = await cli(args);
      expect(r.stderr, args.join(' ')).toMatch(NO_ARCHIVE);
      expect(r.code, args.join(' ')).toBe(4);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    await nothingAt('usb-typo');
    expect(existsSync(output)).toBe(false);
    expect(await keysOf(backend)).toEqual(before);
  });

  it('an unknown dataset is exit 2 naming the datasets present, with a did-you-mean when one is close', async () => {
    const before = await keysOf(backend);
    const output = join(out, 'unknown.zfs');
    for (const command of [
      ['verify', url],
      ['list', url],
      ['prune', url, '--keep-last', '1'],
      ['restore', '--from', url],
    ]) {
      const far = await cli([...command, 'no/such', ...(command[0] === 'restore' ? ['--output', output] : [])]);
      expect(far.stderr, command[0]).toMatch(new RegExp(`^zfs-offsite: error: no dataset no/such in the archive at \\S+ \\(it holds: ${TINY}, ${RAW}\\)\\n$`));
      expect(far.code, command[0]).toBe(2);
      const close = await cli([...command, 'labpool/zfs-send-tiyn', ...(command[0] === 'restore' ? ['--output', output] : [])]);
      expect(close.stderr, command[0]).toMatch(
        new RegExp(`^zfs-offsite: error: no dataset labpool/zfs-send-tiyn in the archive at \\S+ — did you mean ${TINY}\\? \\(it holds: ${TINY}, ${RAW}\\)\\n$`),
      );
      expect(close.code, command[0]).toBe(2);
    }
    // A parent alone is not a dataset for restore and prune (they act on one dataset exactly).
    const parent = await cli(['restore', '--from', url, 'labpool', '--output', output]);
    expect(parent.code).toBe(2);
    expect(parent.stderr).toMatch(/^zfs-offsite: error: no dataset labpool in the archive/);
    expect(existsSync(output)).toBe(false);
    // No lease, no directory left behind by the prune of a typo.
    expect(await keysOf(backend)).toEqual(before);
    await nothingAt('no');
  });

  it('list and verify of a parent dataset cover it and its children', async () => {
    const list = await cli(['list', url, 'labpool', '--json']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { dataset: string }[]).map((d) => d.dataset).sort()).toEqual([TINY, RAW]);
    const one = await cli(['list', url, TINY, '--json']);
    expect((JSON.parse(one.stdout) as { dataset: string }[]).map((d) => d.dataset)).toEqual([TINY]);
    const verify = await cli(['verify', url, 'labpool', '--json']);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    expect((JSON.parse(verify.stdout) as { datasets: { dataset: string }[] }).datasets.map((d) => d.dataset)).toEqual([TINY, RAW]);
  });

  it('an archive inside the archive is not walked into: not listed, verified (a warning) or pruned as part of it', async () => {
    const inner = `${url}/inner`;
    const put = await cli(['put', '--to', inner, '--dataset', 'other/ds'], fixtureBytes('zse-tiny-full.zfs'));
    expect(put.code).toBe(0);
    try {
      const list = await cli(['list', url, '--json']);
      expect(list.code).toBe(0);
      expect((JSON.parse(list.stdout) as { dataset: string }[]).map((d) => d.dataset).sort()).toEqual([TINY, RAW]);
      const verify = await cli(['verify', url, '--json']);
      expect(verify.code).toBe(0);
      const report = JSON.parse(verify.stdout) as { problems: unknown[]; datasets: { dataset: string }[] };
      expect(report.problems).toEqual([]);
      expect(report.datasets.map((d) => d.dataset)).toEqual([TINY, RAW]);
      expect(verify.stderr).toMatch(/^zfs-offsite: warning: \S*\/inner is another archive \(it has its own zfs-offsite\.json\): not part of this one, not verified here; verify it on its own\n$/);
      const prune = await cli(['prune', url, '--keep-last', '1', '--dry-run', '--json']);
      expect(prune.code).toBe(0);
      expect((JSON.parse(prune.stdout) as { datasets: { dataset: string }[] }).datasets.map((d) => d.dataset)).toEqual([TINY, RAW]);
      // The inner archive itself is an archive of its own.
      const own = await cli(['list', inner, '--json']);
      expect((JSON.parse(own.stdout) as { dataset: string }[]).map((d) => d.dataset)).toEqual(['other/ds']);
    } finally {
      await backend.delete(await keysOf(backend, 'inner/'));
    }
  });
});

describe('a missing local directory (plain path)', () => {
  it('verify of a directory that does not exist is exit 4 and does not create it; an empty one is no archive either', async () => {
    const base = mkdtempSync(join(tmpdir(), 'zfs-offsite-nomount-'));
    try {
      const typo = join(base, 'usb-typo');
      const r = await runCli(['verify', typo]);
      expect(r.stderr).toBe(`zfs-offsite: error: no archive at ${typo} (no zfs-offsite.json) — is it mounted?\n`);
      expect(r.code).toBe(4);
      expect(existsSync(typo)).toBe(false);
      // An empty mount point (the disk not mounted on it) is no archive either, and stays empty.
      const empty = await runCli(['list', base]);
      expect(empty.stderr).toBe(`zfs-offsite: error: no archive at ${base} (no zfs-offsite.json) — is it mounted?\n`);
      expect(empty.code).toBe(4);
      expect(existsSync(join(base, 'zfs-offsite.json'))).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
