/**
 * Attachments (issue 19): `put --attach NAME=FILE` kept beside the manifest and hashed in it,
 * shown by `list`, written out by `restore --attachments DIR` byte-identical and hash-checked,
 * covered by `verify` (quick: present and size; deep: SHA-256), copied by `copy`, deleted by
 * `prune` with their stream — on a local directory, the real Ceph RGW and the real SFTP server.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { Backend } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, FULL as SYN_FULL } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const DS = 'labpool/zfs-send-tiny';
const FULL = fixtureBytes('zse-tiny-full.zfs');
const INCR = fixtureBytes('zse-tiny-incremental.zfs');

describe.each(testTargets())('attachments on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let work: string;
  const vmadm = Buffer.concat([Buffer.from('{"uuid":"2f1c…","brand":"joyent"}\n'), randomBytes(3000)]);
  const notes = Buffer.from('zone notes\n');
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });

  async function streamOf(kind: 'full' | 'incr'): Promise<{ prefix: string; manifest: Manifest }> {
    const keys: string[] = [];
    await backend.list(`${DS}/`, (o) => keys.push(o.key));
    for (const key of keys.filter((k) => k.endsWith('manifest.json'))) {
      const manifest = JSON.parse((await backend.getBuffer(key)).toString()) as Manifest;
      if (manifest.kind === kind) return { manifest, prefix: key.slice(0, -'manifest.json'.length) };
    }
    throw new Error(`no ${kind} stream`);
  }

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    work = mkdtempSync(join(tmpdir(), 'zfs-offsite-attach-'));
    writeFileSync(join(work, 'vmadm.json'), vmadm);
    writeFileSync(join(work, 'notes.txt'), notes);
    const full = await cli(['put', '--to', url, '--attach', `vmadm.json=${join(work, 'vmadm.json')}`, '--attach', `notes.txt=${join(work, 'notes.txt')}`], FULL);
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    expect((await cli(['put', '--to', url], INCR)).code).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
    rmSync(work, { recursive: true, force: true });
  });

  it('stores them beside the manifest, hashed in it (format 1.1); list shows them', async () => {
    const { manifest, prefix } = await streamOf('full');
    expect(manifest.formatVersion).toBe('1.1');
    expect(manifest.attachments!.map((a) => [a.name, a.key, a.size])).toEqual([
      ['vmadm.json', 'attachment.vmadm.json', vmadm.length],
      ['notes.txt', 'attachment.notes.txt', notes.length],
    ]);
    expect((await backend.getBuffer(`${prefix}attachment.vmadm.json`)).equals(vmadm)).toBe(true);
    expect((await streamOf('incr')).manifest.formatVersion).toBe('1.0');
    const listed = JSON.parse((await cli(['list', url, '--json'])).stdout) as { streams: { kind: string; attachments: { name: string; size: number }[] }[] }[];
    const full = listed[0]!.streams.find((s) => s.kind === 'full')!;
    expect(full.attachments.map((a) => [a.name, a.size])).toEqual([
      ['vmadm.json', vmadm.length],
      ['notes.txt', notes.length],
    ]);
    expect((await cli(['list', url])).stdout).toMatch(/attached to base \(\S+\): vmadm\.json \(.*\), notes\.txt \(11 B\)/);
  });

  it('restore --attachments DIR writes them byte-identical, before the streams; quick and deep verify are clean', async () => {
    const dir = join(work, 'restored');
    const out = join(work, 'base.zfs');
    const r = await cli(['restore', '--from', url, `${DS}@base`, '--output', out, '--attachments', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'vmadm.json')).equals(vmadm)).toBe(true);
    expect(readFileSync(join(dir, 'notes.txt')).equals(notes)).toBe(true);
    expect(readFileSync(out).equals(FULL)).toBe(true);
    expect(r.stdout).toMatch(/wrote attachment vmadm\.json \(3\d+ bytes, of \S+, SHA-256 checked\)/);
    // The newest snapshot: the attachments of the streams received (the full's here).
    const only = join(work, 'only');
    const o = await cli(['restore', '--from', url, DS, '--attachments', only, '--attachments-only']);
    expect(o.code).toBe(0);
    expect(readdirSync(only).sort()).toEqual(['notes.txt', 'vmadm.json']);
    expect((await cli(['verify', url])).code).toBe(0);
    const deep = await cli(['verify', url, '--deep']);
    expect(deep.stdout).not.toMatch(/attachment/);
    expect(deep.code).toBe(0);
  });

  it('copy copies them: the copy restores them byte-identical', async () => {
    const copyDir = mkdtempSync(join(tmpdir(), 'zfs-offsite-attach-copy-'));
    try {
      const r = await cli(['copy', '--from', url, '--to', copyDir]);
      expect(r.code).toBe(0);
      const dir = join(work, 'from-copy');
      expect((await cli(['restore', '--from', copyDir, DS, '--attachments', dir, '--attachments-only'])).code).toBe(0);
      expect(readFileSync(join(dir, 'vmadm.json')).equals(vmadm)).toBe(true);
      expect((await cli(['verify', copyDir, '--deep'])).code).toBe(0);
    } finally {
      rmSync(copyDir, { recursive: true, force: true });
    }
  });

  it('a flipped byte is refused, naming the attachment: nothing written or received; deep verify reports it', async () => {
    const { prefix } = await streamOf('full');
    const key = `${prefix}attachment.vmadm.json`;
    const damaged = Buffer.from(vmadm);
    damaged[10] = damaged[10]! ^ 0x01;
    await backend.put(key, damaged);
    try {
      const dir = join(work, 'refused');
      const out = join(work, 'refused.zfs');
      const r = await cli(['restore', '--from', url, `${DS}@base`, '--output', out, '--attachments', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^zfs-offsite: error: .*attachment\.vmadm\.json: attachment vmadm\.json is damaged \(SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}\): nothing was written or received\n$/,
      );
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(out)).toBe(false);
      expect((await cli(['verify', url])).code).toBe(0); // quick: present, same size
      const deep = await cli(['verify', url, '--deep', '--json']);
      expect(deep.code).toBe(3);
      const problems = (JSON.parse(deep.stdout) as { problems: { kind: string; object: string; message: string }[] }).problems;
      expect(problems).toEqual([expect.objectContaining({ kind: 'attachment-corrupt', message: expect.stringMatching(/^attachment vmadm\.json is damaged/) })]);
      // copy refuses it too (exit 3), naming it.
      const copyDir = mkdtempSync(join(tmpdir(), 'zfs-offsite-attach-copy-'));
      try {
        const c = await cli(['copy', '--from', url, '--to', copyDir]);
        expect(c.code).toBe(3);
        expect(c.stderr).toMatch(/attachment vmadm\.json at .* is damaged/);
      } finally {
        rmSync(copyDir, { recursive: true, force: true });
      }
      await backend.delete([key]);
      const missing = await cli(['verify', url, '--json']);
      expect(missing.code).toBe(3);
      expect(missing.stdout).toContain('"attachment-missing"');
    } finally {
      await backend.put(key, vmadm);
    }
  });

  it('prune deletes them with their stream', async () => {
    // Two chains of pool/p (fulls @a then @b, one second apart): keeping the last deletes @a's, attachment and all.
    const older = Buffer.from(buildStream({ substreams: [{ ...SYN_FULL, toname: 'pool/p@a', creationTime: 0x6a000000 }] }).bytes);
    const newer = Buffer.from(buildStream({ substreams: [{ ...SYN_FULL, toname: 'pool/p@b', toguid: 0x1234123412341234n, creationTime: 0x6a000100 }] }).bytes);
    expect((await cli(['put', '--to', url, '--attach', `notes.txt=${join(work, 'notes.txt')}`], older)).code).toBe(0);
    expect((await cli(['put', '--to', url, '--attach', `notes.txt=${join(work, 'notes.txt')}`], newer)).code).toBe(0);
    const keys = async () => {
      const found: string[] = [];
      await backend.list('pool/p/', (o) => found.push(o.key));
      return found.filter((k) => k.endsWith('attachment.notes.txt'));
    };
    expect(await keys()).toHaveLength(2);
    const pruned = await cli(['prune', url, 'pool/p', '--keep-last', '1']);
    expect(pruned.stderr).toBe('');
    expect(pruned.code).toBe(0);
    const left = await keys();
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/-full-b-/);
    expect((await cli(['verify', url, 'pool/p'])).code).toBe(0);
  });
});

describe('--attach refuses what is not a regular file, with one line (exit 2, nothing written)', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'zfs-offsite-attach-bad-'));
    writeFileSync(join(work, 'real.json'), '{}');
    symlinkSync(join(work, 'real.json'), join(work, 'link.json'));
    execFileSync('mkfifo', [join(work, 'fifo')]);
    mkdirSync(join(work, 'dir'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.each([
    ['link.json', /--attach a=.*link\.json: a symbolic link, not a regular file: refused/],
    ['fifo', /--attach a=.*fifo: a FIFO, not a regular file: refused/],
    ['dir', /--attach a=.*dir: a directory, not a regular file: refused/],
    ['missing', /--attach a=.*missing: cannot read it \(.*ENOENT/],
  ])('%s', async (file, message) => {
    const archive = join(work, `archive-${file}`);
    const r = await runCli(['put', '--to', archive, '--attach', `a=${join(work, file)}`], { input: FULL });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^zfs-offsite: error: ${message.source}`));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(archive)).toBe(false);
  });

  it.each(['../x', '.hidden', 'a/b', 'sp ace', ''])('refuses the name %j', async (name) => {
    const r = await runCli(['put', '--to', join(work, 'archive-name'), '--attach', `${name}=${join(work, 'real.json')}`], { input: FULL });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zfs-offsite: error: invalid --attach/);
  });

  it('restore --attachments DIR never writes through a symbolic link planted in DIR', async () => {
    const archive = join(work, 'archive-ok');
    expect((await runCli(['put', '--to', archive, '--attach', `real.json=${join(work, 'real.json')}`], { input: FULL })).code).toBe(0);
    const dir = join(work, 'planted');
    mkdirSync(dir);
    const victim = join(work, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, join(dir, 'real.json'));
    const r = await runCli(['restore', '--from', archive, DS, '--attachments', dir, '--attachments-only']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zfs-offsite: error: .*real\.json/);
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
  });
});
