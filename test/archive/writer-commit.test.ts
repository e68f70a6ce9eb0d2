/**
 * The writer proves its stream complete — ONE listing, every chunk key and size — immediately
 * before it writes the manifest (issue 13, finding 2). A chunk
 * removed or changed just before the commit (here: in the beforeCommit hook, the last moment
 * before it) fails the write with nothing committed, and a rerun of the same stream completes.
 * Run against every target's real backend.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkPool } from '../../src/archive/pipeline/chunk-pool.js';
import { StreamIncompleteError, writeArchiveStream } from '../../src/archive/pipeline/writer.js';
import type { Backend } from '../../src/storage/backend.js';
import { readableSource } from '../../src/util/byte-source.js';
import { silentLogger } from '../../src/util/logger.js';
import { zstdDecompress } from '../support/archive-files.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const MiB = 1024 * 1024;

function stream(): Buffer {
  const records: ContentRecord[] = Array.from({ length: 32 }, (_, i) => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 }));
  return Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/commit@s1', features: RAW_FEATURES, records }] }).bytes);
}

async function keys(backend: Backend, prefix: string): Promise<string[]> {
  const out: string[] = [];
  await backend.list(prefix, (o) => out.push(o.key.slice(prefix.length)));
  return out.sort();
}

describe.each(testTargets())('commit proof on $name', (target: TestTarget) => {
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let pool: ChunkPool;

  beforeAll(async () => {
    ({ backend, cleanup } = await openTestTarget(target));
    pool = new ChunkPool(2);
  });
  afterAll(async () => {
    await pool?.close();
    await cleanup?.();
  });

  const write = (bytes: Buffer, dataset: string, beforeCommit?: (prefix: string) => Promise<void>) => {
    let prefix = '';
    return writeArchiveStream({
      backend,
      pool,
      dataset,
      input: readableSource(Readable.from([bytes])),
      chunkSize: MiB,
      level: 3,
      parallel: 2,
      log: silentLogger(),
      sendArgs: null,
      zfsVersion: null,
      onIdentified: async (identity) => ((prefix = identity.prefix), true),
      beforeCommit: async () => beforeCommit?.(prefix),
    });
  };

  async function expectNothingCommitted(bytes: Buffer, dataset: string, damage: (prefix: string) => Promise<void>, message: RegExp): Promise<void> {
    let prefix = '';
    const failed = await write(bytes, dataset, async (p) => {
      prefix = p;
      await damage(p);
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(StreamIncompleteError);
    expect((failed as Error).message).toMatch(message);
    expect((failed as Error).message).toMatch(/nothing was committed/);
    const left = await keys(backend, prefix);
    expect(left).not.toContain('manifest.json');
    expect(left).not.toContain('SHA256SUMS');
    expect(left).toContain('journal.json'); // kept for the rerun

    // The rerun of the same stream uploads what is missing and commits a complete stream.
    const again = await write(bytes, dataset);
    expect(again.status).toBe('archived');
    if (again.status !== 'archived') return;
    const chunks = await Promise.all(again.manifest.chunks.map((c) => backend.getBuffer(prefix + c.key)));
    expect(zstdDecompress(Buffer.concat(chunks)).equals(bytes)).toBe(true);
  }

  it('a chunk deleted just before the commit: the write fails, nothing committed', async () => {
    const bytes = stream();
    await expectNothingCommitted(bytes, 'commit/deleted', (p) => backend.delete([`${p}000001.zst`]), /chunk 000001\.zst is missing/);
  });

  it('a chunk of another size just before the commit: the write fails, nothing committed', async () => {
    const bytes = stream();
    await expectNothingCommitted(
      bytes,
      'commit/resized',
      async (p) => void (await backend.put(`${p}000002.zst`, Buffer.concat([await backend.getBuffer(`${p}000002.zst`), Buffer.from([0])]))),
      /chunk 000002\.zst has \d+ bytes, \d+ were stored/,
    );
  });
});
