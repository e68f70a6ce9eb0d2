import {
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  ListObjectVersionsCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isNotFound, type ObjectLockStore, type ObjectRetention, type ObjectVersion, StorageError } from './backend.js';
import { errorCode, lockedRefusal } from './s3-errors.js';

/** What s3.ts hands its Object Lock half: the client, where objects live, and its error mapping. */
export interface S3LockContext {
  client: S3Client;
  bucket: string;
  /** '' or ending in '/'. */
  keyPrefix: string;
  location: string;
  fail(err: unknown, action: string, key?: string): Error;
}

/** Versions deleted in parallel (one DeleteObject each: a versioned delete is not batched, see deleteVersions). */
const PARALLEL = 8;

const NO_RETENTION = new Set(['NoSuchObjectLockConfiguration', 'ObjectLockConfigurationNotFoundError']);

const MODES = { GOVERNANCE: 'governance', COMPLIANCE: 'compliance' } as const;

/**
 * S3 Object Lock and versions (storage/backend.ts ObjectLockStore). Kept apart from s3.ts, which
 * is the object path every target uses; this is only for buckets with versioning or Object Lock.
 */
export class S3ObjectLock implements ObjectLockStore {
  constructor(private readonly c: S3LockContext) {}

  async state(): Promise<{ versioning: boolean; objectLock: boolean }> {
    const { client, bucket } = this.c;
    let versioning: boolean;
    try {
      const res = await client.send(new GetBucketVersioningCommand({ Bucket: bucket }));
      versioning = res.Status === 'Enabled' || res.Status === 'Suspended';
    } catch (err) {
      throw this.c.fail(err, 'read the versioning state of the bucket');
    }
    let objectLock = false;
    try {
      const res = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
      objectLock = res.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (err) {
      // No configuration (AWS, RGW) or no such feature on this server: the bucket has no lock.
      const code = errorCode(err);
      if (code !== 'ObjectLockConfigurationNotFoundError' && code !== 'NotImplemented' && code !== 'InvalidRequest') {
        throw this.c.fail(err, 'read the Object Lock configuration of the bucket');
      }
    }
    return { versioning, objectLock };
  }

  async getRetention(key: string, versionId?: string): Promise<ObjectRetention | null> {
    try {
      const res = await this.c.client.send(new GetObjectRetentionCommand({ Bucket: this.c.bucket, Key: this.c.keyPrefix + key, ...(versionId ? { VersionId: versionId } : {}) }));
      const mode = res.Retention?.Mode;
      const until = res.Retention?.RetainUntilDate;
      if (!mode || !until) return null;
      return { mode: MODES[mode], until: new Date(until) };
    } catch (err) {
      // The object (version) exists but was written without a retention: AWS says
      // NoSuchObjectLockConfiguration, Ceph RGW ObjectLockConfigurationNotFoundError (both 404,
      // so they must be caught before the 404 becomes a NotFoundError).
      if (NO_RETENTION.has(errorCode(err) ?? '')) return null;
      throw this.c.fail(err, 'read the retention of', key);
    }
  }

  async extendRetention(key: string, wanted: ObjectRetention): Promise<ObjectRetention> {
    const current = await this.getRetention(key);
    if (current && current.until.getTime() >= wanted.until.getTime() && (current.mode === 'compliance' || wanted.mode === 'governance')) return current;
    // Never weaker than what the object has: a compliance lock stays compliance, and the date only moves later.
    const next: ObjectRetention = {
      mode: current?.mode === 'compliance' ? 'compliance' : wanted.mode,
      until: new Date(Math.max(current?.until.getTime() ?? 0, wanted.until.getTime())),
    };
    try {
      await this.c.client.send(
        new PutObjectRetentionCommand({
          Bucket: this.c.bucket,
          Key: this.c.keyPrefix + key,
          Retention: { Mode: next.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', RetainUntilDate: next.until },
        }),
      );
    } catch (err) {
      throw this.c.fail(err, 'extend the retention of', key);
    }
    return next;
  }

  async listVersions(prefix: string): Promise<ObjectVersion[]> {
    const { client, bucket, keyPrefix } = this.c;
    const out: ObjectVersion[] = [];
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: keyPrefix + prefix, KeyMarker, VersionIdMarker }));
      } catch (err) {
        throw this.c.fail(err, 'list the versions under', prefix === '' ? '(everything)' : `prefix ${prefix}`);
      }
      const add = (entry: { Key?: string; VersionId?: string; Size?: number }, deleteMarker: boolean) => {
        if (!entry.Key?.startsWith(keyPrefix) || !entry.VersionId) return;
        out.push({ key: entry.Key.slice(keyPrefix.length), versionId: entry.VersionId, deleteMarker, size: entry.Size ?? 0 });
      };
      for (const v of page.Versions ?? []) add(v, false);
      for (const d of page.DeleteMarkers ?? []) add(d, true);
      const more = page.IsTruncated === true;
      KeyMarker = more ? page.NextKeyMarker : undefined;
      VersionIdMarker = more ? page.NextVersionIdMarker : undefined;
    } while (KeyMarker !== undefined);
    return out;
  }

  /**
   * One DeleteObject with VersionId per version: removes the bytes for good, where a plain delete
   * only adds a delete marker and the data stays (and stays billed). Not DeleteObjects: a batch
   * answers per key and some servers refuse it without Content-MD5.
   */
  async deleteVersions(versions: readonly ObjectVersion[]): Promise<void> {
    let failure: unknown;
    for (let i = 0; i < versions.length && failure === undefined; i += PARALLEL) {
      await Promise.all(
        versions.slice(i, i + PARALLEL).map((v) =>
          this.deleteVersion(v).catch((err: unknown) => {
            failure ??= err;
          }),
        ),
      );
    }
    if (failure !== undefined) throw failure;
  }

  private async deleteVersion(v: ObjectVersion): Promise<void> {
    try {
      await this.c.client.send(new DeleteObjectCommand({ Bucket: this.c.bucket, Key: this.c.keyPrefix + v.key, VersionId: v.versionId }));
    } catch (err) {
      const failed = this.c.fail(err, `delete version ${v.versionId} of`, v.key);
      if (isNotFound(failed)) return;
      // An AccessDenied is a lock only if the version's retention, read back, says so.
      if (failed instanceof StorageError && failed.kind === 'permission' && !v.deleteMarker) {
        const retention = await this.getRetention(v.key, v.versionId).catch(() => null);
        const locked = lockedRefusal(v.key, retention, new Date(), this.c.location, err);
        if (locked) throw locked;
      }
      throw failed;
    }
  }
}
