import { readFile, stat } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { hasPassword, redactUrl } from '../util/redact.js';

/**
 * SFTP targets: the URL convention and where credentials and host keys come from.
 *
 * URL: `sftp://user@host[:port]/path`
 *   - `sftp://u123@u123.your-storagebox.de:23/zfs/host1` → `zfs/host1` RELATIVE to the login
 *     directory (what a storage box shows after login; most accounts cannot see anything else);
 *   - `sftp://backup@nas.lan//srv/backup/zfs` → the ABSOLUTE path `/srv/backup/zfs` (two slashes);
 *   - `sftp://u123@host:23` or `sftp://u123@host:23/` → the login directory itself.
 * The port defaults to 22, the user to the local user name (as `ssh` does). A password in the URL
 * is refused: it would show in the process list and shell history.
 *
 * Authentication, tried in this order (each only when configured):
 *   1. a private key: `--sftp-key FILE` or env ZFS_OFFSITE_SFTP_KEY; its passphrase, if any, from
 *      env ZFS_OFFSITE_SFTP_PASSPHRASE;
 *   2. an ssh-agent: env SSH_AUTH_SOCK;
 *   3. a password: env ZFS_OFFSITE_SFTP_PASSWORD (never from the command line).
 *
 * Host keys: checked against `--sftp-known-hosts FILE` (env ZFS_OFFSITE_SFTP_KNOWN_HOSTS), else
 * `~/.ssh/known_hosts` plus `/etc/ssh/ssh_known_hosts`. `--sftp-accept-new` records a key seen for
 * the first time in that file (never replaces a changed one).
 */
export interface SftpLocation {
  host: string;
  port: number;
  user: string;
  /** '' = the login directory; 'a/b' = relative to it; '/a/b' = absolute ('/' = the root). */
  path: string;
}

export const SFTP_ENV = {
  key: 'ZFS_OFFSITE_SFTP_KEY',
  passphrase: 'ZFS_OFFSITE_SFTP_PASSPHRASE',
  password: 'ZFS_OFFSITE_SFTP_PASSWORD',
  knownHosts: 'ZFS_OFFSITE_SFTP_KNOWN_HOSTS',
  agent: 'SSH_AUTH_SOCK',
} as const;

const URL_RE = /^sftp:\/\/(?:([^@/?#]*)@)?(\[[0-9a-f:.]+\]|[^/:@?#[\]]+)(?::([^/]*))?(\/.*)?$/is;

/** Splits an sftp:// URL; a UsageError (never repeating a password) when it is malformed. */
export function parseSftpUrl(url: string): SftpLocation {
  const shown = redactUrl(url);
  const passwordRefused = () =>
    new UsageError(`${shown}: a password does not belong in the URL (it would show in the process list and shell history); set ${SFTP_ENV.password} instead, or use --sftp-key or an ssh-agent`);
  // A password may hold '/', '@' or ':', and then the pattern below reads part of it as the
  // host, the port or the path: whenever the URL may carry one (src/util/redact.ts) and it does
  // not parse as user@host with a numeric port, the password is refused, never the pieces shown.
  const suspect = hasPassword(url);
  const m = URL_RE.exec(url);
  if (!m) {
    if (suspect) throw passwordRefused();
    throw new UsageError(`${shown}: not an SFTP URL; expected sftp://user@host[:port]/path (relative to the login directory) or sftp://user@host[:port]//absolute/path`);
  }
  const [, userinfo, rawHost = '', rawPort, rawPath = ''] = m;
  if (userinfo?.includes(':') || (suspect && (userinfo === undefined || (rawPort !== undefined && !/^\d+$/.test(rawPort))))) throw passwordRefused();
  let user: string;
  try {
    user = userinfo === undefined || userinfo === '' ? userInfo().username : decodeURIComponent(userinfo);
  } catch {
    throw new UsageError(`${shown}: the user name has a broken %-escape`);
  }
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  let port = 22;
  if (rawPort !== undefined) {
    port = Number(rawPort);
    if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) throw new UsageError(`${shown}: invalid port ${JSON.stringify(rawPort)}`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\0-\x1f\x7f?#\\]/.test(rawPath)) {
    throw new UsageError(`${shown}: the path may not contain control characters, '?', '#' or '\\'`);
  }
  const absolute = rawPath.startsWith('//');
  const inner = rawPath.replace(/^\/+/, '').replace(/\/+$/, '');
  if (inner !== '' && inner.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new UsageError(`${shown}: the path has an empty, '.' or '..' segment`);
  }
  return { host, port, user, path: absolute ? `/${inner}` : inner };
}

/** The URL for messages: no secrets, the path written back in the same convention. */
export function sftpLocationUrl(loc: SftpLocation): string {
  const host = loc.host.includes(':') ? `[${loc.host}]` : loc.host;
  const port = loc.port === 22 ? '' : `:${loc.port}`;
  // 'a/b' → '/a/b'; '/srv/x' → '//srv/x' (absolute keeps its double slash).
  const path = loc.path === '' ? '' : `/${loc.path}`;
  // A path holding ':' and '@' reads like a password to the one redaction: masked here already, so
  // Backend.location is the same text everywhere it is shown.
  return redactUrl(`sftp://${encodeURIComponent(loc.user)}@${host}${port}${path}`);
}

/** How to log in: only what is configured is tried. Secrets stay in memory, never in messages. */
export interface SftpAuth {
  /** Private key file and its contents. */
  key?: { file: string; data: Buffer; passphrase?: string };
  /** ssh-agent socket path. */
  agent?: string;
  password?: string;
}

export interface SftpHostKeyPolicy {
  /** known_hosts files to trust, in order; the first is where `acceptNew` records a key. */
  files: string[];
  acceptNew: boolean;
}

export interface SftpCliSettings {
  /** --sftp-key */
  key?: string;
  /** --sftp-known-hosts */
  knownHosts?: string;
  /** --sftp-accept-new */
  acceptNew?: boolean;
}

/**
 * Resolves credentials and host-key files from options and the environment, now (at open time),
 * reading the key file so a bad path is reported before anything is sent.
 */
export async function resolveSftpSettings(location: string, cli: SftpCliSettings, env: NodeJS.ProcessEnv = process.env): Promise<{ auth: SftpAuth; hostKeys: SftpHostKeyPolicy }> {
  const auth: SftpAuth = {};
  const keyFile = cli.key ?? (env[SFTP_ENV.key] || undefined);
  if (keyFile !== undefined) {
    let data: Buffer;
    try {
      data = await readFile(keyFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new UsageError(`cannot read the SSH key ${keyFile} (${code}) given for ${location}`);
    }
    const passphrase = env[SFTP_ENV.passphrase];
    auth.key = { file: keyFile, data, ...(passphrase ? { passphrase } : {}) };
  }
  // A stale SSH_AUTH_SOCK (the agent is gone) is skipped, as ssh does, instead of failing the log-in.
  const agent = env[SFTP_ENV.agent];
  if (
    agent &&
    (await stat(agent).then(
      (st) => st.isSocket(),
      () => false,
    ))
  )
    auth.agent = agent;
  const password = env[SFTP_ENV.password];
  if (password) auth.password = password;
  if (!auth.key && !auth.agent && auth.password === undefined) {
    throw new UsageError(`no SSH credentials for ${location}: give --sftp-key FILE (or ${SFTP_ENV.key}), start an ssh-agent (${SFTP_ENV.agent}), or set ${SFTP_ENV.password}`);
  }
  const explicit = cli.knownHosts ?? (env[SFTP_ENV.knownHosts] || undefined);
  const files = explicit !== undefined ? [explicit] : [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
  return { auth, hostKeys: { files, acceptNew: cli.acceptNew === true } };
}
