import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SftpBackendOptions } from '../../src/storage/sftp.js';
import { parseEnvFile } from './env-file.js';

/**
 * The real SFTP server of the test suite: a private OpenSSH sshd on 127.0.0.1 started by
 * `scripts/sshd.sh start` (which `npm test` runs), imitating a storage box (chrooted,
 * internal-sftp only, login directory /home), described by the env file it writes.
 */
export interface SshdSettings {
  /** sftp://user@127.0.0.1:PORT/archive (relative to the login directory /home). */
  url: string;
  host: string;
  port: number;
  user: string;
  /** Unencrypted client key. */
  key: string;
  keyEncrypted: string;
  keyPassphrase: string;
  password: string;
  /** known_hosts with the server's host key. */
  knownHosts: string;
  /** SHA256:… of the server's host key. */
  hostFingerprint: string;
  /** The box's root directory on this host (the login directory is `${chroot}/home`). */
  chroot: string;
}

export const SSHD_HINT = 'start the test SFTP server with `scripts/sshd.sh start`, or run `npm test`, which does';

export function sshdDir(): string {
  return process.env.SFTP_DIR || '/tmp/zfs-offsite-sshd';
}

/** The running test server, or undefined when `scripts/sshd.sh` has not started one. */
export function sshdSettings(): SshdSettings | undefined {
  const dir = sshdDir();
  let vars: Record<string, string>;
  let pid: string;
  try {
    vars = parseEnvFile(readFileSync(join(dir, 'env'), 'utf8'));
    pid = readFileSync(join(dir, 'sshd.pid'), 'utf8').trim();
  } catch {
    return undefined;
  }
  if (!/^\d+$/.test(pid) || !existsSync(`/proc/${pid}`)) return undefined;
  const need = (name: string) => vars[name] ?? '';
  const settings: SshdSettings = {
    url: need('SFTP_TEST_URL'),
    host: need('SFTP_TEST_HOST'),
    port: Number(need('SFTP_TEST_PORT')),
    user: need('SFTP_TEST_USER'),
    key: need('SFTP_TEST_KEY'),
    keyEncrypted: need('SFTP_TEST_KEY_ENCRYPTED'),
    keyPassphrase: need('SFTP_TEST_KEY_PASSPHRASE'),
    password: need('SFTP_TEST_PASSWORD'),
    knownHosts: need('SFTP_TEST_KNOWN_HOSTS'),
    hostFingerprint: need('SFTP_TEST_HOST_FINGERPRINT'),
    chroot: need('SFTP_TEST_CHROOT'),
  };
  return settings.url && settings.port && settings.key && settings.knownHosts ? settings : undefined;
}

/** Options for an SftpBackend on the test server at `path` (same convention as the URL), logged in by key. */
export function sftpOptions(s: SshdSettings, path: string, extra: Partial<SftpBackendOptions> = {}): SftpBackendOptions {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    path,
    auth: { key: { file: s.key, data: readFileSync(s.key) } },
    hostKeys: { files: [s.knownHosts], acceptNew: false },
    ...extra,
  };
}

/** A fresh directory name under the login directory, and a cleanup that removes it on this host. */
export function uniqueSftpDir(s: SshdSettings, label = 'test'): { rel: string; cleanup(): Promise<void> } {
  const rel = `${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  return { rel, cleanup: () => rm(join(s.chroot, 'home', rel), { recursive: true, force: true }) };
}
