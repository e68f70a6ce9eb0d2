import { StorageError } from './backend.js';
import type { SftpSession } from './sftp-connect.js';

/**
 * How SFTP failures map onto the storage contract. SFTP v3 (what OpenSSH speaks) reports a
 * status code per request; OpenSSH's server maps errno to it as: ENOENT/ENOTDIR/ELOOP →
 * NO_SUCH_FILE, EACCES/EPERM → PERMISSION_DENIED, ENAMETOOLONG/EINVAL → BAD_MESSAGE, and
 * everything else (EEXIST, ENOSPC, EDQUOT, EIO, …) → FAILURE with the text "Failure". A full disk
 * is therefore only recognisable from the text some servers send, or by asking statvfs
 * afterwards (see SftpBackend).
 */
export const SFTP_STATUS = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** The SFTP status code of a failed request, if it has one. */
export function sftpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The connection died (or was closed) while a request was outstanding. */
export class SftpConnectionLost extends Error {
  override name = 'SftpConnectionLost';
}

/**
 * What a failed ssh2 connect says, read from its message (ssh2 gives these failures no code):
 * the private key cannot be used (unparsable, or encrypted and the passphrase is missing or
 * wrong), or the server rejected authentication. Undefined for anything else.
 */
export function ssh2ConnectFailure(err: unknown): { kind: 'key-unusable'; why: string; passphrase: boolean } | { kind: 'auth-rejected' } | undefined {
  const message = err instanceof Error ? err.message : String(err);
  if (/Cannot parse privateKey|does not contain a \(valid\) private key/.test(message)) {
    const why = message.replace(/^Cannot parse privateKey: /, '');
    return { kind: 'key-unusable', why, passphrase: /passphrase/i.test(why) };
  }
  if (/authentication/i.test(message)) return { kind: 'auth-rejected' };
  return undefined;
}

const NO_SPACE_TEXT = /no space|disk full|quota|ENOSPC|EDQUOT|storage (limit|full)|insufficient (storage|space)/i;

/**
 * A StorageError for a failed request: `${where}: cannot ${action} ${what}: ${reason}`. Only the
 * status code and the server's short status text go into the reason: never a request detail.
 */
export function sftpStorageError(err: unknown, where: string, action: string, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const status = sftpStatus(err);
  const text = err instanceof Error ? err.message : String(err);
  const prefix = `${where}: cannot ${action} ${what}`;
  const make = (reason: string, permanent: boolean, kind: StorageError['kind'] = 'other') => new StorageError(`${prefix}: ${reason}`, permanent, kind, { cause: err });
  switch (status) {
    case SFTP_STATUS.NO_SUCH_FILE:
      return make('no such file or directory (SSH_FX_NO_SUCH_FILE)', true);
    case SFTP_STATUS.PERMISSION_DENIED:
      return make('permission denied (SSH_FX_PERMISSION_DENIED)', true, 'permission');
    case SFTP_STATUS.FAILURE:
      if (NO_SPACE_TEXT.test(text)) return make(`no space left (server says: ${text})`, true, 'no-space');
      // OpenSSH says just "Failure" for every other errno: an I/O error may well pass.
      return make(`the server reported a failure (SSH_FX_FAILURE${text && text !== 'Failure' ? `: ${text}` : ''})`, false);
    case SFTP_STATUS.BAD_MESSAGE:
      return make(`the server rejected the request (SSH_FX_BAD_MESSAGE: invalid name or argument)`, true);
    case SFTP_STATUS.OP_UNSUPPORTED:
      return make('the server does not support this operation (SSH_FX_OP_UNSUPPORTED)', true);
    case SFTP_STATUS.NO_CONNECTION:
    case SFTP_STATUS.CONNECTION_LOST:
      return make('connection lost', false);
  }
  if (err instanceof SftpConnectionLost) return make(err.message, false);
  // No status: the connection failed under the request (reset, timeout, "No response from server").
  const code = (err as { code?: unknown } | undefined)?.code;
  return make(`${text}${typeof code === 'string' && !text.includes(code) ? ` (${code})` : ''}`, false);
}

/** Network failures of the SSH connection itself: worth retrying. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN']);
const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EAI_AGAIN: 'temporary DNS failure',
};

/**
 * A connection attempt that failed for a reason other than host key or authentication
 * (those are described where they are detected): network trouble is transient, an unknown host
 * name is not.
 */
export function sftpConnectError(err: unknown, where: string, server: string): StorageError {
  const e = (err ?? {}) as { code?: unknown; message?: string };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const text = (e.message ?? String(err)).replace(/^getConnection: /, '');
  const prefix = `${where}: cannot connect to ${server}`;
  if (code === 'ENOTFOUND') return new StorageError(`${prefix}: unknown host name (ENOTFOUND)`, true, 'other', { cause: err });
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new StorageError(`${prefix}: ${NETWORK_WORDS[code] ?? 'network error'} (${code})`, false, 'other', { cause: err });
  }
  if (/timed out/i.test(text)) return new StorageError(`${prefix}: no SSH handshake in time (${text})`, false, 'other', { cause: err });
  return new StorageError(`${prefix}: ${text}`, false, 'other', { cause: err });
}

/** A FAILURE while writing may be a full disk: ask the server (statvfs@openssh.com) if it can tell. */
export async function noSpaceError(s: SftpSession, err: unknown, dir: string, key: string, location: string): Promise<unknown> {
  if (sftpStatus(err) !== SFTP_STATUS.FAILURE || !s.hasExtension('statvfs@openssh.com')) return err;
  const vfs = await s.call<{ f_bavail: number; f_frsize: number }>((sftp, done) => sftp.ext_openssh_statvfs(dir, done)).catch(() => undefined);
  if (vfs && vfs.f_bavail * vfs.f_frsize < 1024 * 1024) {
    const free = vfs.f_bavail * vfs.f_frsize;
    return new StorageError(`${location}: cannot write ${key}: no space left on the server (SSH_FX_FAILURE; statvfs shows ${free} bytes free)`, true, 'no-space', { cause: err });
  }
  return err;
}
