/**
 * Issue 17 (scale): the stream index (src/archive/format/stream-index.ts) changes how much is
 * read, never what the commands answer. list, verify and restore print the same with a valid
 * index, without one, with a garbage one and with one in segments (any of them garbage, stale
 * or missing); read-only commands write nothing (not even an index that is missing); a writer
 * rebuilds it; prune keeps it in step with what it deleted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryOf, indexKey, parseIndex, readIndex, writeIndex } from '../../src/archive/format/stream-index.js';
import { MANIFEST_NAME, SUMS_NAME } from '../../src/archive/format/keys.js';
import { Repository } from '../../src/archive/repository.js';
import type { Backend, ObjectInfo } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { buildStream } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const DS = 'pool/idx';
const guid = (n: number) => 0x3000_0000_0000_0000n + BigInt(n);
const day = (d: number) => Date.UTC(2026, 0, d, 2) / 1000;
const stream = (i: number) => Buffer.from(buildStream({ substreams: [{ toname: `${DS}@s${i}`, toguid: guid(i + 1), fromguid: i === 0 ? 0n : guid(i), creationTime: day(i + 1) }] }).bytes);

/** Every object with its size and fingerprint: what "writes nothing" is checked against. */
async function snapshot(backend: Backend): Promise<string[]> {
  const out: ObjectInfo[] = [];
  await backend.list('', (o) => out.push(o));
  return out.map((o) => `${o.key} ${o.size} ${o.etag ?? o.modified?.toISOString()}`).sort();
}

/** A command's JSON output without its timings. */
function answer(stdout: string): unknown {
  return JSON.parse(stdout, (k, v: unknown) => (k === 'seconds' ? undefined : v));
}

describe.each(testTargets())('the stream index on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let out: string;
  const cli = (args: string[]) => runCli(args, { env });

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zo-index-cli-'));
    for (let i = 0; i < 4; i++) {
      const r = await runCli(['put', '--to', url, '--no-progress'], { env, input: stream(i) });
      expect(r.code, r.stderr).toBe(0);
    }
  }, 180_000);

  afterAll(async () => {
    await cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  /** list, verify and a restore (plan and bytes) of the archive as it is now. */
  async function answers(): Promise<unknown[]> {
    const list = await cli(['list', url, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const verify = await cli(['verify', url, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const plan = await cli(['restore', '--from', url, DS, '--dry-run', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const file = join(out, `s-${Math.random()}.zfs`);
    const restore = await cli(['restore', '--from', url, `${DS}@s3`, '--output', file]);
    expect(restore.code, restore.stderr).toBe(0);
    return [answer(list.stdout), answer(verify.stdout), answer(plan.stdout), readFileSync(file).toString('base64'), list.stderr, verify.stderr];
  }

  it("put records its stream's entry from the manifest it wrote, exactly as one made from the stored manifest read back", async () => {
    const index = parseIndex(await backend.getBuffer(indexKey(DS)), DS)!;
    const repo = new Repository(backend);
    const listed = new Map<string, ObjectInfo>();
    await backend.list('', (o) => listed.set(o.key, o));
    expect(index.size).toBe(4);
    for (const [streamId, entry] of index) {
      const read = await repo.readManifest({ dataset: DS, streamId });
      if (!('manifest' in read)) throw new Error(`${streamId}: no manifest`);
      const prefix = repo.streamPrefix({ dataset: DS, streamId });
      const fromStored = JSON.parse(JSON.stringify(entryOf(read.manifest, listed.get(prefix + MANIFEST_NAME)!, listed.get(prefix + SUMS_NAME))));
      expect(entry).toEqual(fromStored);
    }
  });

  it('answers the same with a valid, a missing and a garbage index, and read-only commands write nothing', async () => {
    const index = parseIndex(await backend.getBuffer(indexKey(DS)), DS);
    expect(index?.size).toBe(4);
    const before = await snapshot(backend);
    const withIndex = await answers();
    expect(await snapshot(backend)).toEqual(before);

    await backend.delete([indexKey(DS)]);
    const without = await snapshot(backend);
    expect(await answers()).toEqual(withIndex);
    // Not even a missing index is written by list, verify, restore or prune --dry-run.
    const prune = await cli(['prune', url, DS, '--keep-last', '1', '--dry-run']);
    expect(prune.code, prune.stderr).toBe(0);
    expect(await snapshot(backend)).toEqual(without);

    await backend.put(indexKey(DS), Buffer.from('{"format":"zfs-offsite-index"'));
    expect(await answers()).toEqual(withIndex);

    // The next writer rebuilds it.
    const put = await runCli(['put', '--to', url, '--no-progress'], { env, input: stream(4) });
    expect(put.code, put.stderr).toBe(0);
    expect(parseIndex(await backend.getBuffer(indexKey(DS)), DS)?.size).toBe(5);
  }, 240_000);

  it('answers the same with the index in segments, and with a sealed segment garbage, stale or missing; read-only commands write nothing', async () => {
    const full = (await readIndex(backend, DS))!;
    const reference = await answers();
    // Two entries to a segment: a head naming two sealed segments (as 1,000 streams make at 500 each).
    await writeIndex(backend, DS, full, 2);
    const sealed = indexKey(DS).replace(/~index\.json$/, '~index-000001.json');
    const body = (await backend.getBuffer(sealed)).toString();
    const stale = JSON.parse(body) as { streams: Record<string, { object: { size: number } }> };
    for (const e of Object.values(stale.streams)) e.object.size += 1;
    const pieces: [string, Buffer | undefined][] = [
      ['valid', Buffer.from(body)],
      ['garbage', Buffer.from(body.slice(0, 40))],
      ['stale', Buffer.from(JSON.stringify(stale))],
      ['missing', undefined],
    ];
    try {
      for (const [what, piece] of pieces) {
        if (piece) await backend.put(sealed, piece);
        else await backend.delete([sealed]);
        const before = await snapshot(backend);
        expect(await answers(), what).toEqual(reference);
        expect(await snapshot(backend), what).toEqual(before);
      }
    } finally {
      await writeIndex(backend, DS, full);
    }
    expect(parseIndex(await backend.getBuffer(indexKey(DS)), DS)?.size).toBe(full.size);
  }, 300_000);

  it('verify reports a missing chunk with the index as without it, and never the index itself', async () => {
    const keys: string[] = [];
    await backend.list(`${DS}/`, (o) => keys.push(o.key));
    const chunk = keys.filter((k) => k.endsWith('/000000.zst')).sort()[1]!;
    const body = await backend.getBuffer(chunk);
    await backend.delete([chunk]);
    try {
      const withIndex = await cli(['verify', url, '--json']);
      expect(withIndex.code).toBe(3);
      const problems = (answer(withIndex.stdout) as { problems: { kind: string; object?: string }[] }).problems;
      expect(problems.map((p) => p.kind)).toEqual(['chunk-missing']);
      expect(problems[0]!.object).toContain(chunk);
      const index = await backend.getBuffer(indexKey(DS));
      await backend.delete([indexKey(DS)]);
      const without = await cli(['verify', url, '--json']);
      await backend.put(indexKey(DS), index);
      expect(answer(without.stdout)).toEqual(answer(withIndex.stdout));
    } finally {
      await backend.put(chunk, body);
    }
  }, 120_000);

  it('prune rewrites the index without the streams it deleted', async () => {
    // A new full: keeping the newest snapshot no longer needs the old chain.
    const full = Buffer.from(buildStream({ substreams: [{ toname: `${DS}@f`, toguid: guid(100), creationTime: day(20) }] }).bytes);
    const put = await runCli(['put', '--to', url, '--no-progress'], { env, input: full });
    expect(put.code, put.stderr).toBe(0);
    const prune = await cli(['prune', url, DS, '--keep-last', '1']);
    expect(prune.code, prune.stderr).toBe(0);
    const index = parseIndex(await backend.getBuffer(indexKey(DS)), DS)!;
    const list = answer((await cli(['list', url, DS, '--json'])).stdout) as { streams: { streamId: string }[] }[];
    expect([...index.keys()].sort()).toEqual(list[0]!.streams.map((s) => s.streamId).sort());
    expect([...index.values()].map((e) => e.stream.to.name)).toEqual(['f']);
  }, 120_000);
});
