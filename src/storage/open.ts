import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';
import type { BackendSettings } from '../settings/table.js';
import type { Backend } from './backend.js';
import type { S3BackendOptions } from './s3.js';
import { LocalBackend } from './local.js';
import { RetryingBackend, type RetryOptions } from './retrying.js';
import { ThrottledBackend } from './throttled.js';
import { parseS3Url } from './s3-url.js';
import { parseSftpUrl, resolveSftpSettings, SFTP_ENV, type SftpLocation, sftpLocationUrl } from './sftp-config.js';

/**
 * The settings of src/settings/table.ts that a backend takes (sizes in bytes, durations in ms;
 * unset: the backend's default or the environment), plus explicit credentials for embedding.
 */
export interface OpenOptions extends BackendSettings {
  /** Explicit S3 credentials, instead of the SDK's chain. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Retry policy beyond --retries / --retry-time (tests: backoff, sleep). */
  retry?: RetryOptions;
}

export type Target = { kind: 'local'; path: string } | { kind: 's3'; bucket: string; prefix: string } | ({ kind: 'sftp' } & SftpLocation);

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
    throw new UsageError(`${shown}: malformed target (a URL needs "${scheme}://"); ${EXAMPLES} (write ./${shown} for a directory whose name contains ':')`);
  }
  switch (scheme) {
    case 's3':
      return { kind: 's3', ...parseS3Url(target) };
    case 'file': {
      let path: string;
      try {
        path = fileURLToPath(new URL(target));
      } catch {
        // Also a file URL with a user or password: the URL parser refuses those.
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
 * Credentials named by the options (a credentials file, the names of variables) go to this
 * backend's client only: process.env is never changed, so one target's never leak to the next.
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
    // No S3 endpoint has an '@': one there is a key and secret typed into the URL (--s3-endpoint
    // refuses it by its pattern, src/settings/table.ts; this is AWS_ENDPOINT_URL's check).
    if (endpoint?.includes('@')) {
      throw new UsageError(`S3 endpoint ${redactUrl(endpoint)}: credentials do not belong in the endpoint URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`);
    }
    const credentials = await s3Credentials(options);
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
      ...(options.s3StorageClass !== undefined ? { storageClass: options.s3StorageClass } : {}),
      ...(options.s3Timeout !== undefined ? { idleTimeoutMs: options.s3Timeout } : {}),
      ...(options.s3Provider !== undefined ? { provider: options.s3Provider } : {}),
      ...(credentials !== undefined ? { credentials } : {}),
      ...(options.s3Profile !== undefined ? { profile: options.s3Profile } : {}),
    });
    await s3.captureEnvironment();
    backend = s3;
  }
  if (options.bwlimit !== undefined) backend = new ThrottledBackend(backend, options.bwlimit);
  return new RetryingBackend(backend, {
    ...options.retry,
    ...(options.retries !== undefined ? { maxAttempts: options.retries } : {}),
    ...(options.retryTime !== undefined ? { maxTotalMs: options.retryTime } : {}),
  });
}

/**
 * Credentials for this S3 client only: explicit ones, the two variables the options name, or a
 * shared-credentials file (with the profile, if any); undefined leaves the SDK's standard chain.
 */
async function s3Credentials(options: OpenOptions): Promise<S3BackendOptions['credentials']> {
  if (options.s3Credentials) return options.s3Credentials;
  const idName = options.s3AccessKeyIdEnv;
  const secretName = options.s3SecretAccessKeyEnv;
  if (idName !== undefined || secretName !== undefined) {
    const accessKeyId = process.env[idName ?? 'AWS_ACCESS_KEY_ID'];
    const secretAccessKey = process.env[secretName ?? 'AWS_SECRET_ACCESS_KEY'];
    if (!accessKeyId || !secretAccessKey) {
      throw new UsageError(`the environment variables ${idName ?? 'AWS_ACCESS_KEY_ID'} and ${secretName ?? 'AWS_SECRET_ACCESS_KEY'} must both be set (s3 access_key_id_env, secret_access_key_env)`);
    }
    return { accessKeyId, secretAccessKey };
  }
  if (options.s3CredentialsFile !== undefined) {
    const { fromIni } = await import('@aws-sdk/credential-provider-ini');
    return fromIni({ filepath: options.s3CredentialsFile, ...(options.s3Profile !== undefined ? { profile: options.s3Profile } : {}) });
  }
  return undefined;
}
