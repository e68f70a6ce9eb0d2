import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../util/errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import { RetryingBackend, type RetryOptions } from './retrying.js';
import { ThrottledBackend } from './throttled.js';
import { parseS3Url } from './s3-url.js';
import { redactUrl } from './s3-errors.js';
import { parseSftpUrl, resolveSftpSettings, SFTP_ENV, type SftpLocation, sftpLocationUrl } from './sftp-config.js';

export interface OpenOptions {
  /** S3-compatible server URL; default AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS. */
  s3Endpoint?: string;
  /** Path-style addressing; default: on when an endpoint is configured, off for AWS. */
  s3PathStyle?: boolean;
  /** Multipart part size in bytes (default 16 MiB). */
  s3PartSize?: number;
  /** Parts uploaded in parallel per object (default 4). */
  s3Queue?: number;
  /** Region; default AWS_REGION / the profile's region, else us-east-1. */
  s3Region?: string;
  storageClass?: string;
  /** A request whose connection is silent this long fails and is retried (default 120 s). */
  s3TimeoutMs?: number;
  /** Explicit S3 credentials (from a config file's env references), instead of the SDK's chain. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A named profile of the AWS shared config/credentials files. */
  s3Profile?: string;
  /** Upload bandwidth limit, bytes per second. */
  bwlimit?: number;
  /** SSH private key file for sftp:// targets; default env ZFS_OFFSITE_SFTP_KEY (see sftp-config.ts). */
  sftpKey?: string;
  /** known_hosts file; default env ZFS_OFFSITE_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts. */
  sftpKnownHosts?: string;
  /** Record an SFTP server's host key seen for the first time (never a changed one). */
  sftpAcceptNew?: boolean;
  /** Names of env variables holding the SFTP password / key passphrase (a config file's references). */
  sftpPasswordEnv?: string;
  sftpPassphraseEnv?: string;
  retry?: RetryOptions;
}

export type Target =
  | { kind: 'local'; path: string }
  | { kind: 's3'; bucket: string; prefix: string }
  | ({ kind: 'sftp' } & SftpLocation);

const EXAMPLES = 'use s3://bucket/prefix, sftp://user@host[:port]/path, file:///absolute/path or a directory path';

/**
 * Understands a target string: `s3://bucket/prefix`, `sftp://user@host[:port]/path` (relative to
 * the login directory; `//abs/path` for an absolute one), `file:///abs/path`, or a plain absolute
 * or relative directory path (made absolute). Anything else is a UsageError naming the target.
 */
export function parseTarget(target: string): Target {
  const shown = redactUrl(target);
  if (target.trim() === '') throw new UsageError(`no target given: ${EXAMPLES}`);
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(target)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'local', path: resolve(target) };
  if (!target.slice(scheme.length + 1).startsWith('//')) {
    throw new UsageError(
      `${shown}: malformed target (a URL needs "${scheme}://"); ${EXAMPLES} (write ./${target} for a directory whose name contains ':')`,
    );
  }
  switch (scheme) {
    case 's3':
      return { kind: 's3', ...parseS3Url(target) };
    case 'file': {
      let path: string;
      try {
        path = fileURLToPath(new URL(target));
      } catch {
        throw new UsageError(`${shown}: a file URL needs an absolute path, as in file:///srv/backup`);
      }
      return { kind: 'local', path };
    }
    case 'sftp':
      return { kind: 'sftp', ...parseSftpUrl(target) };
    default:
      throw new UsageError(`${shown}: unknown target scheme "${scheme}://"; ${EXAMPLES}`);
  }
}

/**
 * Opens the backend for a target, wrapped in the one retrying layer.
 *
 * Settings that come from the environment (endpoint, region, credentials) are captured here,
 * at open time, so later changes to process.env do not change where an open backend writes.
 */
export async function openBackend(target: string, options: OpenOptions = {}): Promise<Backend> {
  const parsed = parseTarget(target);
  let backend: Backend;
  if (parsed.kind === 'local') {
    backend = new LocalBackend(parsed.path);
  } else if (parsed.kind === 'sftp') {
    const { kind: _kind, ...location } = parsed;
    const env = { ...process.env };
    if (options.sftpPasswordEnv) env[SFTP_ENV.password] = process.env[options.sftpPasswordEnv];
    if (options.sftpPassphraseEnv) env[SFTP_ENV.passphrase] = process.env[options.sftpPassphraseEnv];
    const settings = await resolveSftpSettings(
      sftpLocationUrl(location),
      {
        ...(options.sftpKey !== undefined ? { key: options.sftpKey } : {}),
        ...(options.sftpKnownHosts !== undefined ? { knownHosts: options.sftpKnownHosts } : {}),
        ...(options.sftpAcceptNew !== undefined ? { acceptNew: options.sftpAcceptNew } : {}),
      },
      env,
    );
    // Loaded on demand: each client library costs ≈ 20 MiB of memory and start-up time.
    const { SftpBackend } = await import('./sftp.js');
    backend = new SftpBackend({ ...location, ...settings });
  } else {
    const endpoint = options.s3Endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined);
    if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) {
      throw new UsageError(`S3 endpoint ${redactUrl(endpoint)} is not an http:// or https:// URL`);
    }
    const { S3Backend } = await import('./s3.js');
    const s3 = new S3Backend({
      bucket: parsed.bucket,
      prefix: parsed.prefix,
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(options.s3Region !== undefined ? { region: options.s3Region } : {}),
      // Virtual-host addressing (bucket.host) needs wildcard DNS that self-hosted S3-compatible
      // servers rarely have; AWS itself wants it, and an explicit option always wins.
      forcePathStyle: options.s3PathStyle ?? endpoint !== undefined,
      ...(options.s3PartSize !== undefined ? { partSize: options.s3PartSize } : {}),
      ...(options.s3Queue !== undefined ? { queueSize: options.s3Queue } : {}),
      ...(options.storageClass !== undefined ? { storageClass: options.storageClass } : {}),
      ...(options.s3TimeoutMs !== undefined ? { idleTimeoutMs: options.s3TimeoutMs } : {}),
      ...(options.s3Credentials !== undefined ? { credentials: options.s3Credentials } : {}),
      ...(options.s3Profile !== undefined ? { profile: options.s3Profile } : {}),
    });
    await s3.captureEnvironment();
    backend = s3;
  }
  if (options.bwlimit !== undefined) backend = new ThrottledBackend(backend, options.bwlimit);
  return new RetryingBackend(backend, options.retry);
}
