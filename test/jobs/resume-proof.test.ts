/**
 * A resume reuses a stored chunk only when its content is proven (issue 13, finding 3): one
 * chunk of an interrupted upload damaged in place (same size), then the same `put` rerun. The
 * damaged chunk must be uploaded again (and the log say so), deep verify must be clean and the
 * restore byte-identical. Local and SFTP prove by re-reading (SHA-256); S3 by the ETag recorded
 * at upload, or — for a journal written before ETags were recorded — by re-reading too.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const MiB = 1024 * 1024;

/** ~6 MiB: incompressible chunks, then compressible ones. */
function stream(): Buffer {
  const records: ContentRecord[] = Array.from({ length: 48 }, (_, i) => ({
    kind: 'write',
    object: 2,
    offset: i * 131072,
    data: i < 24 ? randomBytes(131072) : Buffer.alloc(131072, i),
    compression: 2,
  }));
  return Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/resume@s1', features: RAW_FEATURES, records }] }).bytes);
}

interface JournalFile {
  chunks: { key: string; storedSize: number; etag?: string }[];
}

describe.each(testTargets())('resume proves stored chunks on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  const put = (dataset: string, input: Buffer, ...args: string[]) => runCli(['put', '--to', url, '--dataset', dataset, '--chunk-size', '1M', '--no-progress', ...args], { input, env });

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  async function journalOf(dataset: string): Promise<{ key: string; journal: JournalFile }> {
    const keys: string[] = [];
    await backend.list(`${dataset}/`, (o) => keys.push(o.key));
    const key = keys.find((k) => k.endsWith('/journal.json'))!;
    expect(key).toBeDefined();
    return { key, journal: JSON.parse((await backend.getBuffer(key)).toString()) as JournalFile };
  }

  /** Interrupts a put after three stored chunks, damages chunk 1 in place, reruns; the rerun's stderr. */
  async function damagedResume(dataset: string, withoutEtags: boolean): Promise<{ stderr: string; etags: boolean }> {
    const bytes = stream();
    const cut = await put(dataset, bytes.subarray(0, 3 * MiB + 5000));
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/truncated/);
    const { key: journalKey, journal } = await journalOf(dataset);
    // Three whole chunks (the short tail chunk 3 is never reused).
    expect(journal.chunks.map((c) => c.key).slice(0, 3)).toEqual(['000000.zst', '000001.zst', '000002.zst']);
    const etags = journal.chunks.every((c) => typeof c.etag === 'string');
    if (withoutEtags) {
      // A journal as written before ETags were recorded.
      for (const c of journal.chunks) delete c.etag;
      await backend.put(journalKey, Buffer.from(JSON.stringify(journal)));
    }
    // Damage in place: same size, one byte flipped, written back as a whole new object (S3: PutObject).
    const chunkKey = journalKey.replace(/journal\.json$/, '000001.zst');
    const damaged = await backend.getBuffer(chunkKey);
    damaged[damaged.length >> 1]! ^= 0x40;
    await backend.put(chunkKey, damaged);
    expect((await backend.head(chunkKey)).size).toBe(journal.chunks[1]!.storedSize);

    const rerun = await put(dataset, bytes, '--json');
    expect(rerun.code).toBe(0);
    const result = JSON.parse(rerun.stdout) as { status: string; chunksReused: number; uploadedBytes: number; manifest: { storedBytes: number } };
    expect(result.status).toBe('archived');
    expect(result.chunksReused).toBe(2); // chunks 0 and 2, proven; chunk 1 uploaded again
    expect(result.uploadedBytes).toBeLessThan(result.manifest.storedBytes);

    const deep = await runCli(['verify', url, dataset, '--deep'], { env });
    expect(deep.stdout).toMatch(/clean/);
    expect(deep.code).toBe(0);
    const restored = await runCli(['restore', '--from', url, dataset, '--output', '-'], { env });
    expect(restored.code).toBe(0);
    expect(restored.stdoutBytes.equals(bytes)).toBe(true);
    return { stderr: rerun.stderr, etags };
  }

  it('a chunk damaged in place is uploaded again, not reused; deep verify clean, restore byte-identical', async () => {
    const { stderr, etags } = await damagedResume('resume/damaged', false);
    expect(stderr).toMatch(/stored chunk 000001\.zst of the interrupted upload is damaged \(.*\): uploading it again/);
    // What each backend proves by: S3 by the ETag it gave at upload, the others by the bytes.
    expect(etags).toBe(target.name.startsWith('S3'));
    const why = /damaged \((.*)\): uploading/.exec(stderr)![1]!;
    if (etags) expect(why).toMatch(/^the server's ETag is \S+, it was \S+ after the upload$/);
    else expect(why).toMatch(/^its SHA-256 is [0-9a-f]{64}, [0-9a-f]{64} was stored$/);
  });

  it('a journal without ETags (older version): the damaged chunk is found by re-reading and uploaded again', async () => {
    const { stderr } = await damagedResume('resume/old-journal', true);
    expect(stderr).toMatch(/stored chunk 000001\.zst of the interrupted upload is damaged \(its SHA-256 is [0-9a-f]{64}, [0-9a-f]{64} was stored\): uploading it again/);
  });
});
