import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type PutObjectCommand,
  type S3Client,
  type StorageClass,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { type ObjectRetention, StorageError } from './backend.js';

/** Bucket, key and storage class of an object being written. */
export interface ObjectTarget {
  Bucket: string;
  Key: string;
  StorageClass?: StorageClass;
  ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
  ObjectLockRetainUntilDate?: Date;
}

/** The Object Lock fields of a PutObject or CreateMultipartUpload for a retention (none without). */
export function lockHeaders(retention: ObjectRetention | undefined): Pick<ObjectTarget, 'ObjectLockMode' | 'ObjectLockRetainUntilDate'> {
  if (!retention) return {};
  return { ObjectLockMode: retention.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', ObjectLockRetainUntilDate: retention.until };
}

/** The one part of the SDK's middleware stack used here, the same for every command. */
interface BuildStep {
  add(middleware: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>, options: { step: 'build'; name: string }): void;
}

/**
 * Makes a request carry `sha256` (hex, of its body) as its signed payload hash: the server then
 * checks the body against it (a damaged body is XAmzContentSHA256Mismatch), and neither the SDK
 * nor Content-MD5 hashes the bytes once more. SigV4 takes an x-amz-content-sha256 header already
 * on the request as the payload hash (@smithy/signature-v4 getPayloadHash).
 */
export function signWithSha256<C extends PutObjectCommand | UploadPartCommand>(command: C, sha256: string): C {
  // The payload hash is a header the signature covers: exactly 64 lowercase hex digits.
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new StorageError(`invalid SHA-256 ${JSON.stringify(sha256)} for an upload`, true);
  (command.middlewareStack as unknown as BuildStep).add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'zfsOffsitePayloadSha256' },
  );
  return command;
}

/**
 * One object from a Buffer as parts uploaded in parallel (one multipart upload), each signed
 * with its own SHA-256, so every part is checked by the server as a single PutObject would be.
 * Over a long link a request's speed is bounded by its connection; parts in parallel fill the
 * link from the one buffer the frame is already in. A failed upload is aborted once no part is
 * in flight any more (an abort while parts are still arriving can leave them stored and billed).
 */
export async function putInParts(
  client: S3Client,
  target: ObjectTarget,
  body: Buffer,
  parts: readonly { offset: number; length: number }[],
  partSha256s: readonly string[],
): Promise<string | undefined> {
  if (parts.length !== partSha256s.length) throw new StorageError(`${target.Key}: ${partSha256s.length} part hashes for ${parts.length} parts`, true);
  const { UploadId } = await client.send(new CreateMultipartUploadCommand(target));
  if (!UploadId) throw new StorageError(`${target.Key}: the server started a multipart upload without an upload id`, false);
  const { Bucket, Key } = target;
  try {
    const settled = await Promise.allSettled(
      parts.map(async ({ offset, length }, i) => {
        const part = body.subarray(offset, offset + length);
        // AWS wants Content-MD5 on every part of an object written with a retention.
        const md5 = target.ObjectLockMode ? { ContentMD5: createHash('md5').update(part).digest('base64') } : {};
        const command = new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: part, ContentLength: length, ...md5 });
        const { ETag } = await client.send(signWithSha256(command, partSha256s[i]!));
        return { ETag, PartNumber: i + 1 };
      }),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const uploaded = settled.map((s) => (s as PromiseFulfilledResult<{ ETag: string | undefined; PartNumber: number }>).value);
    const done = await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: uploaded } }));
    return done.ETag;
  } catch (err) {
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
    throw err;
  }
}
