import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type JournalChunk, ResumeJournal } from '../../src/archive/format/journal.js';
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
});
