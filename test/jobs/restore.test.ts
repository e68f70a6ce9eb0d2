import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { Backend } from '../../src/storage/backend.js';
import { StreamValidator } from '../../src/stream/validator.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, INCR_AB, INCR_BC, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Fixture chains (full + incremental of one dataset) recorded from OpenZFS. */
const CHAINS = [
  { dataset: 'labpool/zfs-send-tiny', full: 'zse-tiny-full.zfs', incr: 'zse-tiny-incremental.zfs', snaps: ['base', 'incremental'] },
  { dataset: 'labpool/zfse-raw-advanced', full: 'zse-advanced-raw-full.zfs', incr: 'zse-advanced-raw-incremental.zfs', snaps: ['s1', 's2'] },
];

/** A raw full stream of ~3 MiB incompressible data (3+ chunks of 1 MiB), then a -I stream a→b→c. */
const BIG_FULL = (() => {
  const records: ContentRecord[] = Array.from({ length: 24 }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * 128 * 1024, data: randomBytes(128 * 1024), compression: 2 }));
  return Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/big@a', features: RAW_FEATURES, records }] }).bytes);
})();
const COMPOUND_BC = (() =>
  Buffer.from(
    buildStream({
      compound: { toname: 'pool/big@c' },
      substreams: [
        { ...INCR_AB, toname: 'pool/big@b', features: RAW_FEATURES, records: [] },
        { ...INCR_BC, toname: 'pool/big@c', features: RAW_FEATURES, records: [] },
      ],
    }).bytes,
  ))();

describe.each(testTargets())('restore from $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let out: string;
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });
  const restoreTo = (what: string, file: string, ...args: string[]) => cli(['restore', '--from', url, what, '--output', file, ...args]);

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-restore-'));
    for (const chain of CHAINS) {
      for (const f of [chain.full, chain.incr]) expect((await cli(['put', '--to', url, '--chunk-size', '1M'], fixtureBytes(f))).code).toBe(0);
    }
    expect((await cli(['put', '--to', url, '--chunk-size', '1M'], BIG_FULL)).code).toBe(0);
    expect((await cli(['put', '--to', url, '--chunk-size', '1M'], COMPOUND_BC)).code).toBe(0);
  });
  afterAll(async () => {
    await cleanup?.();
    rmSync(out, { recursive: true, force: true });
  });

  async function manifestOf(dataset: string, kind: 'full' | 'incr'): Promise<{ manifest: Manifest; prefix: string }> {
    const keys: string[] = [];
    await backend.list(`${dataset}/`, (o) => keys.push(o.key));
    for (const key of keys.filter((k) => k.endsWith('manifest.json'))) {
      const manifest = JSON.parse((await backend.getBuffer(key)).toString()) as Manifest;
      if (manifest.kind === kind) return { manifest, prefix: key.slice(0, -'manifest.json'.length) };
    }
    throw new Error(`no ${kind} stream of ${dataset}`);
  }

  it.each(CHAINS)('restores the $dataset chain byte-identically with --output', async (chain) => {
    const file = join(out, `${chain.snaps[1]}.zfs`);
    const r = await restoreTo(chain.dataset, file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(file).equals(Buffer.concat([fixtureBytes(chain.full), fixtureBytes(chain.incr)]))).toBe(true);
    expect(existsSync(`${file}.partial`)).toBe(false);
    const first = join(out, `${chain.snaps[0]}.zfs`);
    expect((await restoreTo(`${chain.dataset}@${chain.snaps[0]}`, first)).code).toBe(0);
    expect(readFileSync(first).equals(fixtureBytes(chain.full))).toBe(true);
  });

  it('plans the right streams with --dry-run, writing nothing', async () => {
    const file = join(out, 'dry.zfs');
    const r = await restoreTo('labpool/zfs-send-tiny', file, '--dry-run', '--json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as { target: { name: string }; streams: { kind: string; toname: string; whole: boolean }[]; done: boolean };
    expect(plan.target.name).toBe('incremental');
    expect(plan.streams.map((s) => [s.kind, s.toname, s.whole])).toEqual([
      ['full', 'labpool/zfs-send-tiny@base', true],
      ['incr', 'labpool/zfs-send-tiny@incremental', true],
    ]);
    expect(plan.done).toBe(false);
    expect(existsSync(file)).toBe(false);
    const human = await restoreTo('labpool/zfs-send-tiny@base', file, '--dry-run');
    expect(human.stdout).toMatch(/^would restore labpool\/zfs-send-tiny@base \(guid \d+\) into .*dry\.zfs:\n {2}1\. full labpool\/zfs-send-tiny@base ← /);
  });

  it('restores multi-chunk streams and the intermediate snapshot of a -I stream as a valid stream', async () => {
    const all = join(out, 'big-c.zfs');
    expect((await restoreTo('pool/big', all)).code).toBe(0);
    expect(readFileSync(all).equals(Buffer.concat([BIG_FULL, COMPOUND_BC]))).toBe(true);
    const toB = join(out, 'big-b.zfs');
    const r = await restoreTo('pool/big@b', toB, '--json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as { streams: { whole: boolean; substreams: { first: number; last: number } }[] };
    expect(plan.streams.map((s) => [s.whole, s.substreams.first, s.substreams.last])).toEqual([
      [true, 0, 0],
      [false, 0, 0],
    ]);
    // The cut -I stream (header + a→b + conclusion END) is itself a complete, valid send stream.
    const bytes = readFileSync(toB);
    expect(bytes.subarray(0, BIG_FULL.length).equals(BIG_FULL)).toBe(true);
    const partial = bytes.subarray(BIG_FULL.length);
    const v = new StreamValidator();
    v.push(partial);
    const summary = v.finish();
    expect(summary.compound).toBe(true);
    expect(summary.substreams.map((s) => s.toname)).toEqual(['pool/big@b']);
  });

  it('refuses a chunk with one flipped byte, naming the object, before its bytes reach the output', async () => {
    const { manifest, prefix } = await manifestOf('pool/big', 'full');
    const victim = manifest.chunks[1]!;
    const original = await backend.getBuffer(prefix + victim.key);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    await backend.put(prefix + victim.key, damaged);
    try {
      const file = join(out, 'damaged.zfs');
      const r = await restoreTo('pool/big@a', file);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^zfs-offsite: error: .*${victim.key}: SHA-256 is [0-9a-f]{64}, the manifest says ${victim.storedSha256}`));
      expect(existsSync(file)).toBe(false);
      expect(existsSync(`${file}.partial`)).toBe(false);
      // On stdout only the chunks before the damaged one can have been written.
      const piped = await cli(['restore', '--from', url, 'pool/big@a', '--output', '-', '--parallel', '4']);
      expect(piped.code).toBe(1);
      expect(piped.stdoutBytes.length).toBeLessThanOrEqual(manifest.chunks[0]!.rawSize);
      expect(piped.stdoutBytes.equals(BIG_FULL.subarray(0, piped.stdoutBytes.length))).toBe(true);
    } finally {
      await backend.put(prefix + victim.key, original);
    }
  });

  it('refuses a missing chunk object, naming it', async () => {
    const { manifest, prefix } = await manifestOf('pool/big', 'full');
    const victim = manifest.chunks.at(-1)!;
    const original = await backend.getBuffer(prefix + victim.key);
    await backend.delete([prefix + victim.key]);
    try {
      const r = await restoreTo('pool/big@a', join(out, 'missing.zfs'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`${victim.key}: chunk object is missing`));
    } finally {
      await backend.put(prefix + victim.key, original);
    }
  });

  it('names the missing link when a base manifest is deleted, exit 2, nothing written', async () => {
    const { manifest, prefix } = await manifestOf('labpool/zfs-send-tiny', 'full');
    const original = await backend.getBuffer(`${prefix}manifest.json`);
    await backend.delete([`${prefix}manifest.json`]);
    try {
      const file = join(out, 'broken.zfs');
      const r = await restoreTo('labpool/zfs-send-tiny@incremental', file);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `zfs-offsite: error: cannot restore labpool/zfs-send-tiny@incremental (guid ${(await manifestOf('labpool/zfs-send-tiny', 'incr')).manifest.to.guid}): ` +
          `stream ${(await manifestOf('labpool/zfs-send-tiny', 'incr')).manifest.streamId} needs base snapshot guid ${manifest.to.guid}, which no archived stream provides (missing or deleted stream)\n`,
      );
      expect(existsSync(file)).toBe(false);
    } finally {
      await backend.put(`${prefix}manifest.json`, original);
    }
  });

  it('refuses unknown datasets and snapshots with exit 2', async () => {
    const none = await restoreTo('no/such', join(out, 'x.zfs'));
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^zfs-offsite: error: no dataset no\/such in the archive at .* \(it holds: .*labpool\/zfs-send-tiny.*\)\n$/);
    const snap = await restoreTo('labpool/zfs-send-tiny@nope', join(out, 'x.zfs'));
    expect(snap.code).toBe(2);
    expect(snap.stderr).toMatch(/snapshot labpool\/zfs-send-tiny@nope is not in the archive/);
  });

  it('checks the restored bytes by hash, not only by length', async () => {
    const file = join(out, 'hash.zfs');
    expect((await restoreTo('labpool/zfse-raw-advanced@s2', file)).code).toBe(0);
    expect(sha256(readFileSync(file))).toBe(sha256(Buffer.concat([fixtureBytes('zse-advanced-raw-full.zfs'), fixtureBytes('zse-advanced-raw-incremental.zfs')])));
  });
});
