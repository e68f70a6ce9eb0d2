import { createHash, randomBytes } from 'node:crypto';
import {
  DeleteObjectsCommand,
  GetBucketLifecycleConfigurationCommand,
  type GetBucketLifecycleConfigurationCommandOutput,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  type GetObjectLockConfigurationCommandOutput,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describeS3Error, endpointForMessages } from './s3-errors.js';
import { signWithSha256 } from './s3-parts.js';
import type { S3Backend } from './s3.js';

/**
 * The bucket properties `zfs-offsite check` reports (jobs/check.ts) that only S3 has: the
 * server's clock, versioning, Object Lock, the lifecycle rule for incomplete multipart uploads,
 * and whether the server checks the x-amz-content-sha256 our uploads are signed with. Each is
 * one request; none changes the bucket, and the one probe object is written under the reserved
 * prefix the caller gives (archive/format/keys.ts CHECK_PREFIX).
 */

export type CheckStatus = 'ok' | 'info' | 'warn' | 'problem' | 'n/a' | 'skipped';

export interface CheckItem {
  property: string;
  status: CheckStatus;
  detail: string;
}

/** A clock this far from the server's is reported; SigV4 refuses requests beyond 15 minutes. */
export const CLOCK_WARN_SECONDS = 60;
export const CLOCK_PROBLEM_SECONDS = 300;

/** Where S3 answers go wrong in ways a user acts on (the error code, never the text: s3-errors.ts). */
function reason(s3: S3Backend, err: unknown): { text: string; denied: boolean } {
  const d = describeS3Error(err, { bucket: s3.bucket, endpoint: endpointForMessages() });
  return { text: d.reason, denied: d.kind === 'permission' };
}

function codeOf(err: unknown): string | undefined {
  const e = err as { Code?: string; name?: string } | undefined;
  return e?.Code ?? e?.name;
}

/** How far the server's clock (its Date header) is from this host's, in seconds; positive: the server is ahead. */
export async function clockSkew(s3: S3Backend): Promise<number | undefined> {
  const command = new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: s3.keyPrefix, MaxKeys: 1 });
  let date: string | undefined;
  let sent = 0;
  let received = 0;
  (command.middlewareStack as unknown as MiddlewareStack).add(
    (next) => async (args) => {
      sent = Date.now();
      const out = (await next(args)) as { response?: { headers?: Record<string, string> } };
      received = Date.now();
      date = out.response?.headers?.date;
      return out;
    },
    { step: 'deserialize', name: 'zfsOffsiteServerDate' },
  );
  await s3.client.send(command);
  const server = date === undefined ? Number.NaN : Date.parse(date);
  if (Number.isNaN(server)) return undefined;
  // The header has one-second resolution: compared with the middle of the request.
  return Math.round((server - (sent + received) / 2) / 1000);
}

interface MiddlewareStack {
  add(middleware: (next: (args: unknown) => Promise<unknown>) => (args: unknown) => Promise<unknown>, options: { step: 'deserialize'; name: string }): void;
}

/** The clock item from a measured skew (pure: test/jobs/check.test.ts). */
export function clockItem(skew: number | undefined): CheckItem {
  if (skew === undefined) return { property: 'clock', status: 'warn', detail: 'the server sent no Date header: clock skew not measured' };
  const size = Math.abs(skew);
  const words = size === 0 ? 'agrees with the server (within a second)' : `is ${size} s ${skew > 0 ? 'behind' : 'ahead of'} the server`;
  if (size > CLOCK_PROBLEM_SECONDS) return { property: 'clock', status: 'problem', detail: `this host's clock ${words}: fix the system time (NTP); S3 refuses signatures beyond 15 minutes` };
  if (size > CLOCK_WARN_SECONDS) return { property: 'clock', status: 'warn', detail: `this host's clock ${words}` };
  return { property: 'clock', status: 'ok', detail: `this host's clock ${words}` };
}

export async function versioningItem(s3: S3Backend): Promise<{ item: CheckItem; enabled: boolean }> {
  try {
    const res = await s3.client.send(new GetBucketVersioningCommand({ Bucket: s3.bucket }));
    if (res.Status === 'Enabled') {
      return {
        enabled: true,
        item: { property: 'versioning', status: 'info', detail: 'enabled: an overwritten or deleted object stays as a noncurrent version, billed until a lifecycle rule expires it' },
      };
    }
    if (res.Status === 'Suspended') return { enabled: true, item: { property: 'versioning', status: 'info', detail: 'suspended: versions made while it was enabled are kept' } };
    return { enabled: false, item: { property: 'versioning', status: 'info', detail: 'not enabled: a deleted or overwritten object is gone' } };
  } catch (err) {
    if (unsupported(err)) return { enabled: false, item: { property: 'versioning', status: 'n/a', detail: 'not supported by this server: a deleted or overwritten object is gone' } };
    return { enabled: false, item: { property: 'versioning', status: 'warn', detail: `not readable: ${reason(s3, err).text}` } };
  }
}

/**
 * Answers of a server that does not know a bucket sub-resource: NotImplemented, or (Swift 2.30
 * s3api, which routes only the sub-resources it implements) the request served as a plain GET of
 * the bucket, a listing the SDK parses into an empty configuration. Told apart by the root element
 * of the XML answer, never by message text.
 */
function unsupported(err: unknown): boolean {
  return codeOf(err) === 'NotImplemented';
}

/** Sends a bucket-configuration GET and also returns the root element of the XML it answered with. */
async function sendWithRoot<T>(s3: S3Backend, command: { middlewareStack: unknown }): Promise<{ res: T; root: string | undefined }> {
  let root: string | undefined;
  (command.middlewareStack as unknown as RawStack).add(
    (next) => async (args) => {
      const out = (await next(args)) as { response?: { statusCode?: number; body?: unknown } };
      const body = out.response?.body as (AsyncIterable<Uint8Array> & { pipe?: unknown }) | undefined;
      if (out.response && body && typeof body === 'object' && Symbol.asyncIterator in body) {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        const bytes = Buffer.concat(chunks);
        root = /<([A-Za-z][\w.-]*)[\s/>]/.exec(bytes.toString('utf8').replace(/<\?[^>]*\?>/g, ''))?.[1];
        // The deserializer reads a byte array as readily as a stream (smithy collectBody).
        out.response.body = new Uint8Array(bytes);
      }
      return out;
    },
    // Low priority within the deserialize step: inside the SDK's deserializer, on the raw response.
    { step: 'deserialize', name: 'zfsOffsiteAnswerRoot', priority: 'low' },
  );
  const res = (await s3.client.send(command as never)) as T;
  return { res, root };
}

interface RawStack {
  add(middleware: (next: (args: unknown) => Promise<unknown>) => (args: unknown) => Promise<unknown>, options: { step: 'deserialize'; name: string; priority: 'low' }): void;
}

const NO_LOCK: CheckItem = {
  property: 'object-lock',
  status: 'n/a',
  detail: 'not supported by this server (it does not implement S3 Object Lock): --object-lock cannot be used here',
};
const NO_LIFECYCLE: CheckItem = {
  property: 'multipart-cleanup',
  status: 'n/a',
  detail: 'lifecycle rules not supported by this server: parts of interrupted multipart uploads stay until prune (with a key that can delete) aborts them',
};

export async function objectLockItem(s3: S3Backend): Promise<CheckItem> {
  try {
    const { res, root } = await sendWithRoot<GetObjectLockConfigurationCommandOutput>(s3, new GetObjectLockConfigurationCommand({ Bucket: s3.bucket }));
    if (root === 'ListBucketResult') return NO_LOCK;
    const conf = res.ObjectLockConfiguration;
    if (conf?.ObjectLockEnabled !== 'Enabled') return { property: 'object-lock', status: 'info', detail: 'not enabled on this bucket' };
    const d = conf.Rule?.DefaultRetention;
    const period = d?.Days !== undefined ? `${d.Days} day(s)` : d?.Years !== undefined ? `${d.Years} year(s)` : undefined;
    return {
      property: 'object-lock',
      status: 'info',
      detail: d && period ? `enabled; default retention ${d.Mode?.toLowerCase() ?? '?'} mode, ${period}` : 'enabled; no default retention (objects are locked only when written with a retention)',
    };
  } catch (err) {
    // No configuration at all is an answer (AWS: ObjectLockConfigurationNotFoundError, HTTP 404).
    if (codeOf(err) === 'ObjectLockConfigurationNotFoundError') return { property: 'object-lock', status: 'info', detail: 'not enabled on this bucket' };
    if (unsupported(err)) return NO_LOCK;
    return { property: 'object-lock', status: 'warn', detail: `not readable: ${reason(s3, err).text}` };
  }
}

export async function multipartLifecycleItem(s3: S3Backend): Promise<CheckItem> {
  const none: CheckItem = {
    property: 'multipart-cleanup',
    status: 'warn',
    detail: 'no lifecycle rule with AbortIncompleteMultipartUpload: parts of interrupted multipart uploads stay billed until prune (with a key that can delete) aborts them',
  };
  try {
    const { res, root } = await sendWithRoot<GetBucketLifecycleConfigurationCommandOutput>(s3, new GetBucketLifecycleConfigurationCommand({ Bucket: s3.bucket }));
    if (root === 'ListBucketResult') return NO_LIFECYCLE;
    const rule = (res.Rules ?? []).find((r) => r.Status === 'Enabled' && r.AbortIncompleteMultipartUpload?.DaysAfterInitiation !== undefined);
    if (!rule) return none;
    return {
      property: 'multipart-cleanup',
      status: 'ok',
      detail: `lifecycle rule ${JSON.stringify(rule.ID ?? '')} aborts incomplete multipart uploads after ${rule.AbortIncompleteMultipartUpload!.DaysAfterInitiation} day(s)`,
    };
  } catch (err) {
    if (codeOf(err) === 'NoSuchLifecycleConfiguration') return none;
    if (unsupported(err)) return NO_LIFECYCLE;
    return { property: 'multipart-cleanup', status: 'warn', detail: `lifecycle configuration not readable: ${reason(s3, err).text}` };
  }
}

/**
 * Uploads a small probe whose x-amz-content-sha256 is deliberately wrong: a server that checks
 * it refuses (XAmzContentSHA256Mismatch, or BadDigest); one that stores it does not check our
 * uploads, so the archive's integrity rests on `verify --deep`. Returns whether a probe object
 * was stored (the caller deletes it when it can).
 */
export async function contentSha256Item(s3: S3Backend, probeKey: string): Promise<{ item: CheckItem; stored: boolean }> {
  const body = randomBytes(32);
  const wrong = createHash('sha256')
    .update(Buffer.concat([body, Buffer.from('not this body')]))
    .digest('hex');
  const property = 'content-sha256';
  try {
    await s3.client.send(signWithSha256(new PutObjectCommand({ Bucket: s3.bucket, Key: s3.keyPrefix + probeKey, Body: body, ContentLength: body.length }), wrong));
  } catch (err) {
    const code = codeOf(err);
    if (code === 'XAmzContentSHA256Mismatch' || code === 'BadDigest') {
      return { stored: false, item: { property, status: 'ok', detail: `verified: a body that did not match its x-amz-content-sha256 was refused (${code})` } };
    }
    return { stored: false, item: { property, status: 'warn', detail: `not tested: the probe upload failed otherwise: ${reason(s3, err).text}` } };
  }
  return {
    stored: true,
    item: {
      property,
      status: 'problem',
      detail: 'NOT verified: the server stored a body whose x-amz-content-sha256 was wrong, so it does not check uploads; integrity then rests on `zfs-offsite verify --deep`',
    },
  };
}

/**
 * On a versioned bucket a deletion only adds a delete marker: removes every version of the
 * probes (under `prefix`), best effort. Returns the versions that could not be removed (locked).
 */
export async function removeProbeVersions(s3: S3Backend, prefix: string): Promise<number> {
  const res = await s3.client.send(new ListObjectVersionsCommand({ Bucket: s3.bucket, Prefix: s3.keyPrefix + prefix }));
  const objects = [...(res.Versions ?? []), ...(res.DeleteMarkers ?? [])].flatMap((v) => (v.Key && v.VersionId ? [{ Key: v.Key, VersionId: v.VersionId }] : []));
  if (objects.length === 0) return 0;
  const out = await s3.client.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: objects, Quiet: true } }));
  return (out.Errors ?? []).length;
}
