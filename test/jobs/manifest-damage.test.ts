/**
 * Damaged and edited manifests through the built CLI (issue 13, findings 4–6), on a local
 * directory and the real SFTP server (reading a target):
 *   - a zero-byte (or foreign) manifest is one problem of one stream: list shows it and the
 *     others, verify reports it (exit 3), restore refuses only what needs it, a rerun of the same
 *     stream rewrites it, and the next incremental archives;
 *   - manifest edits that used to pass verify and make restore write other bytes with exit 0 are
 *     reported by quick and deep verify, and restore --output refuses them, leaving no file;
 *   - a reader of `restore --output -` that goes away is a failure (exit 1, one line).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { Backend } from '../../src/storage/backend.js';
import { CLI, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, INCR_AB, INCR_BC, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

interface Problem {
  kind: string;
  dataset: string;
  stream?: string;
  object?: string;
  field?: string;
  message: string;
}

const TINY = { dataset: 'labpool/zfs-send-tiny', full: fixtureBytes('zse-tiny-full.zfs'), incr: fixtureBytes('zse-tiny-incremental.zfs') };
const OTHER = { dataset: 'labpool/zfse-raw-advanced', full: fixtureBytes('zse-advanced-raw-full.zfs') };

/** ~3 MiB of incompressible data over 1 MiB chunks (4 chunks), then a -I stream a → b → c. */
const BIG = Buffer.from(
  buildStream({
    substreams: [
      {
        ...FULL,
        toname: 'pool/big@a',
        features: RAW_FEATURES,
        records: Array.from({ length: 24 }, (_, i): ContentRecord => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 })),
      },
    ],
  }).bytes,
);
const COMPOUND = Buffer.from(
  buildStream({
    compound: { toname: 'pool/big@c' },
    substreams: [
      { ...INCR_AB, toname: 'pool/big@b', features: RAW_FEATURES, records: [{ kind: 'write', object: 2, offset: 0, data: randomBytes(4096), compression: 2 }] },
      { ...INCR_BC, toname: 'pool/big@c', features: RAW_FEATURES, records: [{ kind: 'write', object: 2, offset: 4096, data: randomBytes(4096), compression: 2 }] },
    ],
  }).bytes,
);

/** Manifest edits that quick and deep verify used to call clean while restore wrote other bytes. */
const EDITS: { name: string; field: string; edit(m: Manifest): void }[] = [
  { name: 'rawBytes lowered', field: 'rawBytes', edit: (m) => void (m.rawBytes -= 1000) },
  { name: 'two chunk entries swapped', field: 'chunks[1].index', edit: (m) => void ([m.chunks[1], m.chunks[2]] = [m.chunks[2]!, m.chunks[1]!]) },
  { name: 'an index out of range', field: 'chunks[3].index', edit: (m) => void (m.chunks[3]!.index = 7) },
  { name: 'a duplicated entry', field: 'chunks[2].index', edit: (m) => void m.chunks.splice(2, 0, structuredClone(m.chunks[1]!)) },
  { name: 'rawSize 0', field: 'chunks[3].rawSize', edit: (m) => void (m.chunks[3]!.rawSize = 0) },
  { name: 'an empty chunks list', field: 'chunks', edit: (m) => void (m.chunks = []) },
];

const targets = testTargets().filter((t) => !t.name.startsWith('S3'));

describe.each(targets)('damaged manifests on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let out: string;
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, input });
  const put = (input: Buffer) => cli(['put', '--to', url, '--chunk-size', '1M'], input);
  const verify = async (...args: string[]) => {
    const r = await cli(['verify', url, ...args, '--json']);
    return { code: r.code, stderr: r.stderr, problems: r.stdout ? (JSON.parse(r.stdout) as { problems: Problem[] }).problems : [] };
  };

  async function manifestKey(dataset: string, kind: 'full' | 'incr'): Promise<{ key: string; streamId: string }> {
    const keys: string[] = [];
    await backend.list(`${dataset}/`, (o) => keys.push(o.key));
    const key = keys.find((k) => k.endsWith('/manifest.json') && k.split('/').at(-2)!.includes(`-${kind}-`));
    if (!key) throw new Error(`no ${kind} stream of ${dataset}`);
    return { key, streamId: key.split('/').at(-2)! };
  }

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-damage-'));
    for (const input of [TINY.full, OTHER.full, BIG, COMPOUND]) {
      const r = await put(input);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });
  afterAll(async () => {
    await cleanup?.();
    rmSync(out, { recursive: true, force: true });
  });

  it('a zero-byte manifest: one problem of one stream; a rerun rewrites it; the next incremental archives', async () => {
    const { key, streamId } = await manifestKey(TINY.dataset, 'full');
    await backend.put(key, Buffer.alloc(0));

    // The next incremental archives (its base lookup reads the damaged manifest's directory).
    const incr = await put(TINY.incr);
    expect(incr.stderr).toBe('');
    expect(incr.code).toBe(0);
    expect(incr.stdout).toMatch(/^archived labpool\/zfs-send-tiny@incremental /);

    const list = await cli(['list', url]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`DAMAGED: ${streamId}: manifest is empty (0 bytes)`);
    expect(list.stdout).toContain('labpool/zfse-raw-advanced');
    expect(list.stdout).toMatch(/broken: \d{8}T\d{6}Z-incr-incremental-/);
    const json = JSON.parse((await cli(['list', url, '--json'])).stdout) as { dataset: string; streams: unknown[]; damaged: { streamId: string; kind: string }[] }[];
    expect(json.find((d) => d.dataset === TINY.dataset)!.damaged).toEqual([expect.objectContaining({ streamId, kind: 'manifest-unreadable' })]);
    expect(json.find((d) => d.dataset === OTHER.dataset)!.streams).toHaveLength(1);

    const v = await verify();
    expect(v.code).toBe(3);
    expect(v.problems).toContainEqual(expect.objectContaining({ kind: 'manifest-unreadable', dataset: TINY.dataset, stream: streamId, object: `${backend.location}/${key}` }));
    expect(v.problems.filter((p) => p.dataset === OTHER.dataset || p.dataset === 'pool/big')).toEqual([]);
    expect((await verify('--deep')).code).toBe(3);

    // Restore of what needs the damaged stream fails in one line; other datasets restore.
    const file = join(out, 'tiny.zfs');
    const refused = await cli(['restore', '--from', url, TINY.dataset, '--output', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^zfs-offsite: error: cannot tell the newest snapshot of labpool\/zfs-send-tiny: .*manifest is empty/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    const named = await cli(['restore', '--from', url, `${TINY.dataset}@incremental`, '--output', file]);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(/needs base snapshot guid \d+.*damaged/);
    expect(existsSync(file)).toBe(false);
    const other = join(out, 'other.zfs');
    expect((await cli(['restore', '--from', url, OTHER.dataset, '--output', other])).code).toBe(0);
    expect(readFileSync(other).equals(OTHER.full)).toBe(true);

    // A dry-run prune keeps the damaged dataset whole and says why; the others are planned.
    const prune = await cli(['prune', url, '--keep-last', '1', '--dry-run', '--json']);
    expect(prune.code).toBe(1);
    const report = JSON.parse(prune.stdout) as { datasets: { dataset: string; deleted: unknown[]; damaged?: { streamId: string }[]; error?: string }[] };
    const tiny = report.datasets.find((d) => d.dataset === TINY.dataset)!;
    expect(tiny.deleted).toEqual([]);
    expect(tiny.damaged).toEqual([expect.objectContaining({ streamId })]);
    expect(report.datasets.find((d) => d.dataset === 'pool/big')!.error).toBeUndefined();

    // The rerun of the same stream writes it anew: not "already archived".
    const rerun = await put(TINY.full);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(/^archived labpool\/zfs-send-tiny@base \(full\)/);
    expect(JSON.parse((await backend.getBuffer(key)).toString()).streamId).toBe(streamId);
    expect(await verify()).toEqual({ code: 0, stderr: '', problems: [] });
    expect((await put(TINY.full)).stdout).toMatch(/^already archived: /);
    const restored = await cli(['restore', '--from', url, TINY.dataset, '--output', file]);
    expect(restored.code).toBe(0);
    expect(readFileSync(file).equals(Buffer.concat([TINY.full, TINY.incr]))).toBe(true);
  });

  it('a valid manifest of another stream in its directory is not "already archived"', async () => {
    const { key, streamId } = await manifestKey(TINY.dataset, 'full');
    const foreign = await backend.getBuffer((await manifestKey(OTHER.dataset, 'full')).key);
    await backend.put(key, foreign);
    const v = await verify();
    expect(v.code).toBe(3);
    expect(v.problems).toContainEqual(expect.objectContaining({ kind: 'manifest-invalid', stream: streamId, field: 'dataset' }));
    // Its incremental has lost its base until the rewrite.
    expect(v.problems.map((p) => p.kind).sort()).toEqual(['chain-broken', 'manifest-invalid']);
    const rerun = await put(TINY.full);
    expect(rerun.stdout).toMatch(/^archived /);
    expect((await verify()).code).toBe(0);
  });

  describe('manifest edits', () => {
    let key: string;
    let original: Buffer;
    beforeAll(async () => {
      key = (await manifestKey('pool/big', 'full')).key;
      original = await backend.getBuffer(key);
    });

    /** Puts the edited manifest, runs `check`, and puts the original back whatever happens. */
    async function withEdited(edit: (m: Manifest) => void, check: () => Promise<void>): Promise<void> {
      const m = JSON.parse(original.toString()) as Manifest;
      edit(m);
      await backend.put(key, Buffer.from(JSON.stringify(m)));
      try {
        await check();
      } finally {
        await backend.put(key, original);
      }
    }

    async function expectRefused(what: string, message: RegExp): Promise<void> {
      const file = join(out, `${what.replace(/\W/g, '_')}.zfs`);
      const r = await cli(['restore', '--from', url, what, '--output', file]);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.code).toBe(1);
      expect(existsSync(file)).toBe(false);
      expect(existsSync(`${file}.partial`)).toBe(false);
    }

    it.each(EDITS)('$name: verify reports the field (exit 3), restore --output refuses and writes no file', async ({ field, edit }) => {
      await withEdited(edit, async () => {
        for (const mode of [[], ['--deep']]) {
          const v = await verify(...mode);
          expect(v.code).toBe(3);
          expect(v.problems).toContainEqual(expect.objectContaining({ kind: 'manifest-invalid', dataset: 'pool/big', field, object: `${backend.location}/${key}` }));
          // The -I stream built on it has lost its base until the manifest is rewritten.
          expect(v.problems.map((p) => p.kind).sort()).toEqual(['chain-broken', 'manifest-invalid']);
        }
        await expectRefused('pool/big', /cannot tell the newest snapshot of pool\/big: .*invalid manifest/);
        await expectRefused('pool/big@a', /pool\/big@a is not in the archive.*damaged/);
        await expectRefused('pool/big@c', /needs base snapshot guid.*damaged/);
      });
    });

    it('the last chunk, rawBytes and the substream shortened together: deep verify reports it, restore refuses', async () => {
      await withEdited(
        (m) => {
          m.chunks.at(-1)!.rawSize -= 100;
          m.rawBytes -= 100;
          m.substreams[0]!.bytes -= 100;
        },
        async () => {
          const v = await verify('--deep');
          expect(v.code).toBe(3);
          expect(v.problems).toEqual([expect.objectContaining({ kind: expect.stringMatching(/^chunk-(raw-mismatch|undecodable)$/), object: expect.stringMatching(/000003\.zst$/) })]);
          await expectRefused('pool/big@a', /000003\.zst: /);
        },
      );
    });

    it('a wrong whole-stream SHA-256: restore refuses before the end, no file', async () => {
      await withEdited(
        (m) => void (m.sha256 = 'a'.repeat(64)),
        async () => {
          expect((await verify('--deep')).problems).toEqual([expect.objectContaining({ kind: 'stream-hash-mismatch' })]);
          await expectRefused('pool/big@a', /stream's SHA-256 is [0-9a-f]{64}, the manifest says a{64}/);
        },
      );
    });

    it('-I substream boundaries moved consistently: the cut stream is refused', async () => {
      const incr = (await manifestKey('pool/big', 'incr')).key;
      const saved = await backend.getBuffer(incr);
      const m = JSON.parse(saved.toString()) as Manifest;
      m.substreams[0]!.bytes += 8;
      m.substreams[1]!.offset += 8;
      m.substreams[1]!.bytes -= 8;
      await backend.put(incr, Buffer.from(JSON.stringify(m)));
      try {
        await expectRefused('pool/big@b', /the cut stream/);
        const whole = join(out, 'big-c.zfs');
        expect((await cli(['restore', '--from', url, 'pool/big@c', '--output', whole])).code).toBe(0);
        expect(readFileSync(whole).equals(Buffer.concat([BIG, COMPOUND]))).toBe(true);
      } finally {
        await backend.put(incr, saved);
      }
    });
  });

  it('restore --output - whose reader goes away: exit 1, one line saying so', async () => {
    const child = spawn(process.execPath, [CLI, 'restore', '--from', url, 'pool/big@a', '--output', '-'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const stderr: Buffer[] = [];
    child.stderr.on('data', (b: Buffer) => stderr.push(b));
    let got = 0;
    // Like `| head -c 1000`: read 1000 bytes, then close the pipe.
    child.stdout.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= 1000) child.stdout.destroy();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const text = Buffer.concat(stderr).toString();
    expect(text).toMatch(/^zfs-offsite: error: the reader of the output went away \(EPIPE\) after \d+ bytes were passed to it: the output is incomplete\n$/);
    expect(code).toBe(1);
  });
});
