/**
 * kill -9 of `put` at random points while archiving a ~200 MB stream: every rerun completes,
 * resumes with fewer bytes uploaded, deep verify is clean, restore is byte-identical, and no
 * manifest ever exists for an incomplete stream. KILL_TRIALS sets N (default 10);
 * `npm run chaos` runs 50 and prints "N passed, N failed".
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/storage/open.js';
import type { Backend } from '../../src/storage/backend.js';
import { seededRandom } from '../../src/util/random.js';
import { runCli } from '../support/cli.js';
import { runKillTrial } from '../support/kill-trial.js';
import { type ContentRecord, FULL, RAW_FEATURES, streamParts } from '../support/synthetic-stream.js';

const TRIALS = Number(process.env.KILL_TRIALS ?? '10');
const SEED = Number(process.env.KILL_SEED ?? Date.now() % 2 ** 31);
const MiB = 1024 * 1024;

/** ~200 MB raw-like stream, generated once per machine. */
function streamFile(): string {
  const dir = join(tmpdir(), 'zfs-offsite-chaos');
  const path = join(dir, 'raw-200m.zfs');
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const records: ContentRecord[] = Array.from({ length: 1600 }, (_, i) => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 }));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  for (const part of streamParts({ substreams: [{ ...FULL, toname: 'chaos/ds@s1', features: RAW_FEATURES, records }] })) writeSync(fd, part);
  closeSync(fd);
  rmSync(path, { force: true });
  renameSync(tmp, path);
  return path;
}

describe(`kill -9 while archiving (${TRIALS} trials, seed ${SEED})`, () => {
  let root: string;
  let backend: Backend;
  let input: string;
  let freshUploadBytes = 0;
  let totalChunks = 0;

  beforeAll(async () => {
    input = streamFile();
    root = mkdtempSync(join(tmpdir(), 'zfs-offsite-kill-'));
    backend = await openBackend(root, {});
    const fresh = await runCli(['put', '--to', root, '--input', input, '--dataset', 'chaos/fresh', '--chunk-size', '8M', '--json']);
    expect(fresh.code).toBe(0);
    const result = JSON.parse(fresh.stdout) as { uploadedBytes: number; manifest: { chunks: unknown[] } };
    freshUploadBytes = result.uploadedBytes;
    totalChunks = result.manifest.chunks.length;
    expect(freshUploadBytes).toBeGreaterThan(190 * MiB);
  });
  afterAll(async () => {
    await backend?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('resumes every interrupted upload into a verified, byte-identical archive', { timeout: 60_000 * (TRIALS + 1) }, async () => {
    const random = seededRandom(SEED);
    const results = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const r = await runKillTrial({ url: root, env: {}, backend, input, dataset: `chaos/trial${trial}`, chunkSize: '8M', freshUploadBytes, totalChunks, random });
      console.log(`trial ${trial + 1}: ${r.ok ? 'passed' : 'FAILED'}: ${r.story}${r.problems.length ? ` — ${r.problems.join('; ')}` : ''}`);
      results.push(r);
      await backend.delete(await keysOf(backend, `chaos/trial${trial}/`));
    }
    const passed = results.filter((r) => r.ok).length;
    console.log(`kill trials: ${passed} passed, ${results.length - passed} failed`);
    expect(results.filter((r) => !r.ok).flatMap((r) => r.problems)).toEqual([]);
  });
});

async function keysOf(backend: Backend, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  await backend.list(prefix, (o) => keys.push(o.key));
  return keys;
}
