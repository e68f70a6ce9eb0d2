/**
 * `run --config` nightly-style on real OpenZFS (VM) against Ceph RGW: two datasets, fulls then
 * incrementals, a new full when max_chain is reached, pruning that keeps chains restorable,
 * and a second concurrent run refused.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../support/cli.js';
import { createTestBucket, rgwSettings, type TestBucket } from '../support/rgw.js';
import { zfsVm } from '../support/zfs-vm.js';

const vm = zfsVm();
const rgw = rgwSettings();
const POOL = 'zonightly';

interface Report {
  ok: boolean;
  results: { dataset: string; status: string; kind?: string; why?: string; prunedStreams?: number; message?: string }[];
}

describe.skipIf(!vm || !rgw)('nightly run on real OpenZFS and RGW', () => {
  let bucket: TestBucket;
  let dir: string;
  let config: string;
  const env = () => ({
    ...vm!.env,
    AWS_ENDPOINT_URL: rgw!.endpoint,
    AWS_REGION: rgw!.region,
    // The config refers to credentials by variable name only …
    NIGHTLY_KEY_ID: rgw!.accessKeyId,
    NIGHTLY_SECRET: rgw!.secretAccessKey,
    ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks'),
  });
  /** … while list and restore, run by hand, take them from the standard AWS variables. */
  const byHand = () => ({ ...env(), AWS_ACCESS_KEY_ID: rgw!.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw!.secretAccessKey });
  const runOnce = async (): Promise<{ code: number | null; report: Report; stderr: string }> => {
    const r = await runCli(['run', '--config', config, '--json'], { env: env() });
    return { code: r.code, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
  };
  const change = (ds: string) => vm!.run(`head -c 65536 /dev/urandom > /mnt/${ds}/f$(date +%s%N)`);

  beforeAll(async () => {
    bucket = await createTestBucket();
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-nightly-'));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `defaults:
  target: s3://${bucket.name}/nightly
  s3: { access_key_id_env: NIGHTLY_KEY_ID, secret_access_key_env: NIGHTLY_SECRET }
  snapshot: { mode: create, prefix: nightly }
  max_chain: 2
  keep: { last: 1, min_fulls: 1 }
datasets:
  - name: ${POOL}/a
  - name: ${POOL}/b
`,
    );
    await vm!.run(`zpool destroy -f ${POOL} 2>/dev/null; rm -f /var/tmp/${POOL}.img; truncate -s 256M /var/tmp/${POOL}.img && zpool create -f -O mountpoint=/mnt/${POOL} ${POOL} /var/tmp/${POOL}.img`);
    await vm!.run(
      `zfs create ${POOL}/a && zfs create ${POOL}/b && zpool create -f zonightlydst /var/tmp/zonightlydst.img 2>/dev/null || (truncate -s 256M /var/tmp/zonightlydst.img && zpool create -f -O mountpoint=/mnt/zonightlydst zonightlydst /var/tmp/zonightlydst.img)`,
    );
  }, 300_000);
  afterAll(async () => {
    await vm?.ssh(`zpool destroy -f ${POOL}; zpool destroy -f zonightlydst; rm -f /var/tmp/${POOL}.img /var/tmp/zonightlydst.img`);
    await bucket?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends fulls, then incrementals, then a new full at max_chain; prunes; the newest restores', async () => {
    const kinds: string[][] = [];
    for (let night = 1; night <= 4; night++) {
      for (const ds of ['a', 'b']) await change(`${POOL}/${ds}`);
      const { code, report, stderr } = await runOnce();
      expect(stderr).not.toContain(rgw!.secretAccessKey);
      expect(report.results.map((r) => r.status)).toEqual(['ok', 'ok']);
      expect(code).toBe(0);
      kinds.push(report.results.map((r) => r.kind!));
    }
    // Night 4: the chain (full + 2 incrementals) reached max_chain 2: a new full.
    expect(kinds).toEqual([
      ['full', 'full'],
      ['incr', 'incr'],
      ['incr', 'incr'],
      ['full', 'full'],
    ]);
    // Night 5, with full_every instead: the newest full is older than 2 s, so a new full again.
    writeFileSync(config, readFileSync(config, 'utf8').replace('  max_chain: 2\n', '  full_every: 2s\n'));
    await new Promise((resolve) => setTimeout(resolve, 3000));
    for (const ds of ['a', 'b']) await change(`${POOL}/${ds}`);
    const night5 = await runOnce();
    expect(night5.code).toBe(0);
    expect(night5.report.results.map((r) => [r.kind, r.why])).toEqual([
      ['full', expect.stringMatching(/full_every/)],
      ['full', expect.stringMatching(/full_every/)],
    ]);
    // Protective bookmarks: exactly one per dataset, of the newest archived snapshot.
    const bookmarks = (await vm!.run(`zfs list -H -o name -t bookmark -r ${POOL}`)).trim().split('\n');
    expect(bookmarks).toHaveLength(2);
    // keep last 1: the older chains are gone, the newest restores.
    const listed = JSON.parse((await runCli(['list', `s3://${bucket.name}/nightly`, `${POOL}/a`, '--json'], { env: byHand() })).stdout) as { streams: { kind: string }[] }[];
    expect(listed[0]!.streams.map((s) => s.kind)).toEqual(['full']);
    const restored = await runCli(['restore', '--from', `s3://${bucket.name}/nightly`, `${POOL}/a`, '--into', 'zonightlydst/a'], { env: byHand() });
    expect(restored.code).toBe(0);
    const sums = (ds: string) => vm!.run(`cd /mnt/${ds} && find . -type f | sort | xargs sha256sum`);
    expect(await sums('zonightlydst/a')).toBe(await sums(`${POOL}/a`));
  });

  it('refuses a second run while one holds the datasets, naming the holder', async () => {
    for (const ds of ['a', 'b']) await change(`${POOL}/${ds}`);
    const first = spawn(process.execPath, [CLI, 'run', '--config', config, '--json'], { env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    first.stdout.on('data', (b: Buffer) => out.push(b));
    const done = new Promise((resolve) => first.on('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the first run holds the lock of dataset a
    const second = await runOnce();
    await done;
    const firstReport = JSON.parse(Buffer.concat(out).toString()) as Report;
    const refused = [firstReport, second.report].flatMap((r) => r.results).filter((r) => r.status === 'failed');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.message).toMatch(/held by|lock/i);
    expect(second.code === 1 || firstReport.ok === false).toBe(true);
  });
});
