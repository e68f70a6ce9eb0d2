/**
 * The scenarios users run, end to end on real OpenZFS 2.3 in the test VM (`npm run test:zfs`):
 * the CLI runs on this host and drives zfs in the VM through ZFS_OFFSITE_ZFS_CMD (ssh), storing
 * to the real Ceph RGW and to a local directory. Data is kept small: under TCG bytes cross ssh
 * at ~5 MB/s.
 */
import { spawn } from 'node:child_process';

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../support/cli.js';
import { createTestBucket, rgwSettings, type TestBucket } from '../support/rgw.js';
import { q, ZFS_VM_HINT, zfsVm, zfsVmUnavailable } from '../support/zfs-vm.js';

const vm = zfsVm();
const rgw = rgwSettings();
if (!vm || !rgw) {
  const why = !vm ? `${zfsVmUnavailable() ?? 'the OpenZFS test VM is not usable'}; ${ZFS_VM_HINT}` : 'no Ceph RGW: run scripts/rgw.sh start';
  if (process.env.ZFS_VM_REQUIRED === '1') throw new Error(`ZFS_VM_REQUIRED=1 but ${why}`);
  console.warn(`real-ZFS scenarios skipped: ${why}`);
}

const SRC = 'zosrc';
const DST = 'zodst';
const KEY = '/var/tmp/zo-e2e.key';

describe.skipIf(!vm || !rgw)('scenarios on real OpenZFS', () => {
  let bucket: TestBucket;
  let s3: string;
  let local: string;
  const env = () => ({
    ...vm!.env,
    AWS_ENDPOINT_URL: rgw!.endpoint,
    AWS_ACCESS_KEY_ID: rgw!.accessKeyId,
    AWS_SECRET_ACCESS_KEY: rgw!.secretAccessKey,
    AWS_REGION: rgw!.region,
  });
  const cli = async (...args: string[]) => {
    const r = await runCli(['--log-level', 'info', ...args], { env: env() });
    if (r.code !== 0) console.log(`zfs-offsite ${args.join(' ')} → exit ${r.code}\n${r.stdout}${r.stderr}`);
    return r;
  };
  const run = (cmd: string) => vm!.run(cmd);
  /** name → guid of every snapshot under a dataset, relative names (`@s1`, `child@s1`). */
  const snapshotGuids = async (dataset: string) => {
    const out = await run(`zfs list -H -p -r -t snapshot -o name,guid ${q(dataset)}`);
    return Object.fromEntries(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [name, guid] = l.split('\t');
          return [name!.slice(dataset.length), guid!];
        }),
    );
  };
  const fileSums = async (mountpoint: string) => run(`cd ${q(mountpoint)} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum`);
  const write = (path: string, kib: number) => run(`head -c ${kib * 1024} /dev/urandom > ${q(path)}`);

  beforeAll(async () => {
    bucket = await createTestBucket();
    s3 = `s3://${bucket.name}/e2e`;
    local = mkdtempSync(join(tmpdir(), 'zfs-offsite-e2e-'));
    // Fresh pools on file vdevs: the source, and an empty one to restore onto (new hardware).
    await run(`for p in ${SRC} ${DST}; do zpool destroy -f $p 2>/dev/null; rm -f /var/tmp/$p.img; truncate -s 384M /var/tmp/$p.img && zpool create -f -O mountpoint=/mnt/$p $p /var/tmp/$p.img; done`);
    await run(`umask 077 && head -c 32 /dev/urandom > ${KEY}`);
  }, 300_000);
  afterAll(async () => {
    await vm?.ssh(`zpool destroy -f ${SRC}; zpool destroy -f ${DST}; rm -f /var/tmp/${SRC}.img /var/tmp/${DST}.img ${KEY}`);
    await bucket?.cleanup();
    if (local) rmSync(local, { recursive: true, force: true });
  });

  it('1. encrypted dataset: raw full + 3 incrementals to S3, restored onto a fresh pool with equal GUIDs and files', async () => {
    const ds = `${SRC}/secret`;
    await run(`zfs create -o encryption=aes-256-gcm -o keyformat=raw -o keylocation=file://${KEY} ${ds}`);
    await write(`/mnt/${ds}/a.bin`, 512);
    await run(`zfs snapshot ${ds}@s1`);
    for (const round of [2, 3, 4]) {
      await write(`/mnt/${ds}/r${round}.bin`, 256);
      if (round === 3) await run(`rm /mnt/${ds}/a.bin`);
      await run(`echo round${round} >> /mnt/${ds}/log.txt && zfs snapshot ${ds}@s${round}`);
    }
    for (const snap of ['s1', 's2', 's3', 's4']) expect((await cli('send', `${ds}@${snap}`, '--to', s3)).code).toBe(0);
    const listed = JSON.parse((await cli('list', s3, ds, '--json')).stdout) as { streams: { kind: string; raw: boolean }[] }[];
    expect(listed[0]!.streams.map((s) => [s.kind, s.raw])).toEqual([
      ['full', true],
      ['incr', true],
      ['incr', true],
      ['incr', true],
    ]);

    const r = await cli('restore', '--from', s3, ds, '--into', `${DST}/secret`);
    expect(r.code).toBe(0);
    expect(await snapshotGuids(`${DST}/secret`)).toEqual(await snapshotGuids(ds));
    await run(`zfs load-key -L file://${KEY} ${DST}/secret && zfs mount ${DST}/secret`);
    expect(await fileSums(`/mnt/${DST}/secret`)).toBe(await fileSums(`/mnt/${ds}`));
  });

  it('2. -I: several snapshots in one stream; restore to an intermediate one', async () => {
    const ds = `${SRC}/multi`;
    await run(`zfs create ${ds}`);
    for (const snap of ['a', 'b', 'c', 'd']) await run(`head -c 65536 /dev/urandom > /mnt/${ds}/${snap} && zfs snapshot ${ds}@${snap}`);
    expect((await cli('send', `${ds}@a`, '--to', local)).code).toBe(0);
    const sent = await cli('send', `${ds}@d`, '--to', local, '--from', 'a', '-I', '--json');
    expect(sent.code).toBe(0);
    expect((JSON.parse(sent.stdout) as { manifest: { substreams: unknown[] } }).manifest.substreams).toHaveLength(3);
    expect((await cli('restore', '--from', local, `${ds}@c`, '--into', `${DST}/multi`)).code).toBe(0);
    const src = await snapshotGuids(ds);
    expect(await snapshotGuids(`${DST}/multi`)).toEqual({ '@a': src['@a'], '@b': src['@b'], '@c': src['@c'] });
  });

  it('3. SmartOS zone pattern: image@final and a clone archived from its origin; both restored, origin correct', async () => {
    const image = `${SRC}/image`;
    const zone = `${SRC}/zone`;
    await run(`zfs create ${image} && head -c 262144 /dev/urandom > /mnt/${image}/base.img && zfs snapshot ${image}@final`);
    await run(`zfs clone ${image}@final ${zone} && head -c 65536 /dev/urandom > /mnt/${zone}/zone.cfg && zfs snapshot ${zone}@snap1`);
    expect((await cli('send', `${image}@final`, '--to', local)).code).toBe(0);
    expect((await cli('send', `${zone}@snap1`, '--to', local, '--from', `${image}@final`, '-I')).code).toBe(0);
    expect((await cli('restore', '--from', local, image, '--into', `${DST}/image`)).code).toBe(0);
    const r = await cli('restore', '--from', local, zone, '--into', `${DST}/zone`);
    expect(r.code).toBe(0);
    expect((await run(`zfs get -H -o value origin ${DST}/zone`)).trim()).toBe(`${DST}/image@final`);
    expect(await snapshotGuids(`${DST}/zone`)).toEqual(await snapshotGuids(zone));
    expect(await fileSums(`/mnt/${DST}/zone`)).toBe(await fileSums(`/mnt/${zone}`));
  });

  it('4. base protection: the archived base snapshot destroyed on the source, the next incremental comes from the kept bookmark', async () => {
    const ds = `${SRC}/protected`;
    await run(`zfs create ${ds} && head -c 131072 /dev/urandom > /mnt/${ds}/f1 && zfs snapshot ${ds}@s1`);
    expect((await cli('send', `${ds}@s1`, '--to', local)).code).toBe(0);
    // The bookmark names the target (its archive marker's id: archive/plan/bookmarks.ts).
    const id = (JSON.parse(readFileSync(join(local, 'zfs-offsite.json'), 'utf8')) as { id: string }).id;
    expect((await run(`zfs list -H -o name -t bookmark ${ds}`)).trim()).toBe(`${ds}#zfs-offsite-${id}_s1`);
    await run(`zfs destroy ${ds}@s1 && head -c 65536 /dev/urandom > /mnt/${ds}/f2 && zfs snapshot ${ds}@s2`);
    const r = await cli('send', `${ds}@s2`, '--to', local, '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { sendArgs: string[] }).sendArgs).toEqual(['-L', '-c', '-i', `${ds}#zfs-offsite-${id}_s1`, `${ds}@s2`]);
    expect((await cli('restore', '--from', local, ds, '--into', `${DST}/protected`)).code).toBe(0);
    expect(Object.keys(await snapshotGuids(`${DST}/protected`))).toEqual(['@s1', '@s2']);
    expect(await fileSums(`/mnt/${DST}/protected`)).toBe(await fileSums(`/mnt/${ds}`));
  });

  it('5. diverged source: rolled back past the archive, the next send is a new full and says so', async () => {
    const ds = `${SRC}/diverged`;
    await run(`zfs create ${ds}`);
    for (const snap of ['s1', 's2']) {
      await run(`head -c 65536 /dev/urandom > /mnt/${ds}/${snap} && zfs snapshot ${ds}@${snap}`);
      expect((await cli('send', `${ds}@${snap}`, '--to', local)).code).toBe(0);
    }
    await run(`zfs rollback -r ${ds}@s1 && zfs destroy ${ds}@s1 && head -c 65536 /dev/urandom > /mnt/${ds}/s3 && zfs snapshot ${ds}@s3`);
    const r = await cli('send', `${ds}@s3`, '--to', local, '--json');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/sending a new full stream/);
    expect((JSON.parse(r.stdout) as { manifest: { kind: string } }).manifest.kind).toBe('full');
    expect((await cli('restore', '--from', local, ds, '--into', `${DST}/diverged`)).code).toBe(0);
    expect(await fileSums(`/mnt/${DST}/diverged`)).toBe(await fileSums(`/mnt/${ds}`));
  });

  it('6. a zvol', async () => {
    const vol = `${SRC}/vol`;
    await run(
      `zfs create -V 8M -o volblocksize=16K ${vol} && udevadm settle; for i in $(seq 50); do [ -e /dev/zvol/${vol} ] && break; sleep 0.2; done; head -c 4194304 /dev/urandom | dd of=/dev/zvol/${vol} bs=1M conv=fsync status=none && zfs snapshot ${vol}@s1`,
    );
    expect((await cli('send', `${vol}@s1`, '--to', s3)).code).toBe(0);
    expect((await cli('restore', '--from', s3, vol, '--into', `${DST}/vol`)).code).toBe(0);
    const sum = (v: string) => run(`udevadm settle; for i in $(seq 50); do [ -e /dev/zvol/${v} ] && break; sleep 0.2; done; sha256sum < /dev/zvol/${v}`);
    expect(await sum(`${DST}/vol`)).toBe(await sum(vol));
  });

  it('7. recordsize=1M: large blocks and compressed blocks kept (-L -c)', async () => {
    const ds = `${SRC}/large`;
    await run(`zfs create -o recordsize=1M -o compression=lz4 ${ds} && head -c 2097152 /dev/urandom > /mnt/${ds}/big && yes zfs-offsite | head -c 2097152 > /mnt/${ds}/text && zfs snapshot ${ds}@s1`);
    const r = await cli('send', `${ds}@s1`, '--to', local, '--json');
    expect(r.code).toBe(0);
    const m = (JSON.parse(r.stdout) as { manifest: { substreams: { features: string[] }[] } }).manifest;
    expect(m.substreams[0]!.features).toEqual(expect.arrayContaining(['LARGE_BLOCKS', 'COMPRESSED']));
    expect((await cli('restore', '--from', local, ds, '--into', `${DST}/large`)).code).toBe(0);
    // Properties are not sent (no -p), but the 1M blocks are: the destination pool now uses them.
    expect((await run(`zpool get -H -o value feature@large_blocks ${DST}`)).trim()).toBe('active');
    expect(await fileSums(`/mnt/${DST}/large`)).toBe(await fileSums(`/mnt/${ds}`));
  });

  it('8. restore killed midway: the rerun completes and the destination ends correct', async () => {
    const ds = `${SRC}/killed`;
    await run(`zfs create ${ds}`);
    for (const snap of ['s1', 's2', 's3']) {
      await write(`/mnt/${ds}/${snap}.bin`, 1536);
      await run(`zfs snapshot ${ds}@${snap}`);
      expect((await cli('send', `${ds}@${snap}`, '--to', local, '--chunk-size', '1M')).code).toBe(0);
    }
    const child = spawn(process.execPath, [CLI, 'restore', '--from', local, ds, '--into', `${DST}/killed`], { env: { ...process.env, ...env() }, stdio: 'ignore' });
    const closed = new Promise((resolve) => child.on('close', resolve));
    // Kill once the first stream is in (s1 exists on the destination), while later ones are coming.
    for (let i = 0; i < 600; i++) {
      if ((await vm!.ssh(`zfs list -H -t snapshot ${DST}/killed@s1`)).code === 0) break;
      await sleep(200);
    }
    child.kill('SIGKILL');
    await closed;
    const before = Object.keys(await snapshotGuids(`${DST}/killed`).catch(() => ({})));
    expect(before).toContain('@s1');
    const r = await cli('restore', '--from', local, ds, '--into', `${DST}/killed`);
    expect(r.code).toBe(0);
    expect(await snapshotGuids(`${DST}/killed`)).toEqual(await snapshotGuids(ds));
    expect(await fileSums(`/mnt/${DST}/killed`)).toBe(await fileSums(`/mnt/${ds}`));
  });

  it('9. three snapshots in one second (as sanoid takes them): prune --keep-last 1 keeps the newest, which restores', async () => {
    const ds = `${SRC}/samesecond`;
    await run(`zfs create ${ds}`);
    // Sanoid takes hourly, daily and monthly in the same second. Under TCG one `zfs snapshot`
    // takes ≈ 0.5–0.9 s, so the guest clock is set back to the first one's second before each
    // (creation is stamped when the snapshot syncs), then moved on by the time that passed.
    // Retried in case one snapshot took longer than a second.
    const snaps = ['hourly', 'daily', 'monthly'];
    let creations: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      await run(
        `for s in ${snaps.join(' ')}; do zfs destroy ${ds}@$s 2>/dev/null; done; head -c 65536 /dev/urandom > /mnt/${ds}/f$RANDOM; ` +
          `T=$(date +%s); U=$(cut -d' ' -f1 /proc/uptime); for s in ${snaps.join(' ')}; do date -s @$T >/dev/null; zfs snapshot ${ds}@$s || break; done; ` +
          `date -s @$(awk -v t=$T -v u=$U '{printf "%d", t + ($1 - u) + 1}' /proc/uptime) >/dev/null`,
      );
      creations = (await run(`zfs get -H -p -o value creation ${snaps.map((s) => `${ds}@${s}`).join(' ')}`)).trim().split('\n');
      if (new Set(creations).size === 1) break;
    }
    expect(new Set(creations).size, 'three snapshots in one second').toBe(1);
    const archive = mkdtempSync(join(tmpdir(), 'zfs-offsite-e2e-same-'));
    try {
      // Each as a full, archived newest first: neither the chain nor the archive time can tell
      // their order; only the createtxg recorded from zfs can.
      for (const snap of [...snaps].reverse()) expect((await cli('send', `${ds}@${snap}`, '--to', archive, '--full', '--no-bookmark')).code).toBe(0);
      const pruned = await cli('prune', archive, ds, '--keep-last', '1');
      expect(pruned.code).toBe(0);
      const listed = JSON.parse((await cli('list', archive, ds, '--json')).stdout) as { streams: { snapshot: string }[] }[];
      expect(listed[0]!.streams.map((s) => s.snapshot)).toEqual(['monthly']);
      expect((await cli('restore', '--from', archive, ds, '--into', `${DST}/samesecond`)).code).toBe(0);
      const src = await snapshotGuids(ds);
      expect(await snapshotGuids(`${DST}/samesecond`)).toEqual({ '@monthly': src['@monthly'] });
    } finally {
      rmSync(archive, { recursive: true, force: true });
    }
    // The same three as a chain (full + two incrementals): restore's default is the newest.
    expect((await cli('send', `${ds}@hourly`, '--to', local, '--no-bookmark')).code).toBe(0);
    expect((await cli('send', `${ds}@monthly`, '--to', local, '--from', 'hourly', '-I', '--no-bookmark')).code).toBe(0);
    expect((await cli('prune', local, ds, '--keep-last', '1')).code).toBe(0);
    const plan = JSON.parse((await cli('restore', '--from', local, ds, '--into', `${DST}/samesecond2`, '--dry-run', '--json')).stdout) as { target: { name: string; guid: string } };
    expect(plan.target).toEqual({ name: 'monthly', guid: (await snapshotGuids(ds))['@monthly'] });
  });

  it('a quick and a deep verify of everything archived are clean', async () => {
    for (const target of [s3, local]) {
      const quick = await cli('verify', target);
      expect(quick.code).toBe(0);
      const deep = await cli('verify', target, '--deep');
      expect(deep.stdout).toMatch(/clean/);
      expect(deep.code).toBe(0);
    }
  });
});
