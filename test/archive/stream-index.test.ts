/**
 * The stream index (src/archive/format/stream-index.ts) over a real local directory written by
 * the built CLI: a cache that stands in for the manifests only where the listing shows the very
 * objects it was made from; everything else is read from the manifests, the truth.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/archive/format/catalog.js';
import { findIndexed, type IndexEntry, indexKey, parseIndex, parseSegment, readIndex, readIndexHead, recordIndexEntry, writeIndex } from '../../src/archive/format/stream-index.js';
import { quickAudit } from '../../src/archive/plan/audit.js';
import { Repository } from '../../src/archive/repository.js';
import { listArchive } from '../../src/jobs/list.js';
import type { Backend } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';
import { runCli } from '../support/cli.js';
import { buildStream } from '../support/synthetic-stream.js';

const DS = 'pool/indexed';
const N = 5;
const guid = (n: number) => 0x2000_0000_0000_0000n + BigInt(n);
const day = (d: number) => Date.UTC(2026, 0, d, 2) / 1000;
/** A chain of N streams: a full, then incrementals, one a day. */
const CHAIN = Array.from({ length: N }, (_, i) =>
  Buffer.from(buildStream({ substreams: [{ toname: `${DS}@s${i}`, toguid: guid(i + 1), fromguid: i === 0 ? 0n : guid(i), creationTime: day(i + 1) }] }).bytes),
);

/** A LocalBackend that counts what is read whole (manifests, indexes, SHA256SUMS, the marker: getBuffer or load) and the prefixes listed. */
function counting(backend: Backend): { backend: Backend; reads: string[]; lists: string[] } {
  const reads: string[] = [];
  const lists: string[] = [];
  const wrapped = Object.create(backend, {
    getBuffer: { value: (key: string) => (reads.push(key), backend.getBuffer(key)) },
    // Manifests are read piece by piece (format/catalog.ts readManifest): a whole read too.
    load: { value: (key: string, ...rest: Parameters<Backend['load']> extends [string, ...infer R] ? R : never) => (reads.push(key), backend.load(key, ...rest)) },
    list: { value: (prefix: string, ...rest: Parameters<Backend['list']> extends [string, ...infer R] ? R : never) => (lists.push(prefix), backend.list(prefix, ...rest)) },
  }) as Backend;
  return { reads, lists, backend: wrapped };
}

/** Puts a file back as it was, time included: the index entry made from it stays valid. */
function keepAside(file: string): () => void {
  const body = readFileSync(file);
  const stat = statSync(file);
  return () => {
    writeFileSync(file, body);
    utimesSync(file, stat.atime, stat.mtime);
  };
}

const manifestReads = (reads: string[]) => reads.filter((k) => k.endsWith('/manifest.json'));

describe('stream index', () => {
  let root: string;
  let backend: LocalBackend;
  let repo: Repository;
  let indexPath: string;
  let pristineIndex: Buffer;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'zo-index-'));
    for (const stream of CHAIN) {
      const r = await runCli(['put', '--to', root, '--no-progress'], { input: stream });
      expect(r.code, r.stderr).toBe(0);
    }
    backend = new LocalBackend(root);
    repo = new Repository(backend);
    indexPath = join(root, indexKey(DS));
    pristineIndex = readFileSync(indexPath);
  }, 120_000);

  beforeEach(() => writeFileSync(indexPath, pristineIndex));
  afterEach(async () => {
    // Every case leaves the archive as the puts wrote it (manifests restored by the case itself).
    writeFileSync(indexPath, pristineIndex);
  });

  afterAll(async () => {
    await backend.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('is written by put, one entry per committed stream, with the SHA256SUMS its writer wrote', () => {
    const index = parseIndex(pristineIndex, DS)!;
    expect(index.size).toBe(N);
    for (const entry of index.values()) {
      expect(entry.stream.chunkCount).toBe(1);
      expect(entry.sums?.size).toBeGreaterThan(0);
      expect(entry.stream).not.toHaveProperty('chunks');
    }
  });

  it('with a valid index, the catalog and list of N streams read no manifest, and agree with the manifests', async () => {
    const c = counting(backend);
    const fromIndex = await loadCatalog(c.backend, DS);
    expect(manifestReads(c.reads)).toEqual([]);
    expect(c.reads).toEqual([indexKey(DS)]);
    expect(fromIndex.indexes.get(DS)?.stale).toBe(false);
    const fromManifests = await loadCatalog(backend, DS, { index: false });
    expect(fromIndex.streams).toEqual(fromManifests.streams);
    expect(fromIndex.streams).toHaveLength(N);

    const l = counting(backend);
    const listed = await listArchive(l.backend, DS);
    expect(listed[0]!.streams).toHaveLength(N);
    expect(manifestReads(l.reads)).toEqual([]);
    expect(l.reads.filter((k) => k !== 'zfs-offsite.json')).toEqual([indexKey(DS)]);
  });

  it('re-reads a manifest rewritten since its entry was made (same size, new time), and only that one', async () => {
    const { streams } = await repo.listStreams(DS);
    const victim = streams[2]!;
    const file = join(root, victim.prefix, 'manifest.json');
    const before = statSync(file);
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(file, future, future);
    try {
      const c = counting(backend);
      const catalog = await loadCatalog(c.backend, DS);
      expect(manifestReads(c.reads)).toEqual([`${victim.prefix}manifest.json`]);
      expect(catalog.streams).toHaveLength(N);
      expect(catalog.indexes.get(DS)?.stale).toBe(true);
      expect(Date.parse(catalog.indexes.get(DS)!.index.get(victim.streamId)!.object.modified!)).toBeGreaterThan(before.mtimeMs + 1000);
    } finally {
      utimesSync(file, before.atime, before.mtime);
    }
  });

  it('uses the manifest, not the entry, when a manifest was rewritten with other content', async () => {
    const { streams } = await repo.listStreams(DS);
    const victim = streams[1]!;
    const file = join(root, victim.prefix, 'manifest.json');
    const original = readFileSync(file);
    const putBack = keepAside(file);
    try {
      writeFileSync(file, `${JSON.stringify(JSON.parse(original.toString()), null, 4)}\n`);
      const c = counting(backend);
      const catalog = await loadCatalog(c.backend, DS);
      expect(manifestReads(c.reads)).toEqual([`${victim.prefix}manifest.json`]);
      expect(catalog.streams).toEqual((await loadCatalog(backend, DS, { index: false })).streams);
      // Now damaged: the index entry must not stand in for it.
      writeFileSync(file, '{"format": "zfs-offsite-manifest"');
      const damaged = await loadCatalog(backend, DS);
      expect(damaged.streams.map((s) => s.streamId)).not.toContain(victim.streamId);
      expect(damaged.damaged.map((d) => d.streamId)).toEqual([victim.streamId]);
    } finally {
      putBack();
    }
  });

  it('drops the entry of a stream no longer listed, and never trusts an entry whose manifest is absent', async () => {
    const { streams } = await repo.listStreams(DS);
    const victim = streams[N - 1]!;
    const file = join(root, victim.prefix, 'manifest.json');
    const putBack = keepAside(file);
    rmSync(file);
    try {
      const catalog = await loadCatalog(backend, DS);
      expect(catalog.streams.map((s) => s.streamId)).not.toContain(victim.streamId);
      expect(catalog.streams).toHaveLength(N - 1);
      expect(catalog.indexes.get(DS)?.index.has(victim.streamId)).toBe(false);
      expect(catalog.indexes.get(DS)?.stale).toBe(true);
      // The same through the reader of verify: not committed, so neither indexed nor read.
      const listed = await repo.listStreams(DS, { sums: true, index: true });
      const dir = listed.streams.find((s) => s.streamId === victim.streamId)!;
      expect(dir.indexed).toBeUndefined();
      expect(dir.manifest).toBeUndefined();
    } finally {
      putBack();
    }
  });

  it('ignores an index that is garbage, of another dataset or of another format, and a writer rebuilds it', async () => {
    const other = JSON.parse(pristineIndex.toString()) as { dataset: string };
    other.dataset = 'pool/other';
    for (const body of ['garbage', '{"format":"zfs-offsite-index","formatVersion":"9.0"}', JSON.stringify(other), '']) {
      writeFileSync(indexPath, body);
      const c = counting(backend);
      const catalog = await loadCatalog(c.backend, DS);
      expect(manifestReads(c.reads)).toHaveLength(N);
      expect(catalog.streams).toEqual((await loadCatalog(backend, DS, { index: false })).streams);
      expect(catalog.indexes.get(DS)?.stale).toBe(true);
    }
    await repo.refreshIndex(DS);
    expect(parseIndex(readFileSync(indexPath), DS)?.size).toBe(N);
    const c = counting(backend);
    await loadCatalog(c.backend, DS);
    expect(manifestReads(c.reads)).toEqual([]);
  });

  it('an entry whose fields are not a summary makes the whole index unusable', () => {
    const body = JSON.parse(pristineIndex.toString()) as { streams: Record<string, { stream: { substreams: unknown } }> };
    Object.values(body.streams)[0]!.stream.substreams = 'x';
    expect(parseIndex(Buffer.from(JSON.stringify(body)), DS)).toBeUndefined();
    const renamed = JSON.parse(pristineIndex.toString()) as { streams: Record<string, unknown> };
    const [id, entry] = Object.entries(renamed.streams)[0]!;
    renamed.streams[`${id}x`] = entry; // an entry filed under another stream's id
    expect(parseIndex(Buffer.from(JSON.stringify(renamed)), DS)).toBeUndefined();
  });

  it('quick verify reads no manifest and no SHA256SUMS for streams the listing matches, and reads them when a chunk changed', async () => {
    const c = counting(backend);
    const listed = await new Repository(c.backend).listStreams(DS, { sums: true, index: true });
    expect(listed.streams.every((s) => s.indexed !== undefined)).toBe(true);
    expect(c.reads).toEqual([indexKey(DS)]);
    const audit = (streams: typeof listed.streams) => quickAudit({ streams, loose: listed.loose, now: new Date(), staleAfterMs: 86_400_000, location: repo.location });
    expect(audit(listed.streams)).toEqual([]);
    expect(listed.loose).toEqual([]);

    const victim = listed.streams[3]!;
    const chunk = join(root, victim.prefix, '000000.zst');
    const original = readFileSync(chunk);
    const putBack = keepAside(chunk);
    writeFileSync(chunk, Buffer.concat([original, Buffer.from('x')]));
    try {
      const again = counting(backend);
      const relisted = await new Repository(again.backend).listStreams(DS, { sums: true, index: true });
      expect(manifestReads(again.reads)).toEqual([`${victim.prefix}manifest.json`]);
      const problems = audit(relisted.streams);
      expect(problems.map((p) => p.kind)).toEqual(['chunk-size']);
      const withoutIndex = await repo.listStreams(DS, { sums: true });
      expect(problems).toEqual(audit(withoutIndex.streams));
    } finally {
      putBack();
    }
  });

  it('a commit adds its stream to the stored index from a listing of its own directory only', async () => {
    const { streams } = await repo.listStreams(DS);
    const newest = streams[N - 1]!;
    const body = JSON.parse(pristineIndex.toString()) as { streams: Record<string, unknown> };
    delete body.streams[newest.streamId];
    writeFileSync(indexPath, JSON.stringify(body));
    const c = counting(backend);
    await new Repository(c.backend).recordCommit(newest);
    expect(c.lists).toEqual([newest.prefix]);
    expect(c.reads).toEqual([indexKey(DS), `${newest.prefix}manifest.json`]);
    const index = parseIndex(readFileSync(indexPath), DS)!;
    expect(index.size).toBe(N);
    expect(index.get(newest.streamId)).toEqual(parseIndex(pristineIndex, DS)!.get(newest.streamId));
  });

  it('a writer decides only on an index entry its manifest confirms', async () => {
    const indexed = (await repo.indexedStreams(DS))!;
    expect(indexed.map((s) => s.streamId)).toEqual((await loadCatalog(backend, DS, { index: false })).streams.map((s) => s.streamId));
    expect(await repo.confirms(indexed[0]!)).toBe(true);
    const forged = { ...indexed[0]!, substreams: indexed[1]!.substreams };
    expect(await repo.confirms(forged)).toBe(false);
    const file = join(root, repo.streamPrefix(indexed[0]!), 'manifest.json');
    const putBack = keepAside(file);
    rmSync(file);
    try {
      expect(await repo.confirms(indexed[0]!)).toBe(false);
    } finally {
      putBack();
    }
    writeFileSync(indexPath, 'garbage');
    expect(await repo.indexedStreams(DS)).toBeUndefined();
  });
});

/**
 * The index in segments (issue 17): the head `~index.json` a commit rewrites, and sealed segments
 * `~index-NNNNNN.json` it names. Every segment is checked on its own; one that is garbage,
 * truncated, of another dataset or numbered otherwise is ignored, a stream two segments hold is
 * trusted in neither: the catalog always answers as the manifests do.
 */
describe('stream index segments', () => {
  let root: string;
  let backend: LocalBackend;
  let repo: Repository;
  let full: Map<string, IndexEntry>;
  let truth: Awaited<ReturnType<typeof loadCatalog>>['streams'];
  const dsDir = () => join(root, indexKey(DS), '..');
  const segmentFiles = () =>
    readdirSync(dsDir())
      .filter((f) => f.startsWith('~index'))
      .sort();

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'zo-index-seg-'));
    for (const stream of CHAIN) {
      const r = await runCli(['put', '--to', root, '--no-progress'], { input: stream });
      expect(r.code, r.stderr).toBe(0);
    }
    backend = new LocalBackend(root);
    repo = new Repository(backend);
    full = (await readIndex(backend, DS))!;
    truth = (await loadCatalog(backend, DS, { index: false })).streams;
  }, 120_000);

  afterAll(async () => {
    await backend.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('a rebuild writes sealed segments and a head naming them; readers read them all and no manifest', async () => {
    await writeIndex(backend, DS, full, 2);
    expect(segmentFiles()).toEqual(['~index-000001.json', '~index-000002.json', '~index.json']);
    expect(parseSegment(await backend.getBuffer(indexKey(DS)), DS)?.sealed).toBe(2);
    expect(await readIndex(backend, DS)).toEqual(full);
    const c = counting(backend);
    const catalog = await loadCatalog(c.backend, DS);
    expect(manifestReads(c.reads)).toEqual([]);
    expect(catalog.streams).toEqual(truth);
    expect(catalog.indexes.get(DS)?.stale).toBe(false);
    // Fewer entries: the segments beyond the new ones are removed.
    await writeIndex(backend, DS, full);
    expect(segmentFiles()).toEqual(['~index.json']);
    await writeIndex(backend, DS, new Map());
    expect(segmentFiles()).toEqual([]);
  });

  it('a commit rewrites only the head, and seals it when full, whatever the history', async () => {
    const ids = [...full.keys()].sort();
    await writeIndex(backend, DS, new Map(ids.slice(0, 4).map((id) => [id, full.get(id)!])), 2);
    expect(segmentFiles()).toEqual(['~index-000001.json', '~index.json']);
    const c = counting(backend);
    await recordIndexEntry(c.backend, DS, (await readIndexHead(c.backend, DS))!, ids[4]!, full.get(ids[4]!), 2);
    // One read (the head), no listing: the sealed segment 1 is neither read nor rewritten.
    expect(c.reads).toEqual([indexKey(DS)]);
    expect(c.lists).toEqual([]);
    expect(segmentFiles()).toEqual(['~index-000001.json', '~index-000002.json', '~index.json']);
    expect([...parseIndex(await backend.getBuffer(indexKey(DS)), DS)!.keys()]).toEqual([ids[4]]);
    expect(await readIndex(backend, DS)).toEqual(full);
    // put finds a base newest segment first: the oldest stream costs every segment, the newest only the head.
    const newest = counting(backend);
    expect((await findIndexed(newest.backend, DS, (s) => s.streamId === ids[4]))?.streamId).toBe(ids[4]);
    expect(newest.reads).toEqual([indexKey(DS)]);
    expect((await findIndexed(backend, DS, (s) => s.streamId === ids[0]))?.streamId).toBe(ids[0]);
    // No usable head: the caller rebuilds.
    writeFileSync(join(root, indexKey(DS)), 'garbage');
    expect(await readIndexHead(backend, DS)).toBeUndefined();
    await repo.recordCommit({ dataset: DS, streamId: ids[4]! });
    expect(await readIndex(backend, DS)).toEqual(full);
  });

  it('ignores a segment that is garbage, truncated, of another dataset, numbered otherwise, and entries two segments hold', async () => {
    await writeIndex(backend, DS, full, 2);
    const files = segmentFiles();
    const pristine = new Map(files.map((f) => [f, readFileSync(join(dsDir(), f))]));
    const restore = () => {
      for (const f of segmentFiles()) rmSync(join(dsDir(), f));
      for (const [f, body] of pristine) writeFileSync(join(dsDir(), f), body);
    };
    const sealedOne = pristine.get('~index-000001.json')!.toString();
    const cases: [string, string, string][] = [
      ['~index-000001.json', 'garbage', 'garbage'],
      ['~index-000001.json', sealedOne.slice(0, sealedOne.length >> 1), 'truncated'],
      ['~index-000001.json', sealedOne.replace(`"dataset":"${DS}"`, '"dataset":"pool/other"'), 'another dataset'],
      ['~index-000002.json', sealedOne, 'segment 1 stored as segment 2'],
      ['~index.json', sealedOne, 'a sealed segment stored as the head'],
      ['~index.json', '', 'empty head'],
      // Segment 1's entries again in segment 3, which the head does not name: ignored.
      ['~index-000003.json', sealedOne.replace('"segment":1', '"segment":3'), 'a segment the head does not name'],
    ];
    try {
      for (const [file, body, what] of cases) {
        writeFileSync(join(dsDir(), file), body);
        const c = counting(backend);
        const catalog = await loadCatalog(c.backend, DS);
        expect(catalog.streams, what).toEqual(truth);
        restore();
      }
      // The same entry in two segments: trusted in neither, its manifest is read.
      const head = JSON.parse(pristine.get('~index.json')!.toString()) as { streams: Record<string, unknown> };
      const one = JSON.parse(sealedOne) as { streams: Record<string, unknown> };
      const [dupId, dupEntry] = Object.entries(one.streams)[0]!;
      head.streams[dupId] = dupEntry;
      writeFileSync(join(root, indexKey(DS)), JSON.stringify(head));
      expect((await readIndex(backend, DS))?.has(dupId)).toBe(false);
      const c = counting(backend);
      const catalog = await loadCatalog(c.backend, DS);
      expect(manifestReads(c.reads)).toEqual([`${repo.streamPrefix({ dataset: DS, streamId: dupId })}manifest.json`]);
      expect(catalog.streams).toEqual(truth);
      expect(catalog.indexes.get(DS)?.stale).toBe(true);
    } finally {
      restore();
    }
  });

  it('answers as the manifests do whatever bytes the segments hold (fuzzed)', async () => {
    await writeIndex(backend, DS, full, 2);
    const files = segmentFiles();
    const pristine = new Map(files.map((f) => [f, readFileSync(join(dsDir(), f))]));
    let seed = 17;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    try {
      for (let round = 0; round < 60; round++) {
        const file = files[rand(files.length)]!;
        const body = Buffer.from(pristine.get(file)!);
        const mutation = rand(4);
        let mutated: Buffer;
        if (mutation === 0) mutated = body.subarray(0, rand(body.length));
        else if (mutation === 1) {
          mutated = Buffer.from(body);
          for (let k = 0; k < 1 + rand(4); k++) mutated[rand(mutated.length)] = rand(256);
        } else if (mutation === 2) mutated = Buffer.from(body.toString().replace(/"size":\d+/, `"size":${rand(10_000)}`));
        else mutated = Buffer.from(body.toString().replace(/"modified":"[^"]*"/, `"modified":"${new Date(rand(2 ** 30) * 1000).toISOString()}"`));
        writeFileSync(join(dsDir(), file), mutated);
        const catalog = await loadCatalog(backend, DS);
        // Cut short or stamped with another object: never a different answer. (Bytes flipped inside a
        // summary whose stamp still matches are the one thing a cache cannot tell; the stream set stays.)
        if (mutation === 1)
          expect(
            catalog.streams.map((s) => s.streamId),
            `round ${round}`,
          ).toEqual(truth.map((s) => s.streamId));
        else expect(catalog.streams, `round ${round}`).toEqual(truth);
        writeFileSync(join(dsDir(), file), pristine.get(file)!);
      }
    } finally {
      for (const [f, body] of pristine) writeFileSync(join(dsDir(), f), body);
    }
  });

  it('a rebuild stamps SHA256SUMS it finds written from the manifest chunks, so quick verify reads neither', async () => {
    const unstamped = new Map([...full].map(([id, e]) => [id, { ...e, sums: undefined }]));
    await writeIndex(backend, DS, unstamped);
    const before = counting(backend);
    await new Repository(before.backend).listStreams(DS, { sums: true, index: true });
    expect(before.reads.filter((k) => k.endsWith('/SHA256SUMS'))).toHaveLength(N);
    // A SHA256SUMS that is not the manifest's chunks' is not stamped.
    const victim = [...full.keys()].sort()[2]!;
    const sumsFile = join(root, repo.streamPrefix({ dataset: DS, streamId: victim }), 'SHA256SUMS');
    const putBack = keepAside(sumsFile);
    const original = readFileSync(sumsFile).toString();
    writeFileSync(
      sumsFile,
      original.replace(/^[0-9a-f]/, (d) => (d === '0' ? '1' : '0')),
    );
    try {
      await repo.refreshIndex(DS);
      const index = (await readIndex(backend, DS))!;
      expect(index.get(victim)?.sums).toBeUndefined();
    } finally {
      putBack();
    }
    await repo.refreshIndex(DS);
    const index = (await readIndex(backend, DS))!;
    for (const e of index.values()) expect(e.sums?.size).toBeGreaterThan(0);
    const after = counting(backend);
    const listed = await new Repository(after.backend).listStreams(DS, { sums: true, index: true });
    expect(after.reads).toEqual([indexKey(DS)]);
    expect(listed.streams.every((s) => s.indexed !== undefined)).toBe(true);
  });
});
