/**
 * `prune` through the built CLI on every target: a synthetic history of two chains (one -I
 * stream among them) is pruned with --keep-daily 2; every kept snapshot still restores
 * byte-identically, the deleted streams' objects are gone, verify stays clean. Plus dry runs,
 * refusals, abandoned uploads and S3 multipart uploads, and (unit level, on a recording backend)
 * the deletion order: manifest first, newest stream first, and what a crash in between leaves.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { acquireDatasetLock } from '../../src/archive/lease.js';
import { type PruneReport, pruneArchive } from '../../src/jobs/prune.js';
import type { Backend, ObjectInfo } from '../../src/storage/backend.js';
import { openBackend } from '../../src/storage/open.js';
import { silentLogger } from '../../src/util/logger.js';
import { runCli } from '../support/cli.js';
import { rgwClient } from '../support/rgw.js';
import { buildStream, type ContentRecord, type SubstreamSpec } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const DS = 'pool/prune';
const OTHER = 'pool/other';
const day = (d: number, hour = 2) => Date.UTC(2026, 0, d, hour) / 1000;
const guid = (n: number) => 0x1000_0000_0000_0000n + BigInt(n);
const sub = (name: string, to: number, from: number, creationTime: number, records?: ContentRecord[]): SubstreamSpec => ({
  toname: `${DS}@${name}`,
  toguid: guid(to),
  fromguid: from === 0 ? 0n : guid(from),
  creationTime,
  ...(records ? { records } : {}),
});
const bytesOf = (spec: Parameters<typeof buildStream>[0]) => Buffer.from(buildStream(spec).bytes);

/** ~2.5 MiB of incompressible data: the full of the old chain spans three 1 MiB chunks. */
const BIG: ContentRecord[] = Array.from({ length: 20 }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * 131072, data: randomBytes(131072) }));

/** Old chain a → b → c (Jan 1–3); new chain d → e (Jan 10–11) → -I f, g (Jan 12). */
const HISTORY = [
  bytesOf({ substreams: [sub('a', 1, 0, day(1), BIG)] }),
  bytesOf({ substreams: [sub('b', 2, 1, day(2))] }),
  bytesOf({ substreams: [sub('c', 3, 2, day(3))] }),
  bytesOf({ substreams: [sub('d', 4, 0, day(10))] }),
  bytesOf({ substreams: [sub('e', 5, 4, day(11))] }),
  bytesOf({ compound: { toname: `${DS}@g` }, substreams: [sub('f', 6, 5, day(12, 1)), sub('g', 7, 6, day(12, 5))] }),
  bytesOf({ substreams: [{ toname: `${OTHER}@only`, toguid: guid(99), creationTime: day(5) }] }),
];
const KEPT = ['d', 'e', 'f', 'g'];
const DELETED = ['a', 'b', 'c'];
const POLICY = ['--keep-daily', '2'];

async function listKeys(backend: Backend, prefix = ''): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  await backend.list(prefix, (o) => out.push(o));
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

async function manifests(backend: Backend): Promise<Manifest[]> {
  const keys = (await listKeys(backend)).filter((o) => o.key.endsWith('/manifest.json'));
  return Promise.all(keys.map(async (o) => JSON.parse((await backend.getBuffer(o.key)).toString()) as Manifest));
}

describe.each(testTargets())('prune on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;
  let backend: Backend;
  let out: string;
  const before = new Map<string, Buffer>();
  const cli = (args: string[]) => runCli(args, { env });
  const restoreTo = (snapshot: string) => cli(['restore', '--from', url, `${DS}@${snapshot}`, '--output', join(out, `${snapshot}.zfs`), '--force']);

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-prune-'));
    for (const stream of HISTORY) {
      const put = await runCli(['put', '--to', url, '--chunk-size', '1M'], { env, input: stream });
      expect(put.stderr).toBe('');
      expect(put.code).toBe(0);
    }
    for (const snapshot of [...DELETED, ...KEPT]) {
      const r = await restoreTo(snapshot);
      expect(r.stderr).toBe('');
      before.set(snapshot, readFileSync(join(out, `${snapshot}.zfs`)));
    }
  });
  afterAll(async () => {
    await cleanup?.();
    rmSync(out, { recursive: true, force: true });
  });

  it('refuses a policy that keeps nothing, and bad counts, with exit 2', async () => {
    const none = await cli(['prune', url]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^zfs-offsite: error: refusing a retention policy that keeps nothing: give at least one of --keep-last/);
    const bad = await cli(['prune', url, '--keep-daily', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid --keep-daily: "x" (expected a whole number ≥ 0)');
    expect((await cli(['prune', url, DS, '--keep-daily', '1', '--stale-after', '0'])).code).toBe(2);
    const unknown = await cli(['prune', url, 'pool/nothing', '--keep-daily', '1']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^zfs-offsite: error: no dataset pool\/nothing in the archive at .* \(it holds: pool\/other, pool\/prune\)\n$/);
    expect((await manifests(backend)).length).toBe(HISTORY.length);
  });

  it('--dry-run prints exactly what would go and deletes nothing', async () => {
    const objects = await listKeys(backend);
    const json = await cli(['prune', url, ...POLICY, '--dry-run', '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as PruneReport;
    expect(report.dryRun).toBe(true);
    const pruned = report.datasets.find((d) => d.dataset === DS)!;
    expect(pruned.deleted.map((s) => s.snapshots)).toEqual([['c'], ['b'], ['a']]);
    expect(pruned.deleted.every((s) => s.storedBytes > 0 && s.reason === 'no kept snapshot needs it')).toBe(true);
    expect(pruned.deleted[2]!.objects).toBe(5); // manifest, SHA256SUMS, 3 chunks
    expect(pruned.lostSnapshots.sort()).toEqual(DELETED);
    expect(pruned.keptSnapshots.map((s) => s.name)).toEqual(['g', 'e']);
    expect(report.datasets.find((d) => d.dataset === OTHER)!.deleted).toEqual([]);
    expect(report.deletedStreams).toBe(3);

    const human = await cli(['prune', url, ...POLICY, '--dry-run']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('(dry run: nothing is deleted)');
    expect(human.stdout).toMatch(new RegExp(`${DS}: keeps 3 streams \\(.*\\); would delete 3 \\(`));
    for (const s of pruned.deleted) expect(human.stdout).toContain(s.streamId);
    expect(human.stdout).toContain('no longer restorable afterwards: c, b, a');
    expect(human.stdout).toMatch(/would delete 3 streams, 11 objects, /);
    expect(await listKeys(backend)).toEqual(objects);
  });

  it('does not prune a dataset another run holds, naming the holder (exit 1)', async () => {
    const lock = await acquireDatasetLock({ dataset: DS, backend, settleMs: 10, host: 'elsewhere', stateDir: out });
    try {
      const r = await cli(['prune', url, DS, ...POLICY]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^zfs-offsite: error: prune failed for pool\/prune \(pool\/prune is locked by another zfs-offsite run: host elsewhere, pid \d+/);
      expect((await manifests(backend)).length).toBe(HISTORY.length);
    } finally {
      await lock.release();
    }
  });

  it('prunes: deleted streams are gone, every kept snapshot restores byte-identically, verify stays clean', async () => {
    const doomed = (await manifests(backend)).filter((m) => m.dataset === DS && DELETED.includes(m.to.name));
    const r = await cli(['prune', url, ...POLICY]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^deleted 3 streams, 11 objects, /m);
    const keys = (await listKeys(backend)).map((o) => o.key);
    for (const m of doomed) expect(keys.filter((k) => k.includes(m.streamId))).toEqual([]);
    expect((await manifests(backend)).map((m) => m.to.name).sort()).toEqual(['e', 'g', 'd', 'only'].sort());
    for (const snapshot of KEPT) {
      const restored = await restoreTo(snapshot);
      expect(restored.code).toBe(0);
      expect(readFileSync(join(out, `${snapshot}.zfs`)).equals(before.get(snapshot)!)).toBe(true);
    }
    expect((await restoreTo('a')).code).toBe(2);
    const verify = await cli(['verify', url]);
    expect(verify.stdout).toMatch(/clean/);
    expect(verify.code).toBe(0);
    // Pruning again changes nothing.
    const again = await cli(['prune', url, ...POLICY, '--json']);
    expect((JSON.parse(again.stdout) as PruneReport).deletedStreams).toBe(0);
  });

  it('removes uploads abandoned longer than --stale-after (and old S3 multipart uploads), keeps fresh ones', async () => {
    const journalDir = `${DS}/20260201T000000Z-incr-x-0000abcd/`;
    const orphanDir = `${DS}/20260202T000000Z-incr-y-0000abce/`;
    await backend.put(`${journalDir}journal.json`, Buffer.from('{}'));
    await backend.put(`${journalDir}000000.zst`, randomBytes(1000));
    await backend.put(`${orphanDir}000000.zst`, randomBytes(500));
    // The S3 server of this target (RGW or Swift), as the CLI reaches it: from the target's env.
    const s3 = url.startsWith('s3://')
      ? rgwClient({ endpoint: env.AWS_ENDPOINT_URL!, accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!, region: env.AWS_REGION ?? 'us-east-1' })
      : undefined;
    const [, bucket = '', prefix = ''] = /^s3:\/\/([^/]+)\/(.*)$/.exec(url) ?? [];
    if (s3) {
      const key = `${prefix}/${DS}/20260203T000000Z-full-z-0000abcf/000000.zst`;
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1024) }));
    }
    try {
      const fresh = JSON.parse((await cli(['prune', url, ...POLICY, '--json'])).stdout) as PruneReport;
      expect(fresh.datasets.flatMap((d) => d.abandoned)).toEqual([]);
      expect(fresh.incompleteUploads).toBe(s3 ? 0 : null);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const dry = JSON.parse((await cli(['prune', url, ...POLICY, '--stale-after', '1s', '--dry-run', '--json'])).stdout) as PruneReport;
      expect(dry.incompleteUploads).toBe(s3 ? 1 : null);
      const r = await cli(['prune', url, ...POLICY, '--stale-after', '1s']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/deleted abandoned upload \(journal, no manifest\): 20260201T000000Z-incr-x-0000abcd, 2 objects, 1002 B, \d+ s old/);
      expect(r.stdout).toMatch(/deleted objects without a manifest: 20260202T000000Z-incr-y-0000abce, 1 object, 500 B/);
      if (s3) expect(r.stdout).toContain('incomplete multipart uploads: 1 aborted');
      const keys = (await listKeys(backend)).map((o) => o.key);
      expect(keys.filter((k) => k.startsWith(journalDir) || k.startsWith(orphanDir))).toEqual([]);
      if (s3) expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
      expect((await restoreTo('g')).code).toBe(0);
    } finally {
      s3?.destroy();
    }
  });
});

/** Records every delete call; can be told to fail the n-th one (a crash mid-prune). */
class RecordingBackend {
  readonly deletes: string[][] = [];
  failAt?: number;
  constructor(private readonly inner: Backend) {
    // biome-ignore lint/correctness/noConstructorReturn: a recording proxy in front of the real backend
    return new Proxy(this, {
      get: (self, prop, receiver) => (prop in self ? Reflect.get(self, prop, receiver) : (inner as unknown as Record<string | symbol, unknown>)[prop]),
    });
  }
  async delete(keys: string[]): Promise<void> {
    this.deletes.push(keys);
    if (this.deletes.length === this.failAt) throw new Error('simulated crash');
    await this.inner.delete(keys);
  }
  list(prefix: string, onObject: (info: ObjectInfo) => void) {
    return this.inner.list(prefix, onObject);
  }
}

describe('prune deletion order (recording backend)', () => {
  let dir: string;
  let backend: Backend;
  const policy = { keepDaily: 2, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepLast: 0, minFulls: 1 };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-prune-order-'));
    for (const stream of HISTORY.slice(0, 6)) expect((await runCli(['put', '--to', dir, '--chunk-size', '1M'], { input: stream })).code).toBe(0);
    backend = await openBackend(dir);
  });
  afterAll(async () => {
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('removes each manifest before its SHA256SUMS and chunks, newest stream first; a crash leaves only manifest-less leftovers', async () => {
    const streams = (await manifests(backend)).filter((m) => DELETED.includes(m.to.name)).sort((a, b) => b.streamId.localeCompare(a.streamId));
    const recording = new RecordingBackend(backend);
    recording.failAt = 4; // the manifest of the 2nd stream is gone, its chunks not yet
    const crashed = await pruneArchive({ backend: recording as unknown as Backend, log: silentLogger(), dataset: DS, policy, staleAfterMs: 3_600_000, dryRun: false });
    expect(crashed.datasets[0]!.error).toBe('simulated crash');
    const prefix = (m: Manifest) => `${DS}/${m.streamId}/`;
    expect(recording.deletes[0]).toEqual([`${prefix(streams[0]!)}manifest.json`]);
    expect(recording.deletes[1]!.sort()).toEqual([`${prefix(streams[0]!)}000000.zst`, `${prefix(streams[0]!)}SHA256SUMS`]);
    expect(recording.deletes[2]).toEqual([`${prefix(streams[1]!)}manifest.json`]);
    const left = (await listKeys(backend, `${DS}/`)).map((o) => o.key);
    expect(left.filter((k) => k.startsWith(prefix(streams[1]!)))).toEqual([`${prefix(streams[1]!)}000000.zst`, `${prefix(streams[1]!)}SHA256SUMS`]);
    // What the crash left: no stream without its base; verify names the leftovers; restores work.
    const verify = await runCli(['verify', dir, '--stale-after', '0', '--json']);
    const problems = (JSON.parse(verify.stdout) as { problems: { kind: string; stream: string }[] }).problems;
    expect(problems.map((p) => [p.kind, p.stream])).toEqual([['orphan-object', streams[1]!.streamId]]);
    expect((await runCli(['restore', '--from', dir, `${DS}@g`, '--output', join(dir, '..', `g-${process.pid}.zfs`)])).code).toBe(0);
    rmSync(join(dir, '..', `g-${process.pid}.zfs`), { force: true });

    // The next prune finishes the job: the last doomed stream, then (once stale) the leftovers.
    const finish = new RecordingBackend(backend);
    const report = await pruneArchive({ backend: finish as unknown as Backend, log: silentLogger(), dataset: DS, policy, staleAfterMs: 1, dryRun: false, now: new Date(Date.now() + 1000) });
    expect(report.datasets[0]!.error).toBeUndefined();
    expect(report.datasets[0]!.deleted.map((s) => s.streamId)).toEqual([streams[2]!.streamId]);
    expect(report.datasets[0]!.abandoned.map((a) => [a.streamId, a.hasJournal])).toEqual([[streams[1]!.streamId, false]]);
    expect(finish.deletes[0]).toEqual([`${prefix(streams[2]!)}manifest.json`]);
    const remaining = (await listKeys(backend, `${DS}/`)).map((o) => o.key);
    for (const m of streams) expect(remaining.filter((k) => k.startsWith(prefix(m)))).toEqual([]);
  });
});
