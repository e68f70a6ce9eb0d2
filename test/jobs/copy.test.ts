import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { CopyReport } from '../../src/jobs/copy.js';
import { CLI, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { writeRandomStream } from '../support/random-stream.js';
import { type OpenedTarget, openTestTarget, testTargets } from '../support/targets.js';

/**
 * `zfs-offsite copy` (issue 19): from the real Ceph RGW into a local directory and into the real
 * SFTP server; the copy deep-verifies clean and restores byte-identically; a second copy copies
 * nothing; an interrupted copy resumes; a damaged chunk of the source is refused.
 */
const targets = testTargets();
const rgw = targets.find((t) => t.name.startsWith('S3'));
const destinations = targets.filter((t) => !t.name.startsWith('S3'));

const TINY = { dataset: 'labpool/zfs-send-tiny', full: 'zse-tiny-full.zfs', incr: 'zse-tiny-incremental.zfs' };

describe.skipIf(!rgw).each(destinations)('copy from S3 (Ceph RGW) to $name', (destination) => {
  let a: OpenedTarget;
  let b: OpenedTarget;
  let work: string;
  let bigFile: string;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });
  const copy = async (...extra: string[]) => {
    const r = await cli(['copy', '--from', a.url, '--to', b.url, '--json', ...extra]);
    return { ...r, report: r.code === 0 ? (JSON.parse(r.stdout) as CopyReport) : undefined };
  };

  beforeAll(async () => {
    a = await openTestTarget(rgw!);
    b = await openTestTarget(destination);
    env = { ...a.env, ...b.env };
    work = mkdtempSync(join(tmpdir(), 'zfs-offsite-copy-'));
    for (const f of [TINY.full, TINY.incr]) expect((await cli(['put', '--to', a.url, '--chunk-size', '1M'], fixtureBytes(f))).code).toBe(0);
    bigFile = join(work, 'big.zfs');
    writeRandomStream(bigFile, 6, 'pool/big@a');
    const put = await cli(['put', '--to', a.url, '--chunk-size', '1M', '--input', bigFile]);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('copies every stream; verify --deep of the copy is clean; restores byte-identically; a second copy copies nothing', async () => {
    const r = await copy();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.report!.copied.map((c) => c.dataset).sort()).toEqual([TINY.dataset, TINY.dataset, 'pool/big'].sort());
    expect(r.report!.copied.find((c) => c.dataset === 'pool/big')!.objectsCopied).toBeGreaterThanOrEqual(6);
    const deep = await cli(['verify', b.url, '--deep', '--json']);
    expect(deep.stdout).not.toContain('"kind"');
    expect(deep.code).toBe(0);
    const tiny = join(work, 'tiny.zfs');
    expect((await cli(['restore', '--from', b.url, TINY.dataset, '--output', tiny])).code).toBe(0);
    expect(readFileSync(tiny).equals(Buffer.concat([fixtureBytes(TINY.full), fixtureBytes(TINY.incr)]))).toBe(true);
    const big = join(work, 'big.out');
    expect((await cli(['restore', '--from', b.url, 'pool/big', '--output', big])).code).toBe(0);
    expect(readFileSync(big).equals(readFileSync(bigFile))).toBe(true);
    const again = await copy();
    expect(again.code).toBe(0);
    expect(again.report!.copied).toEqual([]);
    expect(again.report!.present).toBe(3);
  }, 180_000);

  it('resumes a copy whose process was killed midway: the chunks stored are kept, nothing half-committed', async () => {
    const half = await openTestTarget(destination);
    try {
      const childEnv = { ...process.env, ...env, ZFS_OFFSITE_LOCK_DIR: work, ZFS_OFFSITE_TARGET: undefined };
      const child = spawn(process.execPath, [CLI, 'copy', '--from', a.url, '--to', half.url, '--parallel', '1', 'pool/big'], { env: childEnv, stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      // Killed (SIGKILL: no cleanup at all) once two chunks of the stream are in the target.
      for (let i = 0; i < 600; i++) {
        const keys: string[] = [];
        await half.backend.list('pool/big/', (o) => keys.push(o.key));
        if (keys.filter((k) => k.endsWith('.zst')).length >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await exited;
      const left: string[] = [];
      await half.backend.list('pool/big/', (o) => left.push(o.key));
      expect(left.some((k) => k.endsWith('manifest.json'))).toBe(false);
      expect(left.filter((k) => k.endsWith('.zst')).length).toBeGreaterThanOrEqual(2);
      const r = await runCli(['copy', '--from', a.url, '--to', half.url, '--json', 'pool/big'], { env });
      // The killed run's lease is its only other trace: taken over (same host, process gone).
      expect(r.stderr).toMatch(/^(zfs-offsite: warning: taking over the abandoned lease of host .*\n)?$/);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as CopyReport;
      expect(report.copied).toHaveLength(1);
      expect(report.copied[0]!.objectsReused).toBeGreaterThanOrEqual(2);
      const out = join(work, 'big-resumed.out');
      expect((await runCli(['restore', '--from', half.url, 'pool/big', '--output', out], { env })).code).toBe(0);
      expect(readFileSync(out).equals(readFileSync(bigFile))).toBe(true);
      expect((await runCli(['verify', half.url, '--deep'], { env })).code).toBe(0);
    } finally {
      await half.cleanup();
    }
  }, 180_000);

  it('refuses a chunk of the source whose hash does not match, naming stream and chunk; commits nothing of that stream (exit 3)', async () => {
    const fresh = await openTestTarget(destination);
    const damaged = await openTestTarget(rgw!);
    try {
      const denv = { ...damaged.env, ...fresh.env };
      expect((await runCli(['put', '--to', damaged.url, '--chunk-size', '1M', '--input', bigFile], { env: denv })).code).toBe(0);
      const keys: string[] = [];
      await damaged.backend.list('pool/big/', (o) => keys.push(o.key));
      const manifestKey = keys.find((k) => k.endsWith('manifest.json'))!;
      const prefix = manifestKey.slice(0, -'manifest.json'.length);
      const m = JSON.parse((await damaged.backend.getBuffer(manifestKey)).toString()) as Manifest;
      const chunk = await damaged.backend.getBuffer(prefix + m.chunks[3]!.key);
      chunk[100] = chunk[100]! ^ 0xff;
      await damaged.backend.put(prefix + m.chunks[3]!.key, chunk);
      const r = await runCli(['copy', '--from', damaged.url, '--to', fresh.url], { env: denv });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/^zfs-offsite: error: stream pool\/big \S+-full-a-\w+: chunk 000003\.zst at .* is damaged \(SHA-256 /);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      const copied: string[] = [];
      await fresh.backend.list('pool/big/', (o) => copied.push(o.key));
      expect(copied.filter((k) => k.endsWith('manifest.json') || k.endsWith('SHA256SUMS'))).toEqual([]);
      expect((await runCli(['list', fresh.url, '--json'], { env: denv })).stdout).not.toContain('pool/big');
    } finally {
      await fresh.cleanup();
      await damaged.cleanup();
    }
  }, 120_000);

  it('never starts an archive inside a non-empty directory that is not one (exit 2, nothing written)', async () => {
    if (!destination.name.startsWith('local')) return;
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-foreign-'));
    try {
      writeFileSync(join(dir, 'holiday.jpg'), 'not an archive');
      const r = await runCli(['copy', '--from', a.url, '--to', dir], { env });
      expect(r.stderr).toMatch(/^zfs-offsite: error: .* holds no archive \(no zfs-offsite\.json\) but is not empty \(holiday\.jpg…\)/);
      expect(r.code).toBe(2);
      expect(readdirSync(dir)).toEqual(['holiday.jpg']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
