import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { Backend } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

interface Report {
  mode: string;
  seed?: number;
  problems: { kind: string; dataset: string; stream?: string; object?: string; expected?: string; found?: string }[];
  sampledObjects?: string[];
  datasets: { dataset: string; chunksChecked: number }[];
}

/** ~4 MiB of raw-like data over 1 MiB chunks: enough objects for random damage. */
const BIG = Buffer.from(
  buildStream({
    substreams: [
      {
        ...FULL,
        toname: 'pool/audit@a',
        features: RAW_FEATURES,
        records: Array.from({ length: 32 }, (_, i): ContentRecord => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 })),
      },
    ],
  }).bytes,
);

describe.each(testTargets())('verify on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  const verify = async (...args: string[]) => {
    const r = await runCli(['verify', url, ...args, '--json'], { env });
    return { code: r.code, stderr: r.stderr, report: (r.stdout ? JSON.parse(r.stdout) : undefined) as Report };
  };

  async function stream(dataset: string, kind: 'full' | 'incr'): Promise<{ m: Manifest; prefix: string }> {
    const keys: string[] = [];
    await backend.list(`${dataset}/`, (o) => keys.push(o.key));
    for (const key of keys.filter((k) => k.endsWith('/manifest.json'))) {
      const m = JSON.parse((await backend.getBuffer(key)).toString()) as Manifest;
      if (m.kind === kind && m.dataset === dataset) return { m, prefix: key.slice(0, -'manifest.json'.length) };
    }
    throw new Error(`no ${kind} stream of ${dataset}`);
  }

  /** Damages the archive, runs `check`, and undoes the damage whatever happens. */
  async function withDamage(key: string, damage: (original: Buffer) => Promise<void>, check: () => Promise<void>): Promise<void> {
    const original = await backend.getBuffer(key);
    await damage(original);
    try {
      await check();
    } finally {
      await backend.put(key, original);
    }
  }

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    for (const input of [fixtureBytes('zse-tiny-full.zfs'), fixtureBytes('zse-tiny-incremental.zfs'), BIG]) {
      expect((await runCli(['put', '--to', url, '--chunk-size', '1M'], { env, input })).code).toBe(0);
    }
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('finds a clean archive clean, quick and deep (exit 0)', async () => {
    const quick = await verify();
    expect(quick.report.problems).toEqual([]);
    expect(quick.code).toBe(0);
    const deep = await verify('--deep');
    expect(deep.code).toBe(0);
    expect(deep.report.mode).toBe('deep');
    expect(deep.report.datasets.find((d) => d.dataset === 'pool/audit')!.chunksChecked).toBe(5);
  });

  it('reports one flipped byte in a random chunk object, naming it, in 20 of 20 trials', async () => {
    const { m, prefix } = await stream('pool/audit', 'full');
    let found = 0;
    for (let trial = 0; trial < 20; trial++) {
      const chunk = m.chunks[randomInt(m.chunks.length)]!;
      const key = prefix + chunk.key;
      await withDamage(
        key,
        async (original) => {
          const damaged = Buffer.from(original);
          damaged[randomInt(damaged.length)]! ^= 1 << randomInt(8);
          await backend.put(key, damaged);
        },
        async () => {
          const r = await verify('pool/audit', '--deep');
          expect(r.code).toBe(3);
          const hits = r.report.problems.filter((p) => p.kind === 'chunk-corrupt' && p.object === `${backend.location}/${key}`);
          expect(hits).toHaveLength(1);
          expect(hits[0]!.expected).toBe(chunk.storedSha256);
          found++;
        },
      );
    }
    expect(found).toBe(20);
  });

  it('quick verify reports a deleted chunk and a truncated chunk', async () => {
    const { m, prefix } = await stream('pool/audit', 'full');
    const key = prefix + m.chunks[2]!.key;
    await withDamage(
      key,
      async () => backend.delete([key]),
      async () => {
        const r = await verify();
        expect(r.code).toBe(3);
        expect(r.report.problems).toEqual([expect.objectContaining({ kind: 'chunk-missing', object: `${backend.location}/${key}`, stream: m.streamId })]);
      },
    );
    await withDamage(
      key,
      async (original) => void (await backend.put(key, original.subarray(0, original.length - 1))),
      async () => {
        const r = await verify();
        expect(r.code).toBe(3);
        expect(r.report.problems).toEqual([expect.objectContaining({ kind: 'chunk-size', expected: String(m.chunks[2]!.storedSize), found: String(m.chunks[2]!.storedSize - 1) })]);
      },
    );
  });

  it('deep and sampled verify report a deleted chunk once, not once per check (issue 16.5)', async () => {
    const { m, prefix } = await stream('pool/audit', 'full');
    const key = prefix + m.chunks[1]!.key;
    await withDamage(
      key,
      async () => backend.delete([key]),
      async () => {
        for (const how of [['--deep'], ['--sample', '100%']]) {
          const r = await verify('pool/audit', ...how);
          expect(r.code).toBe(3);
          const hits = r.report.problems.filter((p) => p.object === `${backend.location}/${key}`);
          expect(hits.map((p) => p.kind)).toEqual(['chunk-missing']);
        }
      },
    );
  });

  it('quick verify reports a deleted base manifest as a broken chain', async () => {
    const base = await stream('labpool/zfs-send-tiny', 'full');
    const incr = await stream('labpool/zfs-send-tiny', 'incr');
    await withDamage(
      `${base.prefix}manifest.json`,
      async () => backend.delete([`${base.prefix}manifest.json`]),
      async () => {
        const r = await verify('--stale-after', '0');
        expect(r.code).toBe(3);
        const kinds = r.report.problems.map((p) => `${p.kind} ${p.stream}`).sort();
        expect(kinds).toEqual([`chain-broken ${incr.m.streamId}`, `orphan-object ${base.m.streamId}`].sort());
      },
    );
  });

  it('quick verify reports a manifest edited to a wrong hash', async () => {
    const { m, prefix } = await stream('pool/audit', 'full');
    const key = `${prefix}manifest.json`;
    await withDamage(
      key,
      async () => {
        const edited = structuredClone(m);
        edited.chunks[1]!.storedSha256 = 'f'.repeat(64);
        await backend.put(key, Buffer.from(JSON.stringify(edited)));
      },
      async () => {
        const r = await verify();
        expect(r.code).toBe(3);
        expect(r.report.problems).toEqual([expect.objectContaining({ kind: 'sums-mismatch', expected: 'f'.repeat(64), found: m.chunks[1]!.storedSha256 })]);
      },
    );
  });

  it('quick verify reports an orphaned in-progress stream with its age, only once it is stale', async () => {
    const prefix = 'pool/audit/20200101T000000Z-incr-lost-0123abcd/';
    await backend.put(`${prefix}journal.json`, Buffer.from('{"status":"in-progress"}'));
    await backend.put(`${prefix}000000.zst`, randomBytes(1000));
    try {
      expect((await verify()).code).toBe(0); // fresh: a run may be writing it right now
      const r = await verify('--stale-after', '0');
      expect(r.code).toBe(3);
      expect(r.report.problems).toEqual([expect.objectContaining({ kind: 'stale-in-progress', stream: '20200101T000000Z-incr-lost-0123abcd', found: expect.stringMatching(/^\d+ s old$/) })]);
    } finally {
      await backend.delete([`${prefix}journal.json`, `${prefix}000000.zst`]);
    }
  });

  it('samples deterministically by seed, and different seeds check different chunks', async () => {
    const a = await verify('--sample', '40%', '--seed', '7');
    const b = await verify('--sample', '40%', '--seed', '7');
    expect(a.code).toBe(0);
    expect(a.report.seed).toBe(7);
    expect(a.report.sampledObjects).toEqual(b.report.sampledObjects);
    const others = await Promise.all([8, 9, 10].map((seed) => verify('--sample', '40%', '--seed', String(seed))));
    expect(others.some((o) => JSON.stringify(o.report.sampledObjects) !== JSON.stringify(a.report.sampledObjects))).toBe(true);
    const limited = await verify('--max-bytes', '1M', '--seed', '3');
    expect(limited.report.sampledObjects!.length).toBeGreaterThanOrEqual(1);
  });
});

describe('verify: usage and unreachable targets', () => {
  it('exits 1 when the target cannot be checked (its marker is a link), 4 when it is a file and holds no archive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-linked-marker-'));
    try {
      symlinkSync('/etc/hostname', join(dir, 'zfs-offsite.json'));
      const linked = await runCli(['verify', dir]);
      expect(linked.code).toBe(1);
      expect(linked.stderr).toMatch(/^zfs-offsite: error: .*zfs-offsite\.json is a symbolic link/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const file = join(tmpdir(), `zfs-offsite-not-a-dir-${process.pid}`);
    writeFileSync(file, 'x');
    const r = await runCli(['verify', file]);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(`zfs-offsite: error: no archive at ${file} (no zfs-offsite.json) — is it mounted?\n`);
  });

  it.each([[['--sample', '0%']], [['--sample', '5%', '--max-bytes', '1G']], [['--seed', '1']], [['--stale-after', 'soon']]])('exits 2 on bad usage %j', async (args) => {
    const r = await runCli(['verify', '/tmp', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
