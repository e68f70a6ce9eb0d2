import { createS3Client } from './s3-client.js';
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { settingDefault } from '../settings/values.js';
import { UsageError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';
import {
  type Backend,
  type ByteRange,
  checkRange,
  evenParts,
  MAX_PARTS_PER_OBJECT,
  type LoadConsumer,
  type LoadOptions,
  NotFoundError,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  StorageError,
} from './backend.js';
import { consumeRead, enforceSize, rangeOf } from './bodies.js';
import { describeS3Error, endpointForMessages, httpStatus } from './s3-errors.js';
import { S3Deleter } from './s3-delete.js';
import { S3ObjectLock } from './s3-lock.js';
import { lockHeaders, putInParts, signWithSha256 } from './s3-parts.js';
import { isS3Provider, type S3Quirks, s3Quirks } from './s3-quirks.js';

const MiB = 1024 * 1024;
/** S3's limits on multipart part sizes (every part but the last). */
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
/** S3's limit for one PutObject. */
const MAX_SINGLE_PUT = 5 * 1024 * MiB;

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'; '' = bucket root. */
  prefix: string;
  /** S3-compatible server URL. Default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
  /** Default: AWS_REGION / the profile's region, else us-east-1. */
  region?: string;
  /** Path-style addressing (http://host/bucket/key); most S3-compatible servers need it. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes. Default: src/settings/table.ts; S3 allows 5 MiB … 5 GiB. */
  partSize?: number;
  /** Parts of one multipart upload sent in parallel. Default: src/settings/table.ts. */
  queueSize?: number;
  /** E.g. STANDARD_IA, GLACIER_IR; default: the bucket's default class. */
  storageClass?: string;
  /** Explicit credentials or a provider of them (open.ts). Default: the SDK's standard credential chain. */
  credentials?: S3ClientConfig['credentials'];
  /** Parallel requests the layers above should issue. Default 8. */
  connections?: number;
  /** Whose quirks to follow (src/storage/s3-quirks.ts); default `other`, safe everywhere. */
  provider?: string;
  /** Single quirks overridden (tests, embedding). */
  quirks?: Partial<S3Quirks>;
}

/**
 * Objects in an S3 bucket (AWS or any S3-compatible server) under a key prefix.
 *
 * Retries belong to RetryingBackend, so the SDK makes at most 2 attempts per request: the one
 * SDK retry exists for the parts of a multipart upload from a Readable, which the wrapper
 * cannot replay as a whole but the SDK can resend part by part (it holds each part in memory).
 */
export class S3Backend implements Backend {
  readonly location: string;
  readonly connections: number;
  /** 4 MiB ranges: at a typical 20 MiB/s per connection and 40 ms round trip, ≥ 80 % busy. */
  readonly rangedReadBytes = 4 * 1024 * 1024;
  /**
   * S3's smallest part: a 16 MiB chunk goes as 3 parts in parallel. Each part costs a request
   * (and the upload two more: create, complete), which a long link repays and loopback barely
   * notices.
   */
  readonly partUploadBytes = MIN_PART_SIZE;
  /** A denied DeleteObjects is AccessDenied whether the keys exist or not (backend.ts). */
  readonly deletionAsksPermission = true;
  readonly client: S3Client;
  /** Object Lock and versions (s3-lock.ts); what the bucket has on is asked of the server. */
  readonly objectLock: S3ObjectLock;
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly keyPrefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly storageClass: StorageClass | undefined;
  private readonly endpoint: string;
  readonly quirks: S3Quirks;
  private readonly deleter: S3Deleter;

  constructor(options: S3BackendOptions & { idleTimeoutMs?: number; profile?: string }) {
    this.bucket = options.bucket;
    const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    // For messages only: never a password, whatever bucket and prefix an embedding program passes (src/util/redact.ts).
    this.location = redactUrl(`s3://${options.bucket}${prefix === '' ? '' : `/${prefix}`}`);
    this.partSize = options.partSize ?? (settingDefault('s3PartSize') as number);
    this.queueSize = options.queueSize ?? (settingDefault('s3Queue') as number);
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART_SIZE || this.partSize > MAX_PART_SIZE) {
      throw new UsageError(`S3 part size ${options.partSize} is outside S3's limits of 5 MiB to 5 GiB`);
    }
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) {
      throw new UsageError(`S3 upload queue size must be a positive integer, not ${options.queueSize}`);
    }
    this.connections = options.connections ?? 8;
    this.storageClass = options.storageClass as StorageClass | undefined;
    this.endpoint = endpointForMessages(options.endpoint);
    const provider = options.provider ?? (settingDefault('s3Provider') as string);
    if (!isS3Provider(provider)) throw new UsageError(`unknown S3 provider ${JSON.stringify(provider)}`);
    this.quirks = s3Quirks(provider, options.quirks);
    this.client = createS3Client(options);
    this.deleter = new S3Deleter({
      client: this.client,
      bucket: this.bucket,
      endpoint: this.endpoint,
      location: this.location,
      quirks: this.quirks,
      objectKey: (key) => this.objectKey(key),
      fail: (err, action, key) => this.fail(err, action, key),
    });
    this.objectLock = new S3ObjectLock({ client: this.client, bucket: this.bucket, keyPrefix: this.keyPrefix, location: this.location, fail: (err, action, key) => this.fail(err, action, key) });
  }

  /**
   * Resolves region and credentials now; the SDK keeps them, so later changes to process.env
   * no longer matter. Failures are left for the first request to report with context.
   */
  async captureEnvironment(): Promise<void> {
    await this.client.config.region().catch(() => undefined);
    await this.client.config.credentials().catch(() => undefined);
  }

  private objectKey(key: string): string {
    if (key === '' || key.startsWith('/')) {
      throw new StorageError(`${this.location}: invalid object key ${JSON.stringify(key)}`, true);
    }
    return this.keyPrefix + key;
  }

  private fail(err: unknown, action: string, key?: string): Error {
    if (err instanceof StorageError || err instanceof NotFoundError) return err;
    const what = key === undefined ? action : `${action} ${key}`;
    const described = describeS3Error(err, { bucket: this.bucket, endpoint: this.endpoint, unknownKeyLooksLikeWrongSecret: this.quirks.unknownKeyLooksLikeWrongSecret });
    if (described.notFound && key !== undefined) return new NotFoundError(key, this.location);
    return new StorageError(`${this.location}: cannot ${what}: ${described.reason}`, described.permanent, described.kind, {
      cause: err,
    });
  }

  async put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<PutResult> {
    // Errors of the caller's own stream (e.g. a failing zfs send) are passed on unchanged.
    let bodyError: unknown;
    if (!Buffer.isBuffer(body)) body.on('error', (err) => (bodyError ??= err));
    try {
      if (Buffer.isBuffer(body) && size !== undefined && body.length !== size) {
        throw new StorageError(`${this.location}: cannot put ${key}: body has ${body.length} bytes, expected ${size}`, true);
      }
      const common = {
        Bucket: this.bucket,
        Key: this.objectKey(key),
        ...(this.storageClass ? { StorageClass: this.storageClass } : {}),
        ...lockHeaders(options?.retention),
      };
      const sha256 = options?.sha256;
      if (options?.retention && !Buffer.isBuffer(body) && !options.md5) {
        throw new StorageError(`${this.location}: cannot put ${key} with a retention from a stream (Content-MD5 needs the whole body first)`, true);
      }
      if (Buffer.isBuffer(body) && sha256 !== undefined && body.length <= MAX_SINGLE_PUT) {
        // The caller's SHA-256, signed as the payload hash: the server checks the body against it
        // (a damaged body is XAmzContentSHA256Mismatch) and neither side of this process hashes
        // the bytes again (the SDK would, and Content-MD5 would be one more pass).
        const parts = evenParts(body.length, this.partUploadBytes, MAX_PARTS_PER_OBJECT);
        if (parts.length > 1 && options?.partSha256s?.length === parts.length) {
          // With the hash of each part: parts in parallel, each signed the same way.
          return etagOf(await putInParts(this.client, common, body, parts, options.partSha256s));
        }
        // With a retention AWS also wants Content-MD5 (one more pass over the body, only then).
        const md5 = options?.retention ? { ContentMD5: createHash('md5').update(body).digest('base64') } : {};
        const put = await this.client.send(signWithSha256(new PutObjectCommand({ ...common, ...md5, Body: body, ContentLength: body.length }), sha256));
        // The server checked the body against our SHA-256: its ETag names exactly these bytes.
        return etagOf(put.ETag);
      }
      if (!Buffer.isBuffer(body) && sha256 !== undefined && size !== undefined && size <= MAX_SINGLE_PUT && (!options?.retention || options.md5)) {
        // A streamed body of known size and SHA-256 (bodies.ts putWhole: a big manifest or
        // journal): one PutObject the server checks, like a Buffer's, never a multipart upload.
        const md5 = options?.retention ? { ContentMD5: options.md5 } : {};
        const source = enforceSize(body, size, `${this.location}: cannot put ${key}`);
        const put = await this.client.send(signWithSha256(new PutObjectCommand({ ...common, ...md5, Body: source, ContentLength: size }), sha256));
        return etagOf(put.ETag);
      }
      if (Buffer.isBuffer(body) && body.length <= this.partSize) {
        // Content-MD5 makes the server reject a body corrupted in transit (BadDigest).
        const md5 = createHash('md5').update(body).digest('base64');
        await this.client.send(new PutObjectCommand({ ...common, Body: body, ContentLength: body.length, ContentMD5: md5 }));
        return {};
      }
      const source = Buffer.isBuffer(body) || size === undefined ? body : enforceSize(body, size, `${this.location}: cannot put ${key}`);
      // A failed multipart upload is aborted (leavePartsOnError: false), so its parts do not
      // linger, invisible and billed, in the bucket.
      const upload = new Upload({
        client: this.client,
        params: { ...common, Body: source },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
      });
      await upload.done();
      return {};
    } catch (err) {
      // Do not leave the producer blocked on a stream nobody reads any more.
      if (!Buffer.isBuffer(body)) body.destroy();
      if (bodyError !== undefined) throw bodyError;
      throw this.fail(err, 'put', key);
    }
  }

  /** A Range GET; `signal` (from `load`) cancels the request itself, not only its body. */
  async get(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const offset = range?.offset ?? 0;
    const length = range?.length;
    checkRange(key, offset, length);
    if (length === 0) {
      await this.head(key); // HTTP cannot ask for zero bytes; still report a missing object
      return Readable.from([]);
    }
    // No Range header for a whole read: "bytes=0-" on an empty object is a 416 on S3.
    const Range = offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), ...(Range ? { Range } : {}) }), signal ? { abortSignal: signal } : {});
      const body = res.Body as Readable;
      const out = new PassThrough();
      body.on('error', (err) => out.destroy(this.fail(err, 'read', key)));
      out.on('close', () => body.destroy()); // consumer gave up: free the connection
      return body.pipe(out);
    } catch (err) {
      // 416: the range starts at or past the end of an existing object; like a file, read nothing.
      if (httpStatus(err) === 416) return Readable.from([]);
      throw this.fail(err, 'get', key);
    }
  }

  load(key: string, consume: LoadConsumer, options: LoadOptions = {}): Promise<void> {
    return consumeRead(() => this.get(key, rangeOf(options), options.signal), consume, options.signal);
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      const bytes = await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw this.fail(err, 'get', key);
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return { key, size: res.ContentLength ?? 0, ...(res.LastModified ? { modified: res.LastModified } : {}), ...etagOf(res.ETag) };
    } catch (err) {
      // A HEAD answer has no body, so a 403 does not say whether the key or the secret is
      // wrong, or whether it is a policy denial: ask a request that does say.
      throw this.fail((httpStatus(err) === 403 && (await this.probe())) || err, 'head', key);
    }
  }

  async list(prefix: string, onObject: (info: ObjectInfo) => void): Promise<void> {
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix + prefix, ContinuationToken }));
      } catch (err) {
        throw this.fail(err, 'list', prefix === '' ? '(everything)' : `prefix ${prefix}`);
      }
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined || !obj.Key.startsWith(this.keyPrefix)) continue;
        onObject({
          key: obj.Key.slice(this.keyPrefix.length),
          size: obj.Size ?? 0,
          ...(obj.LastModified ? { modified: obj.LastModified } : {}),
          ...etagOf(obj.ETag),
        });
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async delete(keys: string[]): Promise<void> {
    await this.deleter.delete(keys);
  }

  /**
   * Aborts multipart uploads under the prefix started before `olderThan`: a crash between
   * CreateMultipartUpload and Complete/Abort leaves parts that no listing shows but that are
   * stored and billed until aborted (buckets without a lifecycle rule keep them forever).
   */
  async cleanupIncompleteUploads(olderThan: Date, options: { prefix?: string; dryRun?: boolean } = {}): Promise<number> {
    let found = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.keyPrefix + (options.prefix ?? ''), KeyMarker, UploadIdMarker }));
      } catch (err) {
        throw this.fail(err, 'list incomplete multipart uploads');
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= olderThan) continue;
        found++;
        if (options.dryRun) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        } catch (err) {
          if (httpStatus(err) !== 404) throw this.fail(err, 'abort the multipart upload of', upload.Key.slice(this.keyPrefix.length));
        }
      }
      const more = page.IsTruncated === true;
      KeyMarker = more ? page.NextKeyMarker : undefined;
      UploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker !== undefined);
    return found;
  }

  /** One cheap authenticated request that tells a missing bucket and bad credentials apart. */
  async check(): Promise<void> {
    const err = await this.probe();
    if (err) throw this.fail(err, 'access the bucket');
  }

  /** The raw error of a cheap authenticated request (a 1-key listing), or undefined if it worked. */
  private async probe(): Promise<unknown> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix, MaxKeys: 1 }));
      return undefined;
    } catch (err) {
      return err ?? new Error('unknown error');
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/**
 * The ETag as head and list both report it: HEAD and ListObjectsV2 quote it (and a weak one
 * would start with W/), so the bare value is kept, comparable across the two.
 */
function etagOf(etag: string | undefined): { etag?: string } {
  const bare = etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  return bare ? { etag: bare } : {};
}
