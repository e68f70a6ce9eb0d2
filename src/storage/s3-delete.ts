import { DeleteObjectCommand, DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { StorageError } from './backend.js';
import { describeS3Error, httpStatus } from './s3-errors.js';
import { type S3Quirks, withDeleteChecksum } from './s3-quirks.js';

/** DeleteObjects accepts at most this many keys per request. */
const DELETE_BATCH = 1000;
/** Single DeleteObject requests in flight when a server has no multi-object delete. */
const SINGLE_DELETES_IN_FLIGHT = 8;

export interface DeleteTarget {
  client: S3Client;
  bucket: string;
  endpoint: string;
  /** For messages: s3://bucket/prefix. */
  location: string;
  quirks: S3Quirks;
  /** The full object key of a key relative to the prefix. */
  objectKey(key: string): string;
  /** The error to throw for a failed request (S3Backend.fail). */
  fail(err: unknown, action: string, key?: string): Error;
}

/**
 * The delete path of S3Backend: keys in batches of DeleteObjects requests carrying the checksum
 * the provider wants (src/storage/s3-quirks.ts), or one DeleteObject per key where the server
 * has no multi-object delete. A missing key is not an error. Keeps, per backend, whether the
 * server turned out to lack DeleteObjects (501), so that is asked only once.
 */
export class S3Deleter {
  private multiDelete: boolean;

  constructor(private readonly target: DeleteTarget) {
    this.multiDelete = target.quirks.multiDelete;
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (!(this.multiDelete && (await this.deleteBatch(batch)))) await this.deleteSingly(batch);
    }
  }

  /** One DeleteObjects request; false when the server does not implement it. */
  private async deleteBatch(batch: string[]): Promise<boolean> {
    const t = this.target;
    let res;
    try {
      res = await t.client.send(withDeleteChecksum(new DeleteObjectsCommand({ Bucket: t.bucket, Delete: { Objects: batch.map((key) => ({ Key: t.objectKey(key) })), Quiet: true } }), t.quirks));
    } catch (err) {
      if (httpStatus(err) === 501) {
        this.multiDelete = false;
        return false;
      }
      throw t.fail(err, 'delete', `${batch.length} objects`);
    }
    // DeleteObjects answers 200 even when single keys failed; those are in Errors.
    const failures = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    const first = failures[0];
    if (first) {
      const full = first.Key ?? '';
      const relKey = batch.find((key) => t.objectKey(key) === full) ?? full;
      const described = describeS3Error({ name: first.Code ?? 'UnknownError', message: first.Message ?? '' }, { bucket: t.bucket, endpoint: t.endpoint });
      throw new StorageError(`${t.location}: cannot delete ${relKey}${failures.length > 1 ? ` and ${failures.length - 1} more` : ''}: ${described.reason}`, described.permanent, described.kind);
    }
    return true;
  }

  private async deleteSingly(batch: string[]): Promise<void> {
    const t = this.target;
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const key = batch[next++] as string;
        try {
          await t.client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: t.objectKey(key) }));
        } catch (err) {
          // S3 answers 204 for a missing key; a server that says 404 means the same.
          if (describeS3Error(err, { bucket: t.bucket, endpoint: t.endpoint }).notFound) continue;
          throw t.fail(err, 'delete', key);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SINGLE_DELETES_IN_FLIGHT, batch.length) }, worker));
  }
}
