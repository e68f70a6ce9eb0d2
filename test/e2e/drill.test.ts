/**
 * `zfs-offsite drill` on real OpenZFS (the test VM; the CLI runs here and drives zfs over ssh):
 * a healthy archive on Ceph RGW passes for a raw encrypted and a plain dataset and leaves no
 * scratch dataset; one damaged chunk fails with exit 3 naming the stream and still cleans up; a
 * drill killed (SIGKILL) during a receive leaves its scratch dataset, which the next drill
 * destroys. File-backed pools of their own: zodrillsrc (the source), zodrill (the scratch pool).
 * Data is tiny: under TCG bytes cross ssh at ~5 MB/s.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  console.warn(`real-ZFS drill tests skipped: ${why}`);
}

const SRC = 'zodrillsrc';
const POOL = 'zodrill';
const KEY = '/var/tmp/zodrill.key';

interface Report {
  leftoversDestroyed: string[];
  passed: boolean;
  datasets: { dataset: string; snapshot?: string; raw: boolean; streams: string[]; checkedSnapshots: number; result: string; failure?: { reason: string; stream?: string; message: string } }[];
}

describe.skipIf(!vm || !rgw)('drill on real OpenZFS', () => {
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
    const started = Date.now();
    const r = await runCli(args, { env: env() });
    console.log(`zfs-offsite ${args.join(' ')} → exit ${r.code} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (r.code !== 0) console.log(`${r.stdout}${r.stderr}`);
    return r;
  };
  const run = (cmd: string) => vm!.run(cmd);
  /** Every dataset of the scratch pool (the pool itself first). */
  const scratchPool = async () => (await run(`zfs list -H -o name -r ${POOL}`)).split('\n').filter(Boolean);
  const write = (path: string, kib: number) => run(`head -c ${kib * 1024} /dev/urandom > ${q(path)}`);

  beforeAll(async () => {
    bucket = await createTestBucket();
    s3 = `s3://${bucket.name}/drill`;
    local = mkdtempSync(join(tmpdir(), 'zfs-offsite-e2e-drill-'));
    await run(`for p in ${SRC} ${POOL}; do zpool destroy -f $p 2>/dev/null; rm -f /var/tmp/$p.img; truncate -s 256M /var/tmp/$p.img && zpool create -f -O mountpoint=/mnt/$p $p /var/tmp/$p.img; done`);
    await run(`umask 077 && head -c 32 /dev/urandom > ${KEY}`);
    await run(`zfs create -o encryption=aes-256-gcm -o keyformat=raw -o keylocation=file://${KEY} ${SRC}/secret && zfs create ${SRC}/plain`);
    for (const ds of [`${SRC}/secret`, `${SRC}/plain`]) {
      for (const snap of ['s1', 's2']) {
        await write(`/mnt/${ds}/${snap}.bin`, 96);
        await run(`zfs snapshot ${ds}@${snap}`);
      }
    }
  }, 600_000);

  afterAll(async () => {
    await vm?.ssh(`zpool destroy -f ${SRC}; zpool destroy -f ${POOL}; rm -f /var/tmp/${SRC}.img /var/tmp/${POOL}.img ${KEY}`);
    await bucket?.cleanup();
    if (local) rmSync(local, { recursive: true, force: true });
  });

  it('a healthy archive (raw encrypted + plain, on RGW): exit 0, GUIDs checked, no scratch dataset left', async () => {
    for (const ds of [`${SRC}/secret`, `${SRC}/plain`]) for (const snap of ['s1', 's2']) expect((await cli('send', `${ds}@${snap}`, '--to', s3)).code).toBe(0);
    const r = await cli('drill', '--from', s3, '--pool', POOL, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.passed).toBe(true);
    expect(report.datasets.map((d) => [d.dataset, d.snapshot, d.raw, d.streams.length, d.checkedSnapshots, d.result])).toEqual([
      [`${SRC}/plain`, '@s2', false, 2, 2, 'passed'],
      [`${SRC}/secret`, '@s2', true, 2, 2, 'passed'],
    ]);
    expect(await scratchPool()).toEqual([POOL]);
    // The raw dataset was never given its key: the source's is still the only one loaded.
    expect((await run(`zfs get -H -o value keystatus ${SRC}/secret`)).trim()).toBe('available');
  });

  it('one damaged chunk: exit 3 naming the stream, and the scratch dataset is still destroyed', async () => {
    const ds = `${SRC}/plain`;
    for (const snap of ['s1', 's2']) expect((await cli('send', `${ds}@${snap}`, '--to', local)).code).toBe(0);
    const damaged = join(local, '..', `${local.split('/').at(-1)}-damaged`);
    cpSync(local, damaged, { recursive: true });
    try {
      const dsDir = join(damaged, ds);
      const incr = readdirSync(dsDir).find((d) => d.includes('-incr'))!;
      const chunk = join(dsDir, incr, '000000.zst');
      const bytes = readFileSync(chunk);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
      writeFileSync(chunk, bytes);
      const r = await cli('drill', '--from', damaged, ds, '--pool', POOL);
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(new RegExp(`${ds}: damaged in stream ${incr}: .*000000\\.zst: SHA-256 is`));
      expect(r.stdout).toMatch(/drill FAILED: 1 of 1 dataset/);
      expect(await scratchPool()).toEqual([POOL]);
    } finally {
      rmSync(damaged, { recursive: true, force: true });
    }
  });

  it('a drill killed during a receive: its scratch dataset is left, the next drill destroys it and passes', async () => {
    const ds = `${SRC}/big`;
    await run(`zfs create ${ds}`);
    await write(`/mnt/${ds}/a.bin`, 128);
    await run(`zfs snapshot ${ds}@s1`);
    await write(`/mnt/${ds}/b.bin`, 3072);
    await run(`zfs snapshot ${ds}@s2`);
    for (const snap of ['s1', 's2']) expect((await cli('send', `${ds}@${snap}`, '--to', local, '--chunk-size', '1M')).code).toBe(0);

    const child = spawn(process.execPath, [CLI, 'drill', '--from', local, ds, '--pool', POOL], { env: { ...process.env, ...env() }, stdio: 'ignore' });
    const closed = new Promise((resolve) => child.on('close', resolve));
    // Once the first stream is in (@s1 under the scratch dataset), the second is being received.
    let scratch: string | undefined;
    for (let i = 0; i < 900 && !scratch; i++) {
      const found = await vm!.ssh(`zfs list -H -o name -t snapshot -r ${POOL} | grep '/1@s1$'`);
      if (found.code === 0) scratch = found.stdout.trim().replace(/\/1@s1$/, '');
      else await sleep(100);
    }
    child.kill('SIGKILL');
    await closed;
    expect(scratch).toMatch(new RegExp(`^${POOL}/zfs-offsite-drill-`));
    // Killed: nothing cleaned up; the mark says whose it was.
    await sleep(2000);
    expect(await scratchPool()).toContain(scratch);
    expect((await run(`zfs get -H -o value,source zfs-offsite:drill ${scratch}`)).trim()).toMatch(/^\S+:\d+:\S+\tlocal$/);

    const r = await cli('drill', '--from', local, ds, '--pool', POOL, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.leftoversDestroyed).toEqual([scratch]);
    expect(report.datasets.map((d) => [d.snapshot, d.result])).toEqual([['@s2', 'passed']]);
    expect(await scratchPool()).toEqual([POOL]);
  });
});
