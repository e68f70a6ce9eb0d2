/**
 * The repository (src/archive/repository.ts) over a real local directory holding streams the
 * built CLI wrote: one listing policy for every job (a damaged manifest is an answer about its
 * stream), stream keys, and the delete order prune relies on (manifest first).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/archive/repository.js';
import type { Backend } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';
import { listFiles } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';

const DATASET = 'labpool/zfs-send-tiny';

describe('Repository', () => {
  let root: string;
  let backend: LocalBackend;
  let repo: Repository;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'zo-repo-'));
    for (const name of ['zse-tiny-full.zfs', 'zse-tiny-incremental.zfs']) {
      const r = await runCli(['put', '--to', root, '--no-progress'], { input: fixtureBytes(name) });
      expect(r.code, r.stderr).toBe(0);
    }
    backend = new LocalBackend(root);
    repo = new Repository(backend);
  }, 60_000);

  afterAll(async () => {
    await backend.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('lists each stream with its manifest, and the catalog agrees', async () => {
    const { streams, loose } = await repo.listStreams(DATASET, { sums: true });
    expect(streams).toHaveLength(2);
    expect(loose).toEqual([]);
    for (const s of streams) {
      expect(s.manifest?.streamId).toBe(s.streamId);
      expect(s.prefix).toBe(repo.streamPrefix(s));
      expect(s.sums).toContain('000000.zst');
      expect(repo.hasManifest(s)).toBe(true);
    }
    const catalog = await repo.catalog(DATASET);
    expect(catalog.streams.map((m) => m.streamId).sort()).toEqual(streams.map((s) => s.streamId).sort());
    expect(await repo.datasets()).toEqual([DATASET]);
  });

  it('reads a damaged manifest as a problem of that stream only, the same way everywhere', async () => {
    const { streams } = await repo.listStreams(DATASET);
    const victim = streams[1]!;
    const original = readFileSync(join(root, victim.prefix, 'manifest.json'));
    writeFileSync(join(root, victim.prefix, 'manifest.json'), '');
    try {
      const again = await repo.listStreams(DATASET);
      const damaged = again.streams.find((s) => s.streamId === victim.streamId)!;
      expect(damaged.manifest).toBeUndefined();
      expect(damaged.damaged?.object).toBe(repo.where(`${victim.prefix}manifest.json`));
      expect(again.streams.find((s) => s.streamId !== victim.streamId)!.manifest).toBeDefined();
      const read = await repo.readManifest(victim);
      expect('damaged' in read && read.damaged.message).toBe(damaged.damaged!.message);
      const catalog = await repo.catalog(DATASET);
      expect(catalog.damaged.map((d) => d.message)).toEqual([damaged.damaged!.message]);
    } finally {
      writeFileSync(join(root, victim.prefix, 'manifest.json'), original);
    }
  });

  it('deletes a stream manifest first, then everything else it holds', async () => {
    const { streams } = await repo.listStreams(DATASET);
    const doomed = streams.find((s) => s.manifest?.kind === 'incr')!;
    const deletes: string[][] = [];
    const recording: Backend = Object.create(backend, { delete: { value: (keys: string[]) => (deletes.push(keys), backend.delete(keys)) } });
    await new Repository(recording).deleteStream(doomed.manifest!, doomed);
    expect(deletes[0]).toEqual([`${doomed.prefix}manifest.json`]);
    expect(deletes[1]).toEqual(expect.arrayContaining([`${doomed.prefix}SHA256SUMS`, `${doomed.prefix}000000.zst`]));
    expect(listFiles(root).filter((k) => k.startsWith(doomed.prefix))).toEqual([]);
    expect((await repo.catalog(DATASET)).streams.map((m) => m.streamId)).toEqual([streams.find((s) => s !== doomed)!.streamId]);
  });
});
