/**
 * `--bwlimit` limits chunk data only (issue 16, item 4): journal, manifest and lease writes never
 * wait in its queue behind chunks, and an interrupted run gives up the chunk puts still waiting.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/storage/local.js';
import { ThrottledBackend } from '../../src/storage/throttled.js';

const KiB = 1024;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-throttle-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ThrottledBackend', () => {
  it('makes chunk puts wait for their share, never the other puts', async () => {
    const backend = new ThrottledBackend(new LocalBackend(join(dir, 'a')), 256 * KiB);
    const started = Date.now();
    const chunks = [0, 1, 2].map((i) => backend.put(`s/00000${i}.zst`, Buffer.alloc(256 * KiB), 256 * KiB, { chunkData: true }));
    // Queued behind ~3 s of chunks, the journal still goes at once.
    await backend.put('s/journal.json', Buffer.from('{}'), 2);
    expect(Date.now() - started).toBeLessThan(500);
    await Promise.all(chunks);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await backend.close();
  });

  it('gives up chunk puts still waiting when their signal is aborted', async () => {
    const backend = new ThrottledBackend(new LocalBackend(join(dir, 'b')), 256 * KiB);
    const abort = new AbortController();
    const puts = [0, 1, 2].map((i) => backend.put(`s/00000${i}.zst`, Buffer.alloc(256 * KiB), 256 * KiB, { chunkData: true, signal: abort.signal }));
    await puts[0];
    const reason = new Error('interrupted');
    abort.abort(reason);
    const settled = await Promise.allSettled(puts);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect((settled[1] as PromiseRejectedResult).reason).toBe(reason);
    expect(readdirSync(join(dir, 'b', 's'))).toEqual(['000000.zst']);
    await backend.close();
  });
});
