/**
 * Several targets per dataset on real OpenZFS (issue 19): one dataset sent to a local directory
 * and to Ceph RGW, the sends interleaved and the archived base snapshots destroyed between runs
 * (as a local pruning tool does). Each target keeps a bookmark of its own, so both continue with
 * incrementals — no new full — and both restore the newest snapshot with the source's GUID; then
 * the same from a config with `targets: [dir, s3://…]` through `run`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createTestBucket, rgwSettings, type TestBucket } from '../support/rgw.js';
import { q, ZFS_VM_HINT, zfsVm, zfsVmUnavailable } from '../support/zfs-vm.js';

const vm = zfsVm();
const rgw = rgwSettings();
if (!vm || !rgw) {
  const why = !vm ? `${zfsVmUnavailable() ?? 'the OpenZFS test VM is not usable'}; ${ZFS_VM_HINT}` : 'no Ceph RGW: run scripts/rgw.sh start';
  if (process.env.ZFS_VM_REQUIRED === '1') throw new Error(`ZFS_VM_REQUIRED=1 but ${why}`);
  console.warn(`real-ZFS multi-target tests skipped: ${why}`);
}

const SRC = 'zomulti';
const DST = 'zomultidst';

interface Listed {
  streams: { kind: string; snapshot: string }[];
}

describe.skipIf(!vm || !rgw)('several targets per dataset on real OpenZFS', () => {
  let bucket: TestBucket;
  let dir: string;
  const env = () => ({
    ...vm!.env,
    AWS_ENDPOINT_URL: rgw!.endpoint,
    AWS_ACCESS_KEY_ID: rgw!.accessKeyId,
    AWS_SECRET_ACCESS_KEY: rgw!.secretAccessKey,
    AWS_REGION: rgw!.region,
    ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks'),
  });
  const cli = async (...args: string[]) => {
    const r = await runCli(['--log-level', 'info', ...args], { env: env() });
    if (r.code !== 0) console.log(`zfs-offsite ${args.join(' ')} → exit ${r.code}\n${r.stdout}${r.stderr}`);
    return r;
  };
  const run = (cmd: string) => vm!.run(cmd);
  const guidOf = async (name: string) => (await run(`zfs get -H -p -o value guid ${q(name)}`)).trim();
  const change = (ds: string) => run(`head -c 65536 /dev/urandom > /mnt/${ds}/f$(date +%s%N)`);
  const snapshots = async (ds: string) => (await run(`zfs list -H -o name -t snapshot ${q(ds)}`)).split('\n').filter(Boolean);
  const bookmarks = async (ds: string) => (await run(`zfs list -H -o name -t bookmark ${q(ds)}`)).split('\n').filter(Boolean).sort();
  /** What a local pruning tool does: every snapshot of the dataset destroyed but `keep`. */
  const prune = async (ds: string, keep?: string) => {
    for (const s of await snapshots(ds)) if (s !== keep) await run(`zfs destroy ${q(s)}`);
  };
  /** The streams of a dataset in a target: kind, snapshot and base, in snapshot order. */
  const streams = async (target: string, ds: string) => {
    const r = await cli('list', target, ds, '--json');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as Listed[])[0]!.streams.map((s) => [s.kind, s.snapshot.slice(s.snapshot.indexOf('@') + 1)]);
  };
  const targetId = (local: string) => (JSON.parse(readFileSync(join(local, 'zfs-offsite.json'), 'utf8')) as { id: string }).id;
  /** Restores a dataset from a target onto the empty pool: the newest snapshot there, with its GUID. */
  const restoreNewest = async (target: string, ds: string, into: string) => {
    const r = await cli('restore', '--from', target, ds, '--into', into, '--no-mount');
    expect(r.code).toBe(0);
    const restored = await snapshots(into);
    return { name: restored.at(-1)!.slice(into.length), guid: await guidOf(restored.at(-1)!) };
  };

  beforeAll(async () => {
    bucket = await createTestBucket();
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-multi-'));
    await run(`for p in ${SRC} ${DST}; do zpool destroy -f $p 2>/dev/null; rm -f /var/tmp/$p.img; truncate -s 256M /var/tmp/$p.img && zpool create -f -O mountpoint=/mnt/$p $p /var/tmp/$p.img; done`);
  }, 300_000);
  afterAll(async () => {
    await vm?.ssh(`zpool destroy -f ${SRC}; zpool destroy -f ${DST}; rm -f /var/tmp/${SRC}.img /var/tmp/${DST}.img`);
    await bucket?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('send to a local directory and to RGW in turn, the base snapshots destroyed between: both stay incremental and both restore', async () => {
    const ds = `${SRC}/data`;
    const local = join(dir, 'usb');
    const s3 = `s3://${bucket.name}/offsite`;
    await run(`zfs create ${ds}`);
    await change(ds);
    await run(`zfs snapshot ${ds}@s1`);
    expect((await cli('send', `${ds}@s1`, '--to', local)).code).toBe(0);
    expect((await cli('send', `${ds}@s1`, '--to', s3)).code).toBe(0);
    // Each target has its own bookmark of s1: sending to the second kept the first's.
    // (The S3 target's id is random, so it may sort before or after the local one.)
    const localMark = `${ds}#zfs-offsite-${targetId(local)}_s1`;
    const marks = await bookmarks(ds);
    expect(marks).toContain(localMark);
    expect(marks.filter((m) => m !== localMark)).toEqual([expect.stringMatching(new RegExp(`^${ds}#zfs-offsite-[0-9a-f]{8}_s1$`))]);

    // Interleaved: RGW first this time; s1 is destroyed between the two sends.
    await change(ds);
    await run(`zfs snapshot ${ds}@s2`);
    expect((await cli('send', `${ds}@s2`, '--to', s3)).code).toBe(0);
    await prune(ds, `${ds}@s2`);
    const second = await cli('send', `${ds}@s2`, '--to', local, '--json');
    expect(second.code).toBe(0);
    expect((JSON.parse(second.stdout) as { sendArgs: string[] }).sendArgs).toContain(`${ds}#zfs-offsite-${targetId(local)}_s1`);

    // Every snapshot destroyed before the third round: only the bookmarks are left as bases.
    await prune(ds);
    await change(ds);
    await run(`zfs snapshot ${ds}@s3`);
    for (const target of [local, s3]) {
      const r = await cli('send', `${ds}@s3`, '--to', target);
      expect(r.stderr).not.toMatch(/new full/);
      expect(r.code).toBe(0);
    }
    for (const target of [local, s3]) {
      expect(await streams(target, ds)).toEqual([
        ['full', 's1'],
        ['incr', 's2'],
        ['incr', 's3'],
      ]);
    }
    const newest = await guidOf(`${ds}@s3`);
    expect(await restoreNewest(local, ds, `${DST}/from-usb`)).toEqual({ name: '@s3', guid: newest });
    expect(await restoreNewest(s3, ds, `${DST}/from-s3`)).toEqual({ name: '@s3', guid: newest });
  });

  it('run with targets: [dir, s3] — one snapshot per night, both targets incremental after the pruner, both restore', async () => {
    const ds = `${SRC}/nightly`;
    const local = join(dir, 'nas');
    const s3 = `s3://${bucket.name}/nightly`;
    await run(`zfs create ${ds}`);
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `defaults:\n  snapshot: { mode: create, prefix: night }\ndatasets:\n  - name: ${ds}\n    targets: [${local}, ${s3}]\n`);
    const kinds: string[][] = [];
    for (let night = 1; night <= 3; night++) {
      await change(ds);
      const r = await cli('run', '--config', config, '--json');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as { results: { target: string; status: string; kind: string }[] };
      expect(report.results.map((x) => [x.target, x.status])).toEqual([
        [local, 'ok'],
        [s3, 'ok'],
      ]);
      kinds.push(report.results.map((x) => x.kind));
      // The two targets needed the same stream: zfs send ran once for both.
      expect(r.stderr).toMatch(/one zfs send for 2 targets/);
      expect(await bookmarks(ds)).toHaveLength(2);
      // The pruner destroys every snapshot but tonight's … then, before night 3, that one too.
      const newest = (await snapshots(ds)).at(-1)!;
      await prune(ds, night === 2 ? undefined : newest);
      // Another second for the next snapshot name.
      await new Promise((resolve) => setTimeout(resolve, 1100));
    }
    expect(kinds).toEqual([
      ['full', 'full'],
      ['incr', 'incr'],
      ['incr', 'incr'],
    ]);
    for (const target of [local, s3]) expect((await streams(target, ds)).map(([kind]) => kind)).toEqual(['full', 'incr', 'incr']);
    const newest = (await snapshots(ds)).at(-1)!;
    const guid = await guidOf(newest);
    const name = newest.slice(ds.length);
    expect(await restoreNewest(local, ds, `${DST}/nightly-nas`)).toEqual({ name, guid });
    expect(await restoreNewest(s3, ds, `${DST}/nightly-s3`)).toEqual({ name, guid });
  });
});
