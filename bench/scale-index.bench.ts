/**
 * What a commit's stream index work costs at 10,000 streams of one dataset (issue 17), measured
 * without the link: the index bytes `put` reads and writes (each MiB is ≈ 50 ms over the 20 MiB/s
 * per-connection link of the scale bench) and the CPU it spends on them. "whole" is the index in
 * one object as it was before segments (read to find the base, read and written back after the
 * commit); "segments" is what put does now (format/stream-index.ts findIndexed, readIndexHead,
 * recordIndexEntry). Entries are copies of one real entry under 10,000 stream ids.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeStreamId } from '../src/archive/format/keys.js';
import { type IndexEntry, type IndexedStream, INDEX_FORMAT, findIndexed, indexKey, parseIndex, readIndex, readIndexHead, recordIndexEntry, writeIndex } from '../src/archive/format/stream-index.js';
import type { Backend } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local.js';
import { streamObjects } from './support/synthetic-archive.js';
import { entryOf } from '../src/archive/format/stream-index.js';

const DS = 'scale/chain';
const N = Number(process.env.BENCH_SCALE_INDEX_STREAMS ?? '10000');

function metered(backend: Backend): { backend: Backend; read: () => number; written: () => number } {
  let read = 0;
  let written = 0;
  const wrapped = Object.create(backend, {
    getBuffer: { value: async (key: string) => backend.getBuffer(key).then((b) => ((read += b.length), b)) },
    put: { value: (key: string, body: Buffer, ...rest: unknown[]) => ((written += body.length), (backend.put as (...a: unknown[]) => Promise<unknown>)(key, body, ...rest)) },
  }) as Backend;
  return { backend: wrapped, read: () => read, written: () => written };
}

function entries(): Map<string, IndexEntry> {
  const { manifest } = streamObjects(DS, 0, 1);
  const base = entryOf(manifest, { key: 'x', size: 1234, etag: 'e' }, { key: 'y', size: 99, etag: 'f' });
  const out = new Map<string, IndexEntry>();
  for (let i = 0; i < N; i++) {
    const streamId = makeStreamId(1_767_232_800 + i * 86_400, i === 0 ? 'full' : 'incr', `daily-${String(i).padStart(6, '0')}`, BigInt(i + 1));
    out.set(streamId, { ...base, stream: { ...base.stream, streamId } });
  }
  return out;
}

describe('stream index cost of one commit', () => {
  it(`at ${N} streams: bytes and CPU, whole index vs segments`, async () => {
    const all = entries();
    const ids = [...all.keys()];
    const last = ids.pop()!;
    const lastEntry = all.get(last)!;
    all.delete(last);
    const rows: string[] = [];
    for (const layout of ['whole', 'segments'] as const) {
      const root = mkdtempSync(join(tmpdir(), 'zo-index-cost-'));
      const local = new LocalBackend(root);
      try {
        if (layout === 'whole') {
          const body = { format: INDEX_FORMAT, formatVersion: '1.0', dataset: DS, written: new Date().toISOString(), streams: Object.fromEntries(all) };
          await local.put(indexKey(DS), Buffer.from(JSON.stringify(body)));
        } else await writeIndex(local, DS, all);
        const m = metered(local);
        const cpu = process.cpuUsage();
        const started = performance.now();
        const wanted = (s: IndexedStream) => s.streamId === ids[ids.length - 1];
        if (layout === 'whole') {
          // Before: indexedStreams (the whole index) to find the base, then recordCommit: read, add, write whole.
          const found = [...(parseIndex(await m.backend.getBuffer(indexKey(DS)), DS) ?? new Map()).values()].find((e) => wanted(e.stream));
          expect(found).toBeDefined();
          const index = parseIndex(await m.backend.getBuffer(indexKey(DS)), DS)!;
          index.set(last, lastEntry);
          const body = { format: INDEX_FORMAT, formatVersion: '1.0', dataset: DS, written: new Date().toISOString(), streams: Object.fromEntries(index) };
          await m.backend.put(indexKey(DS), Buffer.from(JSON.stringify(body)));
        } else {
          expect(await findIndexed(m.backend, DS, wanted)).toBeDefined();
          await recordIndexEntry(m.backend, DS, (await readIndexHead(m.backend, DS))!, last, lastEntry);
        }
        const ms = performance.now() - started;
        const used = process.cpuUsage(cpu);
        expect((await readIndex(local, DS))?.size).toBe(N);
        const mib = (b: number) => (b / 1024 ** 2).toFixed(2);
        rows.push(
          `| ${layout} | ${N} | ${mib(m.read())} | ${mib(m.written())} | ${((m.read() + m.written()) / (20 * 1024 ** 2)).toFixed(2)} | ${((used.user + used.system) / 1e6).toFixed(2)} | ${(ms / 1000).toFixed(2)} |`,
        );
      } finally {
        await local.close();
        rmSync(root, { recursive: true, force: true });
      }
    }
    console.log(['| index layout | streams | MiB read | MiB written | s at 20 MiB/s | CPU s | wall s (local) |', '|---|---:|---:|---:|---:|---:|---:|', ...rows].join('\n'));
  });
});
