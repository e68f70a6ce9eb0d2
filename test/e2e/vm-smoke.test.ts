import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { q, ZFS_VM_HINT, zfsVm, zfsVmUnavailable } from '../support/zfs-vm.js';

// Proves the test VM runs real OpenZFS 2.3 and that raw streams of encrypted datasets reach
// the host intact. Skipped (with the reason) when the VM is not running; set
// ZFS_VM_REQUIRED=1 to make that an error instead.
const vm = zfsVm();
if (!vm) {
  const why = `${zfsVmUnavailable() ?? 'the OpenZFS test VM is not usable'}; ${ZFS_VM_HINT}`;
  if (process.env.ZFS_VM_REQUIRED === '1') throw new Error(`ZFS_VM_REQUIRED=1 but ${why}`);
  console.warn(`VM smoke tests skipped: ${why}`);
}

const DRR_BEGIN = 0;
/** DMU_BACKUP_MAGIC (0x2F5bacbac) as the little-endian bytes at offset 8 of a stream. */
const BEGIN_MAGIC = Buffer.from('accbbaf502000000', 'hex');
const DMU_BACKUP_FEATURE_RAW = 1 << 24;

describe.skipIf(!vm)('real OpenZFS in the test VM', () => {
  const pool = `smoke${randomBytes(3).toString('hex')}`;
  const vdev = `/var/tmp/${pool}.img`;
  const keyFile = `/var/tmp/${pool}.key`;
  const dataset = `${pool}/secret`;
  const snapshot = `${dataset}@s1`;

  beforeAll(async () => {
    // A file vdev (64 MiB is the minimum), so the test disks stay free for other suites.
    await vm!.run(`truncate -s 128M ${q(vdev)} && zpool create -f ${q(pool)} ${q(vdev)}`);
  });

  afterAll(async () => {
    await vm?.ssh(`zpool destroy -f ${q(pool)}; rm -f ${q(vdev)} ${q(keyFile)}`);
  });

  it('runs OpenZFS 2.3 (userland and kernel module)', async () => {
    const out = await vm!.run('zfs version');
    expect(out).toMatch(/^zfs-2\.3\.\d+/m);
    expect(out).toMatch(/^zfs-kmod-2\.3\.\d+/m);
  });

  it('sends a raw stream of an encrypted snapshot to the host', async () => {
    // keyformat=raw takes exactly 32 key bytes, written inside the guest.
    await vm!.run(`umask 077 && head -c 32 /dev/urandom > ${q(keyFile)}`);
    await vm!.run(`zfs create -o encryption=aes-256-gcm -o keyformat=raw -o keylocation=file://${keyFile} ${q(dataset)}`);
    expect((await vm!.run(`zfs get -H -o value encryption,keystatus ${q(dataset)}`)).split('\n')).toEqual(['aes-256-gcm', 'available', '']);
    await vm!.run(`head -c 262144 /dev/urandom > /${pool}/secret/data.bin && sync && zfs snapshot ${q(snapshot)}`);
    const guid = BigInt((await vm!.run(`zfs get -H -p -o value guid ${q(snapshot)}`)).trim());

    const stream = await vm!.fetch(`zfs send -w ${q(snapshot)} | cat`);

    // The first record is DRR_BEGIN: type, magic, raw-send feature flag, toguid, no fromguid, name.
    expect(stream.length).toBeGreaterThan(262144); // the file's (encrypted) blocks are in it
    expect(stream.readUInt32LE(0)).toBe(DRR_BEGIN);
    expect(stream.subarray(8, 16)).toEqual(BEGIN_MAGIC);
    const featureFlags = Number((stream.readBigUInt64LE(16) >> 2n) & 0x3fffffffn);
    expect(featureFlags & DMU_BACKUP_FEATURE_RAW).toBe(DMU_BACKUP_FEATURE_RAW);
    expect(stream.readBigUInt64LE(40)).toBe(guid);
    expect(stream.readBigUInt64LE(48)).toBe(0n);
    const toname = stream.subarray(56, 56 + 256);
    expect(toname.subarray(0, toname.indexOf(0)).toString()).toBe(snapshot);
  });
});
