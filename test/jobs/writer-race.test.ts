/**
 * Writers and pruners racing (issue 13, finding 2): a `put` whose input pauses — as `zfs send`
 * does while it computes a big incremental — while `prune --stale-after 2s` runs as another
 * process. The prune must leave the in-progress stream alone (the writer holds the dataset's
 * lease for as long as it writes), and the put must complete into a stream that restores
 * byte-identically. A second writer of the dataset meanwhile is refused. Run on every target.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, ObjectInfo } from '../../src/storage/backend.js';
import { CLI, runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const MiB = 1024 * 1024;
const DATASET = 'race/ds';

/** A valid ~6 MiB raw-like stream: six 1 MiB chunks, so a pause mid-stream leaves chunks stored. */
function stream(): Buffer {
  const records: ContentRecord[] = Array.from({ length: 48 }, (_, i) => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 }));
  return Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/race@s1', features: RAW_FEATURES, records }] }).bytes);
}

async function listing(backend: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  await backend.list(prefix, (o) => out.push(o));
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

async function journalChunks(backend: Backend): Promise<number> {
  const journal = (await listing(backend, `${DATASET}/`)).find((o) => o.key.endsWith('/journal.json'));
  if (!journal) return 0;
  try {
    return (JSON.parse((await backend.getBuffer(journal.key)).toString()) as { chunks: unknown[] }).chunks.length;
  } catch {
    return 0; // being rewritten
  }
}

describe.each(testTargets())('a put paused mid-stream while prune --stale-after 2s runs, on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('prune leaves the live upload alone; the put completes and restores byte-identically', async () => {
    const bytes = stream();
    const child = spawn(process.execPath, [CLI, 'put', '--to', url, '--dataset', DATASET, '--chunk-size', '1M', '--json', '--no-progress'], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.on('error', () => undefined);
    try {
      // The first part, then the input pauses (zfs send computing): three chunks get stored.
      child.stdin.write(bytes.subarray(0, 3 * MiB + MiB / 2));
      for (let i = 0; i < 600 && (await journalChunks(backend)) < 3; i++) await sleep(50);
      expect(await journalChunks(backend)).toBe(3);
      // Older than --stale-after by the time prune looks (S3 and SFTP times have 1 s resolution).
      await sleep(3500);
      const before = await listing(backend, `${DATASET}/`);
      expect(before.filter((o) => /\/\d{6}\.zst$/.test(o.key))).toHaveLength(3);

      const prune = await runCli(['prune', url, '--keep-last', '1', '--stale-after', '2s'], { env });
      expect(prune.stderr).toMatch(/^zfs-offsite: error: prune failed for race\/ds \(race\/ds is locked by another zfs-offsite run: host .*, pid \d+/);
      expect(prune.code).toBe(1);
      expect(prune.stdout).not.toMatch(/abandoned/);
      // A second writer of the dataset is refused too, naming the live one.
      const second = await runCli(['put', '--to', url, '--dataset', DATASET], { input: fixtureBytes('zse-tiny-full.zfs'), env });
      expect(second.stderr).toMatch(/^zfs-offsite: error: race\/ds is locked by another zfs-offsite run: host .*, pid \d+ \(run [0-9a-f]{16}\); its lease expires at /);
      expect(second.code).toBe(1);
      const after = await listing(backend, `${DATASET}/`);
      expect(after.map((o) => [o.key, o.size])).toEqual(before.map((o) => [o.key, o.size]));

      child.stdin.end(bytes.subarray(3 * MiB + MiB / 2));
      const code = await exited;
      expect(Buffer.concat(err).toString()).not.toMatch(/error/);
      expect(code).toBe(0);
      expect((JSON.parse(Buffer.concat(out).toString()) as { status: string; chunksReused: number }).status).toBe('archived');
    } finally {
      child.kill('SIGKILL');
    }

    const restored = await runCli(['restore', '--from', url, DATASET, '--output', '-'], { env });
    expect(restored.code).toBe(0);
    expect(restored.stdoutBytes.equals(bytes)).toBe(true);
    const verify = await runCli(['verify', url, '--deep'], { env });
    expect(verify.stdout).toMatch(/clean/);
    expect(verify.code).toBe(0);
    // The lease is gone with the writer: prune now runs (and keeps the one stream).
    const prune = await runCli(['prune', url, '--keep-last', '1', '--stale-after', '2s'], { env });
    expect(prune.stderr).toBe('');
    expect(prune.code).toBe(0);
  });
});
