/**
 * The CLI on OpenStack Swift's s3api, the second real S3 implementation of the suite, under the
 * default provider settings (src/storage/s3-quirks.ts): `put` of a real fixture and `prune`
 * exit 0 and leave nothing behind (no journal, lease or other temporary object in the bucket),
 * and what stays restores byte-identically. Swift refuses a multi-object delete without
 * Content-MD5; before the quirks table `put` committed its manifest and then exited 1 on the
 * journal cleanup, and `prune` said "deleted 1 stream" and then "prune failed". A provider row
 * that sends the SDK's CRC32 instead (`--s3-provider ceph`) still fails there, which shows what
 * the switch is for.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { createTestBucket, rgwClient, type TestBucket } from '../support/rgw.js';
import { s3TestServers } from '../support/s3-servers.js';
import { buildStream, type SubstreamSpec } from '../support/synthetic-stream.js';

const FIXTURE = 'zse-tiny-full.zfs';
const DS = 'pool/providers';
const day = (d: number) => Date.UTC(2026, 0, d, 2) / 1000;
const full = (name: string, guid: bigint, d: number): Buffer => {
  const spec: SubstreamSpec = { toname: `${DS}@${name}`, toguid: guid, fromguid: 0n, creationTime: day(d) };
  return Buffer.from(buildStream({ substreams: [spec] }).bytes);
};
/** What a finished archive may hold: marker, stream index, and per stream manifest, sums, chunks. */
const FINAL = /^archive\/(zfs-offsite\.json|.+\/~index\.json|.+\/(manifest\.json|SHA256SUMS|\d{6}\.zst))$/;

describe.each(s3TestServers().filter((s) => s.provider === 'swift'))('the CLI on $name', ({ name, settings, hint }) => {
  if (!settings) {
    it.skip(`skipped: ${name} is not running; ${hint}`, () => undefined);
    return;
  }
  let bucket: TestBucket;
  let url: string;
  let out: string;
  const env = {
    AWS_ENDPOINT_URL: settings.endpoint,
    AWS_ACCESS_KEY_ID: settings.accessKeyId,
    AWS_SECRET_ACCESS_KEY: settings.secretAccessKey,
    AWS_REGION: settings.region,
  };
  const cli = (args: string[], input?: Buffer) => runCli(args, { env, ...(input ? { input } : {}) });

  /** Every key in the bucket (not only under our prefix: nothing may be left anywhere). */
  async function bucketKeys(): Promise<string[]> {
    const client = rgwClient(settings!);
    try {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket.name }));
      return (res.Contents ?? []).map((o) => o.Key ?? '').sort();
    } finally {
      client.destroy();
    }
  }
  async function manifests(): Promise<Manifest[]> {
    const client = rgwClient(settings!);
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    try {
      const keys = (await bucketKeys()).filter((k) => k.endsWith('/manifest.json'));
      return await Promise.all(keys.map(async (Key) => JSON.parse(await (await client.send(new GetObjectCommand({ Bucket: bucket.name, Key }))).Body!.transformToString()) as Manifest));
    } finally {
      client.destroy();
    }
  }
  async function restored(snapshot: string): Promise<Buffer> {
    const file = join(out, `${snapshot.replace(/[/@]/g, '_')}.zfs`);
    const r = await cli(['restore', '--from', url, snapshot, '--output', file, '--force']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return readFileSync(file);
  }

  beforeAll(async () => {
    bucket = await createTestBucket(settings);
    url = `s3://${bucket.name}/archive`;
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-providers-'));
  });
  afterAll(async () => {
    if (out) rmSync(out, { recursive: true, force: true });
    await bucket?.cleanup();
  });

  it('put of a real fixture exits 0, leaves only the final objects, and restores byte-identically', async () => {
    const stream = fixtureBytes(FIXTURE);
    const r = await cli(['put', '--to', url], stream);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const keys = await bucketKeys();
    expect(keys.filter((k) => !FINAL.test(k))).toEqual([]);
    expect(keys.filter((k) => k.endsWith('/manifest.json'))).toHaveLength(1);
    const [manifest] = await manifests();
    expect((await restored(`${manifest!.dataset}@${manifest!.to.name}`)).equals(stream)).toBe(true);
  }, 120_000);

  it('prune deletes a stream, exits 0 and leaves nothing behind; the rest restores byte-identically', async () => {
    const older = full('older', 0x2000_0000_0000_0001n, 1);
    const newer = full('newer', 0x2000_0000_0000_0002n, 2);
    for (const stream of [older, newer]) {
      const r = await cli(['put', '--to', url], stream);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const r = await cli(['prune', url, DS, '--keep-last', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/deleted 1 stream/);
    expect(r.stdout).not.toMatch(/fail/i);
    const keys = await bucketKeys();
    expect(keys.filter((k) => !FINAL.test(k))).toEqual([]);
    expect((await manifests()).filter((m) => m.dataset === DS).map((m) => m.to.name)).toEqual(['newer']);
    expect((await restored(`${DS}@newer`)).equals(newer)).toBe(true);
    const gone = await cli(['restore', '--from', url, `${DS}@older`, '--output', join(out, 'older.zfs'), '--force']);
    expect(gone.code).not.toBe(0);
  }, 180_000);

  it('--s3-provider swift works the same; a row that sends the SDK CRC32 on deletes (ceph) is refused there', async () => {
    const stream = full('flagged', 0x2000_0000_0000_0003n, 3);
    const ok = await cli(['put', '--to', url, '--s3-provider', 'swift'], stream);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const wrong = await cli(['put', '--to', url, '--s3-provider', 'ceph'], full('crc', 0x2000_0000_0000_0004n, 4));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^zfs-offsite: error: .*Content-MD5/m);
    // What that failed run left (its journal) is cleaned up by a run with the right settings.
    const pruned = await cli(['prune', url, DS, '--keep-last', '5', '--stale-after', '1s']);
    expect(pruned.code).toBe(0);
  }, 120_000);
});
