import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { shellQuote, splitCommandWords } from '../../src/zfs/command.js';
import { parseEnvFile } from './env-file.js';

/**
 * The real-OpenZFS test VM (Debian 12 + OpenZFS 2.3 under qemu) started by
 * `scripts/zfs-vm/vm.sh start`, described by the env file it writes ($ZFS_VM_RUN/env,
 * default /tmp/zfs-offsite-vm/env). Every command runs as root in the guest over one shared
 * ssh connection (ControlMaster: ~0.25 s per command instead of ~2 s for a new connection).
 *
 * Under TCG emulation bytes move at ~5 MB/s through ssh: keep test data to a few MB.
 */

export const ZFS_VM_HINT =
  'start the OpenZFS test VM with `scripts/zfs-vm/vm.sh start` (the first start builds its image, ≈ 15 min as root; later starts take ≈ 10 s) and stop it with `scripts/zfs-vm/vm.sh stop`';

export interface SshResult<T extends string | Buffer = string> {
  code: number | null;
  stdout: T;
  stderr: string;
}

export interface ZfsVm {
  /** The run directory of vm.sh (overlay, disks, ssh config, env). */
  runDir: string;
  /** Environment for zfs-offsite (CLI or `Zfs.fromCommand`) to use the VM's zfs. */
  env: { ZFS_OFFSITE_ZFS_CMD: string; ZFS_VM_SSH: string };
  /** The ssh command prefix as argv, e.g. ['ssh', '-F', '/tmp/zfs-offsite-vm/ssh_config', 'zfsvm']. */
  sshArgv: string[];
  /** Empty block devices of the guest for test pools, e.g. /dev/disk/by-id/virtio-zfsdisk1. */
  disks: string[];
  /** Runs a shell command line in the guest; never throws for a non-zero exit. */
  ssh(command: string, options?: { input?: Buffer | string }): Promise<SshResult>;
  /** Like ssh(), with stdout as bytes (a `zfs send` stream). */
  sshBuffer(command: string, options?: { input?: Buffer | string }): Promise<SshResult<Buffer>>;
  /** Runs a command and returns its stdout; throws (with stderr) on a non-zero exit. */
  run(command: string, options?: { input?: Buffer | string }): Promise<string>;
  /**
   * The bytes a guest command writes to stdout, e.g. fetch(`zfs send -w tank/ds@s | cat`);
   * throws on a non-zero exit. (OpenZFS 2.1 refuses `zfs send` into /dev/null; `| cat` keeps
   * command lines portable.)
   */
  fetch(command: string, options?: { input?: Buffer | string }): Promise<Buffer>;
}

/** POSIX quoting for words of guest command lines. */
export const q = shellQuote;

export function zfsVmRunDir(): string {
  return process.env.ZFS_VM_RUN || '/tmp/zfs-offsite-vm';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why there is no VM to test with, or undefined when it looks up (env file + live qemu). */
export function zfsVmUnavailable(runDir: string = zfsVmRunDir()): string | undefined {
  let pid: number;
  try {
    readFileSync(join(runDir, 'env'), 'utf8');
  } catch {
    return `the OpenZFS test VM is not running (no ${join(runDir, 'env')})`;
  }
  try {
    pid = Number(readFileSync(join(runDir, 'qemu.pid'), 'utf8').trim());
  } catch {
    return `the OpenZFS test VM is not running (no ${join(runDir, 'qemu.pid')})`;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
    return `the OpenZFS test VM has stopped (qemu pid ${pid} is gone; run \`scripts/zfs-vm/vm.sh stop\` to clean up)`;
  }
  return undefined;
}

/** The running test VM, or undefined when there is none (see zfsVmUnavailable() for why). */
export function zfsVm(runDir: string = zfsVmRunDir()): ZfsVm | undefined {
  if (zfsVmUnavailable(runDir)) return undefined;
  const vars = parseEnvFile(readFileSync(join(runDir, 'env'), 'utf8'));
  const { ZFS_VM_SSH, ZFS_OFFSITE_ZFS_CMD } = vars;
  if (!ZFS_VM_SSH || !ZFS_OFFSITE_ZFS_CMD) return undefined;
  const sshArgv = splitCommandWords(ZFS_VM_SSH);

  function exec(command: string, input: Buffer | string | undefined): Promise<SshResult<Buffer>> {
    return new Promise((resolve, reject) => {
      const child = spawn(sshArgv[0]!, [...sshArgv.slice(1), command], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
  }
  async function checked(command: string, input: Buffer | string | undefined): Promise<Buffer> {
    const r = await exec(command, input);
    if (r.code !== 0) throw new Error(`in the VM: \`${command}\` failed (exit ${r.code}): ${r.stderr.trim() || 'no error output'}`);
    return r.stdout;
  }

  return {
    runDir,
    env: { ZFS_OFFSITE_ZFS_CMD, ZFS_VM_SSH },
    sshArgv,
    disks: (vars.ZFS_VM_DISKS ?? '').split(/\s+/).filter(Boolean),
    async ssh(command, options = {}) {
      const r = await exec(command, options.input);
      return { ...r, stdout: r.stdout.toString() };
    },
    sshBuffer: (command, options = {}) => exec(command, options.input),
    run: async (command, options = {}) => (await checked(command, options.input)).toString(),
    fetch: (command, options = {}) => checked(command, options.input),
  };
}
