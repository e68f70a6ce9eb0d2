import { UsageError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';

// Apart from s3.ts so that parsing a target does not load the AWS SDK (memory, start-up time).

/** Bucket names as S3 accepts them for new buckets (DNS-compatible). */
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Why `bucket` is not a valid S3 bucket name, or undefined when it is. */
export function bucketNameProblem(bucket: string): string | undefined {
  if (bucket.length < 3 || bucket.length > 63) return 'bucket names have 3 to 63 characters';
  if (/[A-Z_]/.test(bucket)) return 'bucket names use lowercase letters, digits, dots and hyphens only';
  if (!BUCKET_RE.test(bucket)) return 'bucket names use lowercase letters, digits, dots and hyphens, and start and end with a letter or digit';
  if (bucket.includes('..')) return 'bucket names cannot contain two dots in a row';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return 'bucket names cannot look like an IP address';
  return undefined;
}

/** Splits `s3://bucket/some/prefix` into bucket and prefix ('' for the bucket root). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const shown = redactUrl(url);
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/is.exec(url);
  if (!match) throw new UsageError(`${shown}: not an S3 URL; expected s3://bucket or s3://bucket/prefix`);
  const bucket = match[1] ?? '';
  if (bucket === '') throw new UsageError(`${shown}: the bucket name is missing; expected s3://bucket/prefix`);
  // A bucket name has neither '@' nor ':': either one there is a key (and maybe a secret with '/')
  // typed into the URL, and the "bucket" would be part of it, so it is never repeated.
  if (bucket.includes('@') || (bucket.includes(':') && url.includes('@'))) {
    throw new UsageError(`${shown}: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`);
  }
  const problem = bucketNameProblem(bucket);
  if (problem) throw new UsageError(`${shown}: ${JSON.stringify(bucket)} is not a valid bucket name (${problem})`);
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\0-\x1f\x7f?#\\]/.test(prefix)) {
    throw new UsageError(`${shown}: the prefix may not contain control characters, '?', '#' or '\\'`);
  }
  if (prefix !== '' && prefix.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new UsageError(`${shown}: the prefix has an empty, '.' or '..' path segment`);
  }
  return { bucket, prefix };
}
