import { redactUrl } from '../util/redact.js';
import { ObjectLockedError, type ObjectRetention, type StorageError } from './backend.js';

/**
 * How S3 failures map onto the storage contract. Kept apart from s3.ts because it is a table
 * of server behaviour (codes seen from AWS, Ceph RGW and other S3-compatible servers), not
 * request logic.
 */

export interface DescribedError {
  reason: string;
  permanent: boolean;
  kind: StorageError['kind'];
  /** The object (not the bucket) does not exist. */
  notFound?: boolean;
}

const THROTTLING = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'TooManyRequests',
  'BandwidthLimitExceeded',
  'RequestThrottledException',
]);
const SERVER_TROUBLE = new Set(['InternalError', 'ServiceUnavailable', 'RequestTimeout', 'RequestTimeoutException', 'OperationAborted']);
/** 4xx answers caused by a body damaged or cut short on the way: sending it again can work. */
const DAMAGED_IN_TRANSIT = new Set(['BadDigest', 'XAmzContentSHA256Mismatch', 'IncompleteBody']);
const NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'TimeoutError',
  'RequestTimeout',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Classifies an SDK/network error for the contract: which `StorageError` kind, whether a retry
 * can help, and a reason a user can act on. Only the server's error code and our own words go
 * into the reason, so no request detail (and never a secret) can leak into a message.
 */
export function describeS3Error(err: unknown, ctx: { bucket: string; endpoint: string; unknownKeyLooksLikeWrongSecret?: boolean }): DescribedError {
  const e = (err ?? {}) as { name?: string; Code?: string; code?: string; message?: string };
  const status = httpStatus(err);
  const code = e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined) ?? e.code ?? 'UnknownError';
  const tag = status ? `${code}, HTTP ${status}` : code;
  const permanent = (kind: StorageError['kind'], reason: string): DescribedError => ({ reason, permanent: true, kind });
  switch (code) {
    case 'NoSuchKey':
    case 'NotFound':
      return { reason: `not found (${tag})`, permanent: true, kind: 'other', notFound: true };
    case 'NoSuchBucket':
      return permanent('not-found-container', `bucket ${ctx.bucket} does not exist at ${ctx.endpoint} (${tag})`);
    case 'InvalidAccessKeyId':
      return permanent('credentials', `the access key ID is unknown to ${ctx.endpoint} (${tag}); check AWS_ACCESS_KEY_ID or the profile in use`);
    case 'SignatureDoesNotMatch':
      // Some servers (Swift's s3api) say this for an unknown key too: src/storage/s3-quirks.ts.
      if (ctx.unknownKeyLooksLikeWrongSecret) {
        return permanent(
          'credentials',
          `the secret access key is wrong, or the access key ID is unknown to ${ctx.endpoint}, which does not tell which: the request signature does not match (${tag}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the profile in use`,
        );
      }
      return permanent(
        'credentials',
        `the secret access key is wrong: ${ctx.endpoint} knows the access key ID but the request signature does not match (${tag}); check AWS_SECRET_ACCESS_KEY or the profile in use`,
      );
    case 'ExpiredToken':
    case 'ExpiredTokenException':
    case 'InvalidToken':
    case 'TokenRefreshRequired':
      return permanent('credentials', `the session token is expired or invalid (${tag}); refresh the credentials`);
    case 'CredentialsProviderError':
      return permanent('credentials', 'no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE');
    case 'AccessDenied':
    case 'AllAccessDisabled':
    case 'AccountProblem':
    case 'Forbidden':
      return permanent('permission', `access denied in bucket ${ctx.bucket} (${tag}): the credentials are valid but lack permission`);
    case 'QuotaExceeded':
    case 'QuotaExceededException':
      return permanent('no-space', `storage quota exceeded (${tag})`);
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
    case 'IllegalLocationConstraintException':
      return permanent('other', `bucket ${ctx.bucket} is in a different region (${tag}); set the region (AWS_REGION)`);
    case 'RequestTimeTooSkewed':
      return permanent('other', `this host's clock differs too much from the server's (${tag}); fix the system time`);
    case 'ENOTFOUND':
      return permanent('other', `cannot resolve the host name of ${ctx.endpoint} (ENOTFOUND)`);
  }
  if (THROTTLING.has(code) || status === 429) return { reason: `the server asks to slow down (${tag})`, permanent: false, kind: 'other' };
  if (DAMAGED_IN_TRANSIT.has(code)) return { reason: `the upload arrived damaged (${tag})`, permanent: false, kind: 'other' };
  if (SERVER_TROUBLE.has(code) || (status !== undefined && status >= 500)) {
    return { reason: `server error (${tag})`, permanent: false, kind: 'other' };
  }
  if (NETWORK.has(code) || /socket hang up|ECONNRESET|aborted/i.test(e.message ?? '')) {
    return { reason: `connection to ${ctx.endpoint} failed (${code})`, permanent: false, kind: 'other' };
  }
  if (status === 403) return permanent('permission', `access denied in bucket ${ctx.bucket} (${tag})`);
  if (status === 404) return { reason: `not found (${tag})`, permanent: true, kind: 'other', notFound: true };
  if (status !== undefined && status >= 400) return permanent('other', `request rejected (${tag})${e.message ? `: ${e.message}` : ''}`);
  // No HTTP answer and nothing we recognise: most likely the network; a retry is cheap.
  return { reason: `${code}${e.message ? `: ${e.message}` : ''}`, permanent: false, kind: 'other' };
}

/** The server named in messages: the endpoint in use, without any user:password@ part. */
export function endpointForMessages(endpoint?: string): string {
  const url = endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return url ? redactUrl(url) : 'AWS S3';
}

export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** The server's error code of an SDK error (`Code`, else its name), for the few callers that branch on one. */
export function errorCode(err: unknown): string | undefined {
  const e = (err ?? {}) as { name?: string; Code?: string };
  return e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined);
}

/**
 * Whether an AccessDenied of a version delete was Object Lock: decided by the retention the
 * server reports for that version (under retention at `now`), never by the message text, which
 * differs between AWS ("Access Denied") and Ceph RGW ("forbidden by object lock"). A denial of
 * an unlocked version stays what it was: a permission problem.
 */
export function lockedRefusal(key: string, retention: ObjectRetention | null, now: Date, location: string, cause: unknown): ObjectLockedError | undefined {
  if (!retention || retention.until.getTime() <= now.getTime()) return undefined;
  return new ObjectLockedError(key, retention, location, { cause });
}
