import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type JournalChunk, ResumeJournal } from '../../src/archive/format/journal.js';
import { JournalTable } from '../../src/archive/format/journal-table.js';
import type { PutOptions } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';
import { silentLogger } from '../../src/util/logger.js';

const root = mkdtempSync(join(tmpdir(), 'zo-journal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A local backend that counts the journal writes. */
class CountingBackend extends LocalBackend {
  journalWrites = 0;
  override put(key: string, body: Buffer | Readable, size?: number, _options?: PutOptions): Promise<void> {
    if (key.endsWith('journal.json')) this.journalWrites++;
    return super.put(key, body, size);
  }
}

const id = { streamId: 's', dataset: 'pool/ds', prefix: 'pool/ds/s/', chunkSize: 1024, sendArgs: null };
const chunk = (index: number): JournalChunk => ({
  index,
  key: `${String(index).padStart(6, '0')}.zst`,
  rawSize: 1024,
  storedSize: 10,
  rawSha256: 'a'.repeat(64),
  storedSha256: 'b'.repeat(64),
  level: 3,
});
const chunkKey = (index: number) => `${String(index).padStart(6, '0')}.zst`;
const journalChunks = async (backend: LocalBackend) => (JSON.parse((await backend.getBuffer('pool/ds/s/journal.json')).toString()) as { chunks: JournalChunk[] }).chunks;

describe('resume journal', () => {
  it('coalesces writes: 2000 chunks recorded in a burst cost a handful of journal writes, not 2000', async () => {
    const backend = new CountingBackend(join(root, 'burst'));
    const journal = await ResumeJournal.open(backend, id, silentLogger());
    const opened = backend.journalWrites;
    for (let i = 0; i < 2000; i++) await journal.record(chunk(i));
    await journal.flush();
    expect(backend.journalWrites - opened).toBeLessThanOrEqual(2);
    expect((await journalChunks(backend)).map((c) => c.index)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('writes recorded chunks by itself within the spacing, and forgetting is written at once', async () => {
    const backend = new CountingBackend(join(root, 'timed'));
    const journal = await ResumeJournal.open(backend, id, silentLogger());
    for (let i = 0; i < 5; i++) await journal.record(chunk(i));
    await new Promise((r) => setTimeout(r, 600));
    expect((await journalChunks(backend)).length).toBe(5);
    await journal.forgetFrom(2); // no flush: must already be on storage
    expect((await journalChunks(backend)).map((c) => c.index)).toEqual([0, 1]);
  });

  it('writes format 1.0 exactly as JSON.stringify(journal, null, 1) did: ETags of every shape, gaps, no ETag', async () => {
    const backend = new LocalBackend(join(root, 'text'));
    const journal = await ResumeJournal.open(backend, id, silentLogger());
    const etags = [undefined, '"0123456789abcdef0123456789abcdef"', '"0123456789abcdef0123456789abcdef-3"', 'W/"odd tag é"', '"ABCDEF"'];
    for (let i = 0; i < 12; i++) await journal.record({ ...chunk(i), ...(etags[i % 5] === undefined ? {} : { etag: etags[i % 5]! }) });
    journal.forget(4);
    await journal.flush();
    const text = (await backend.getBuffer('pool/ds/s/journal.json')).toString();
    const data = JSON.parse(text) as { format: string; formatVersion: string; chunks: JournalChunk[] };
    expect(text).toBe(`${JSON.stringify(data, null, 1)}\n`);
    expect(data.formatVersion).toBe('1.0');
    expect(data.chunks).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11].map((i) => ({ ...chunk(i), ...(etags[i % 5] === undefined ? {} : { etag: etags[i % 5] }) })));
  });

  it('a write under way sends the chunks listed when it started, whatever is recorded, forgotten or overwritten meanwhile', async () => {
    /** Holds each journal put until released, reading its body only then. */
    class SlowBackend extends LocalBackend {
      release: (() => void) | undefined;
      override async put(key: string, body: Buffer | Readable, size?: number, _options?: PutOptions): Promise<void> {
        if (key.endsWith('journal.json') && body instanceof Readable) await new Promise<void>((r) => (this.release = r));
        return super.put(key, body, size);
      }
    }
    const backend = new SlowBackend(join(root, 'slow'));
    /** Waits for the journal put being held, then lets it go. */
    const letGo = async (): Promise<void> => {
      while (!backend.release) await new Promise((r) => setTimeout(r, 5));
      const release = backend.release;
      backend.release = undefined;
      release();
    };
    const opening = ResumeJournal.open(backend, id, silentLogger());
    await letGo();
    const journal = await opening;
    for (let i = 0; i < 4; i++) await journal.record(chunk(i));
    const first = journal.flush();
    while (!backend.release) await new Promise((r) => setTimeout(r, 5));
    // While the write of 0..3 waits: 1 forgotten, 2 overwritten with other values, 4 and 5 added.
    journal.forget(1);
    await journal.record({ ...chunk(2), storedSize: 99, storedSha256: 'c'.repeat(64), etag: '"ffffffffffffffffffffffffffffffff"' });
    await journal.record(chunk(4));
    await journal.record(chunk(5));
    await letGo();
    await first;
    expect(await journalChunks(backend)).toEqual([0, 1, 2, 3].map(chunk));
    const second = journal.flush();
    await letGo();
    await second;
    expect(await journalChunks(backend)).toEqual([chunk(0), { ...chunk(2), storedSize: 99, storedSha256: 'c'.repeat(64), etag: '"ffffffffffffffffffffffffffffffff"' }, chunk(3), chunk(4), chunk(5)]);
  });

  it("an interrupted run's journal (format 1.0, written whole by the previous version) is resumed; malformed entries are never reused", async () => {
    const backend = new LocalBackend(join(root, 'old'));
    const good = [0, 1, 2, 3].map((i) => ({ ...chunk(i), etag: `"${'d'.repeat(32)}"` }));
    const bad = [
      { ...chunk(4), rawSha256: 'A'.repeat(64) },
      { ...chunk(5), key: '../000005.zst' },
      { ...chunk(6), storedSize: -1 },
      { ...chunk(7), storedSha256: 'b'.repeat(63) },
      { ...chunk(8), level: '3' },
    ];
    const old = {
      format: 'zfs-offsite-journal',
      formatVersion: '1.0',
      streamId: 's',
      dataset: 'pool/ds',
      chunkSize: 1024,
      sendArgs: null,
      host: 'h',
      pid: 1,
      startedAt: '',
      updatedAt: '',
      chunks: [...good, ...bad],
    };
    await backend.put('pool/ds/s/journal.json', Buffer.from(JSON.stringify(old, null, 1)));
    for (const c of [...good, ...bad]) await backend.put(`pool/ds/s/${chunkKey(c.index)}`, Buffer.alloc(10));
    const journal = await ResumeJournal.open(backend, id, silentLogger());
    expect(journal.resumable).toBe(4);
    for (const c of good) expect(journal.reusable(c.index)).toEqual(c);
    for (const c of bad) expect(journal.reusable(c.index)).toBeUndefined();
    // The malformed entries' objects are deleted like any object the journal does not vouch for.
    const keys: string[] = [];
    await backend.list('pool/ds/s/', (o) => keys.push(o.key));
    expect(keys.sort()).toEqual(['pool/ds/s/journal.json', ...good.map((c) => `pool/ds/s/${c.key}`)].sort());
  });
});

describe('resume journal read back', () => {
  const oldJournal = (chunks: unknown[]) =>
    Buffer.from(
      JSON.stringify(
        { format: 'zfs-offsite-journal', formatVersion: '1.0', streamId: 's', dataset: 'pool/ds', chunkSize: 1024, sendArgs: null, host: 'h', pid: 1, startedAt: '', updatedAt: '', chunks },
        null,
        1,
      ),
    );

  it('a journal of 3,000 chunks read in pieces: every chunk whose object is there is reused, exactly as recorded', async () => {
    const backend = new LocalBackend(join(root, 'many'));
    const chunks = Array.from({ length: 3000 }, (_, i) => ({ ...chunk(i), rawSha256: i.toString(16).padStart(64, '0'), etag: `"${i.toString(16).padStart(32, 'a')}-2"` }));
    await backend.put('pool/ds/s/journal.json', oldJournal(chunks));
    for (const c of chunks) if (c.index % 7 !== 3) await backend.put(`pool/ds/s/${c.key}`, Buffer.alloc(10));
    const journal = await ResumeJournal.open(backend, id, silentLogger());
    const present = chunks.filter((c) => c.index % 7 !== 3);
    expect(journal.resumable).toBe(present.length);
    for (const c of chunks) expect(journal.reusable(c.index)).toEqual(c.index % 7 !== 3 ? c : undefined);
  }, 120_000);

  it('a damaged journal (cut short, or not JSON) vouches for nothing: its chunks are deleted and uploaded again', async () => {
    for (const [name, body] of [
      ['cut', oldJournal([0, 1, 2].map(chunk)).subarray(0, 400)],
      ['garbage', Buffer.from('{"format":"zfs-offsite-journal","chunks":[{"index":0}, nonsense')],
    ] as const) {
      const backend = new LocalBackend(join(root, `damaged-${name}`));
      await backend.put('pool/ds/s/journal.json', body);
      for (const i of [0, 1, 2]) await backend.put(`pool/ds/s/${chunkKey(i)}`, Buffer.alloc(10));
      const journal = await ResumeJournal.open(backend, id, silentLogger());
      expect(journal.resumable).toBe(0);
      expect(journal.reusable(0)).toBeUndefined();
      const keys: string[] = [];
      await backend.list('pool/ds/s/', (o) => keys.push(o.key));
      expect(keys).toEqual(['pool/ds/s/journal.json']);
    }
  });
});

describe('journal table', () => {
  it('holds what a Map of chunk objects holds, through sets, deletes, overwrites and growth (seeded)', () => {
    let seed = 17;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const table = new JournalTable();
    const map = new Map<number, JournalChunk>();
    for (let step = 0; step < 20000; step++) {
      const index = rand(3000);
      if (rand(4) === 0) expect(table.delete(index)).toBe(map.delete(index));
      else {
        const tag = [undefined, `"${index.toString(16).padStart(32, '0')}"`, `"${'e'.repeat(32)}-${1 + rand(9999)}"`, `weird ${index}`][rand(4)];
        const c: JournalChunk = { ...chunk(index), storedSize: rand(2 ** 32), level: rand(45) - 22, rawSha256: index.toString(16).padStart(64, '7'), ...(tag === undefined ? {} : { etag: tag }) };
        table.set(c);
        map.set(index, c);
      }
    }
    expect(table.size).toBe(map.size);
    const snap = table.snapshot();
    expect([...snap]).toEqual([...map.keys()].sort((a, b) => a - b).map((i) => map.get(i)));
    for (let i = 0; i < 3000; i++) expect(table.chunk(i)).toEqual(map.get(i));
  });
});
