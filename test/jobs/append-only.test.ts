/**
 * Append-only credentials on the real Ceph RGW (README "Ransomware protection"): a second user
 * whose only rights on the bucket come from a bucket policy that allows list/read/write and
 * denies s3:DeleteObject (test/support/rgw.ts appendOnlyPolicy). With that key a full and an
 * incremental `put` succeed (what they may not delete is a warning), the archive restores byte
 * for byte, quick verify is clean, and `prune` is refused with one line before it deletes
 * anything; the owner's key then prunes and removes what the writer left.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/storage/backend.js';
import { openBackend } from '../../src/storage/open.js';
import { runCli } from '../support/cli.js';
import { applyAppendOnlyPolicy, createTestBucket, rgwSettings, secondRgwUser, type TestBucket } from '../support/rgw.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';
import { buildStream, type ContentRecord, type SubstreamSpec } from '../support/synthetic-stream.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));

const DS = 'pool/nightly';
const guid = (n: number) => 0x2000_0000_0000_0000n + BigInt(n);
const day = (d: number) => Date.UTC(2026, 0, d, 2) / 1000;
const sub = (name: string, to: number, from: number, creationTime: number, records?: ContentRecord[]): SubstreamSpec => ({
  toname: `${DS}@${name}`,
  toguid: guid(to),
  fromguid: from === 0 ? 0n : guid(from),
  creationTime,
  ...(records ? { records } : {}),
});
/** ~1.5 MiB of incompressible data: the full spans two 1 MiB chunks. */
const BIG: ContentRecord[] = Array.from({ length: 12 }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * 131072, data: randomBytes(131072) }));
const FULL = Buffer.from(buildStream({ substreams: [sub('a', 1, 0, day(1), BIG)] }).bytes);
const INCR = Buffer.from(buildStream({ substreams: [sub('b', 2, 1, day(2))] }).bytes);
const FULL2 = Buffer.from(buildStream({ substreams: [sub('c', 3, 0, day(3))] }).bytes);

const owner = rgwSettings();
const writer = secondRgwUser(owner);

async function keys(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  await backend.list('', (o) => out.push(`${o.key} ${o.size} ${o.etag ?? ''}`));
  return out.sort();
}

describe.skipIf(!writer)('append-only credentials on Ceph RGW (bucket policy denying s3:DeleteObject)', () => {
  let bucket: TestBucket;
  let url: string;
  let out: string;
  let ownerBackend: Backend;
  const envOf = (s: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string }) => ({
    AWS_ENDPOINT_URL: s.endpoint,
    AWS_ACCESS_KEY_ID: s.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s.secretAccessKey,
    AWS_REGION: s.region,
  });
  const asWriter = (args: string[], input?: Buffer) => runCli(args, { env: envOf(writer!), ...(input ? { input } : {}) });
  const asOwner = (args: string[]) => runCli(args, { env: envOf(owner!) });

  beforeAll(async () => {
    bucket = await createTestBucket(owner);
    await applyAppendOnlyPolicy(owner!, bucket.name, writer!.uid);
    url = `s3://${bucket.name}/archive`;
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-append-only-'));
    ownerBackend = await openBackend(url, { s3Endpoint: owner!.endpoint, s3Credentials: { accessKeyId: owner!.accessKeyId, secretAccessKey: owner!.secretAccessKey } });
  });
  afterAll(async () => {
    await ownerBackend?.close();
    await bucket?.cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  it('the key really cannot delete (the policy is in force)', async () => {
    const backend = await openBackend(url, { s3Endpoint: writer!.endpoint, s3Credentials: { accessKeyId: writer!.accessKeyId, secretAccessKey: writer!.secretAccessKey } });
    try {
      await backend.put('probe', Buffer.from('x'));
      await expect(backend.delete(['probe'])).rejects.toMatchObject({ kind: 'permission' });
      await ownerBackend.delete(['probe']);
    } finally {
      await backend.close();
    }
  });

  it('a full and an incremental put succeed; the journals are left with a warning; restore is byte-identical', async () => {
    const full = await asWriter(['put', '--to', url, '--chunk-size', '1M'], FULL);
    expect(full.code).toBe(0);
    expect(full.stderr).toContain('cleanup is left to `zfs-offsite prune` run with a key that can delete');
    const incr = await asWriter(['put', '--to', url, '--chunk-size', '1M'], INCR);
    expect(incr.code).toBe(0);
    // The lease was marked released (it could not be deleted): the second put took it silently.
    expect(incr.stderr).not.toContain('taking over');
    const listed = await keys(ownerBackend);
    expect(listed.filter((k) => k.includes('/journal.json ')).length).toBe(2);
    expect(listed.filter((k) => k.includes('/manifest.json ')).length).toBe(2);

    const verify = await asWriter(['verify', url]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const restore = await asWriter(['restore', '--from', url, `${DS}@b`, '--output-dir', join(out, 'b')]);
    expect(restore.code).toBe(0);
    expect(readFileSync(join(out, 'b', `0001-pool_nightly@a.zstream`)).equals(FULL)).toBe(true);
    expect(readFileSync(join(out, 'b', `0002-pool_nightly@b.zstream`)).equals(INCR)).toBe(true);
  });

  it("the same key's prune is refused with one line, exit 1, and nothing changes", async () => {
    const before = await keys(ownerBackend);
    const prune = await asWriter(['prune', url, '--keep-last', '1']);
    expect(prune.code).toBe(1);
    expect(prune.stdout).toBe('');
    expect(prune.stderr).toMatch(/^zfs-offsite: error: s3:\/\/\S+ refuses deletions with these credentials \(access denied\); nothing was deleted: prune needs a key that can delete .*\n$/);
    expect(await keys(ownerBackend)).toEqual(before);
    // A dry run deletes nothing and needs no deleting key.
    expect((await asWriter(['prune', url, '--keep-last', '1', '--dry-run'])).code).toBe(0);
  });

  it("the owner's prune deletes what the policy lets go and the journals the writer left", async () => {
    const put = await asWriter(['put', '--to', url], FULL2);
    expect(put.code).toBe(0);
    const prune = await asOwner(['prune', url, '--keep-last', '1', '--min-fulls', '1']);
    expect(prune.stderr).toBe('');
    expect(prune.code).toBe(0);
    const listed = await keys(ownerBackend);
    expect(listed.filter((k) => k.includes('/manifest.json ')).length).toBe(1);
    expect(listed.filter((k) => k.includes('/journal.json '))).toEqual([]);
    const restore = await asOwner(['restore', '--from', url, `${DS}@c`, '--output', join(out, 'c.zfs')]);
    expect(restore.code).toBe(0);
    expect(readFileSync(join(out, 'c.zfs')).equals(FULL2)).toBe(true);
    const verify = await asOwner(['verify', url]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
  });

  it('run --config with the key: full then incremental are ok, keep: is skipped with a warning', async () => {
    // The zfs stand-in (test/support/zfs-stand-in.mjs) replays real OpenZFS streams, as test/jobs/run.test.ts does.
    const ds = 'labpool/zfs-send-tiny';
    const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
    const incremental = firstBeginGuids(fixtureBytes('zse-tiny-incremental.zfs')).toguid.toString();
    const state = join(out, 'state.json');
    writeFileSync(
      state,
      JSON.stringify({
        log: join(out, 'zfs.log'),
        datasets: {
          [ds]: {
            encryption: 'off',
            snapshots: [
              { name: 'base', guid: base, createtxg: 100, creation: 1786111636 },
              { name: 'incremental', guid: incremental, createtxg: 200, creation: 1786111637 },
            ],
          },
        },
        streams: { [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs'), [`${base}:${incremental}`]: join(FIXTURE_DIR, 'zse-tiny-incremental.zfs') },
      }),
    );
    const runWith = async (pattern: string) => {
      const file = join(out, `config-${pattern}.yaml`);
      writeFileSync(file, `datasets:\n  - name: ${ds}\n    target: s3://${bucket.name}/run\n    snapshot: { mode: pick, pattern: "${pattern}" }\n    keep: { daily: 3 }\n`);
      return runCli(['run', '--config', file, '--json'], {
        env: { ...envOf(writer!), ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: state, ZFS_OFFSITE_LOCK_DIR: join(out, 'locks') },
      });
    };
    for (const [pattern, kind] of [
      ['base', 'full'],
      ['incremental', 'incr'],
    ] as const) {
      const r = await runWith(pattern);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as { ok: boolean; results: { status: string; kind?: string }[] };
      expect(report.ok).toBe(true);
      expect(report.results.map((x) => [x.status, x.kind])).toEqual([['ok', kind]]);
      expect(r.stderr).toContain('keep: not applied');
      expect(r.stderr).toContain('retention is left to `zfs-offsite prune` run with a key that can delete');
    }
  });
});
