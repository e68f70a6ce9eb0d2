import type { Readable } from 'node:stream';
import { OperationalError } from '../util/errors.js';
import type { EntryType } from '../util/file-type.js';

/**
 * The one storage contract every backend (local directory, S3, SFTP) implements.
 * Modelled on restic's backend interface: a handful of methods with their semantics
 * written on them; retries live in ONE wrapper (retrying.ts), not in the backends.
 * test/storage/contract.ts is the executable form of this contract: every backend runs it.
 *
 * Keys are '/'-separated relative paths made only of [A-Za-z0-9._%~/-] characters
 * (see archive/format/keys.ts), with no empty, '.' or '..' segment and no segment starting with
 * '.tmp-' (reserved for unfinished writes); a backend maps them under its own root/prefix.
 *
 * Errors: a missing object is a `NotFoundError`; every other storage failure is a
 * `StorageError` whose `permanent` flag tells the retrying wrapper whether trying again can
 * help. The one exception is `put` with a Readable body: if that stream itself fails, its
 * own error is passed through unchanged (so e.g. a stream-format error stays recognisable).
 * File-tree backends (local, SFTP) never follow a symbolic link or open a special file inside
 * their root: an operation whose path meets one fails with a permanent StorageError of kind
 * `unsafe-entry` (storage/confined.ts).
 */
export interface ObjectInfo {
  /** Key relative to the backend root. */
  key: string;
  size: number;
  /** Last modification time, when the backend reports one. */
  modified?: Date;
  /**
   * What the server itself says about the content (S3: the ETag, without its quotes), when it
   * keeps such a fingerprint: `head` and `list` report the same value, and any change of the
   * content changes it. A backend that keeps none (local directory, SFTP) omits it; a caller
   * that must know the content is intact then reads it back and hashes it.
   */
  etag?: string;
}

/** What a file-tree backend found at a path, without following links. */
export type { EntryType } from '../util/file-type.js';

export interface ListOptions {
  /**
   * Told of every entry the listing met that is neither a regular file nor a directory (a symbolic
   * link, a FIFO, a device…): such an entry is never followed, opened or listed as an object
   * (storage/confined.ts). Backends without them (S3) never call it.
   */
  onUnsafe?: (entry: { key: string; type: EntryType }) => void;
}

export interface PutOptions {
  /**
   * Hex SHA-256 of the body. A Readable body with it and its size is sent as one request the
   * server checks (S3: a PutObject, never a multipart upload; storage/bodies.ts putWhole).
   */
  sha256?: string;
  /** Base64 MD5 of a Readable body (S3 Content-MD5, which a retention needs and a stream cannot give in advance). */
  md5?: string;
  /**
   * The same body again, from its start: a Readable body is retried (retrying.ts) only with it.
   * Each call gives a new stream of the same bytes.
   */
  replay?: () => Readable;
  /**
   * Hex SHA-256 of each part of the (Buffer) body as `evenParts(size, partUploadBytes,
   * MAX_PARTS_PER_OBJECT)` cuts it, for a backend with `partUploadBytes`: it uploads the parts
   * in parallel, each checked by the server against its own hash.
   */
  partSha256s?: readonly string[];
  /**
   * The body is stream data (a chunk object): the only kind of put `--bwlimit` limits
   * (throttled.ts). Everything else — journal, SHA256SUMS, manifest, lease, marker — never waits
   * behind chunks: a journal stuck in that queue is a journal an interrupted run did not save.
   */
  chunkData?: boolean;
  /**
   * Aborting gives up a put that has not started yet (one waiting for its turn under
   * `--bwlimit`, or for a retry) with the signal's reason; a put under way completes.
   */
  signal?: AbortSignal;
  /**
   * Object Lock: the object is written with this retention (S3 ObjectLockMode and
   * ObjectLockRetainUntilDate, with Content-MD5 as AWS requires). Given only to a backend with
   * `objectLock`: jobs refuse `--object-lock` for any other before writing (jobs/object-lock.ts).
   */
  retention?: ObjectRetention;
}

/**
 * An object's retention (S3 Object Lock): until `until` no version of it can be deleted or
 * overwritten in place; `governance` can be lifted by a key allowed to bypass it,
 * `compliance` by nobody, and can only be extended.
 */
export interface ObjectRetention {
  mode: 'governance' | 'compliance';
  until: Date;
}

/** One stored version of an object (a versioned bucket), or a delete marker. */
export interface ObjectVersion {
  key: string;
  versionId: string;
  deleteMarker: boolean;
  size: number;
}

/**
 * Object Lock and object versions, for backends that have them (S3): retention read and
 * extended, versions listed and deleted. Backends without them (local directory, SFTP) omit
 * `Backend.objectLock`, and a lock asked of them is refused (jobs check before writing).
 */
export interface ObjectLockStore {
  /** What the bucket has on: versioning (Enabled or Suspended) and Object Lock. */
  state(): Promise<{ versioning: boolean; objectLock: boolean }>;
  /** The retention of an object's current version (or of `versionId`); null when it has none. NotFoundError when absent. */
  getRetention(key: string, versionId?: string): Promise<ObjectRetention | null>;
  /**
   * Makes the current version's retention last at least until `retention.until`: never shortened,
   * and compliance never weakened to governance. Returns the retention the object has afterwards.
   */
  extendRetention(key: string, retention: ObjectRetention): Promise<ObjectRetention>;
  /** Every version and delete marker of the objects whose key starts with `prefix`. */
  listVersions(prefix: string): Promise<ObjectVersion[]>;
  /**
   * Deletes these versions for good (not a delete marker). A version still under retention fails
   * with an `ObjectLockedError` naming it and its date; absent versions are not an error.
   */
  deleteVersions(versions: readonly ObjectVersion[]): Promise<void>;
}

/**
 * What a put learnt of the stored object, when the server said it: S3's ETag of a PutObject (or
 * of a multipart upload) that it checked against `PutOptions.sha256` (or each part's SHA-256),
 * the same ETag `head` and `list` then report. Absent: nothing said (local, SFTP, a put without
 * a SHA-256); a caller that must know what is stored asks `head`.
 */
export interface PutResult {
  etag?: string;
}

/** Parallel requests for one object at most (ranged reads, part uploads). */
export const MAX_PARTS_PER_OBJECT = 4;

/**
 * `size` bytes cut into at most `maxParts` contiguous parts of equal size (the last one takes
 * what remains), none below `minPartBytes`; one part when `minPartBytes` is not set. The one
 * rule for ranged reads and part uploads, so that a writer can hash the parts a backend will
 * upload before handing it the body.
 */
export function evenParts(size: number, minPartBytes: number | undefined, maxParts: number): { offset: number; length: number }[] {
  const count = minPartBytes && minPartBytes > 0 ? Math.max(1, Math.min(maxParts, Math.floor(size / minPartBytes))) : 1;
  const step = Math.ceil(size / count);
  const parts: { offset: number; length: number }[] = [];
  for (let offset = 0; offset < size || parts.length === 0; offset += step) parts.push({ offset, length: Math.min(step, size - offset) });
  return parts;
}

export interface ByteRange {
  offset: number;
  /** Number of bytes; omitted = to the end. */
  length?: number;
}

export interface LoadOptions {
  /** First byte to read. Default 0. */
  offset?: number;
  /** Bytes to read at most; omitted = to the end. */
  length?: number;
  /** Aborting ends the read (and any retry of it): `load` then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Receives the bytes of a `load`, in order; a returned promise holds the read until it settles. */
export type LoadConsumer = (piece: Buffer) => void | Promise<void>;

export interface Backend {
  /** Human-readable location without secrets, for messages (e.g. "s3://bucket/prefix"). */
  readonly location: string;
  /** How many requests in parallel this backend handles well (a hint for upload/prefetch pools). */
  readonly connections: number;
  /**
   * A hint for readers of large objects: a read of at least twice this many bytes goes faster
   * as range requests of about this size in parallel. Set where one request's speed is bounded
   * by its connection (S3 over a long link: one TCP connection's window per request), absent
   * where one request already fills the path (a local disk).
   */
  readonly rangedReadBytes?: number;
  /**
   * A hint for writers of large Buffer bodies with a SHA-256: a body of at least twice this many
   * bytes is uploaded as parts of at least this size in parallel (`evenParts`), when the caller
   * passes each part's SHA-256 (`PutOptions.partSha256s`). Absent: one request per object.
   */
  readonly partUploadBytes?: number;
  /**
   * Deleting a key that does not exist still asks the server's permission (S3: a bucket policy
   * denying s3:DeleteObject answers AccessDenied either way, measured on Ceph RGW 16), so a caller
   * can learn whether these credentials may delete before it deletes anything
   * (archive/leftovers.ts probeDeletion). Absent where such a deletion proves nothing (file trees).
   */
  readonly deletionAsksPermission?: boolean;

  /**
   * Store an object. Atomic: readers see either the complete new object or none
   * (or the previous version). Overwrites an existing object. A put that fails, including
   * one whose Readable body fails midway, leaves no object (or the previous version) and no
   * partial upload behind.
   * `size`, when given, is the exact body length: a body of another length fails the put.
   * A Buffer body can be retried; a Readable body cannot (the wrapper tries it once); a
   * Readable body is consumed, and destroyed if the put fails, so its producer is not left blocked.
   * `options.sha256`, when given, is the hex SHA-256 of a Buffer body, already computed by the
   * caller: a backend whose server can check it does so (S3 signs it as x-amz-content-sha256,
   * so a body damaged on the way fails the put) instead of hashing the body again.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a backend that says nothing of what it stored (local, SFTP) keeps returning Promise<void>
  put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<PutResult | void>;

  /**
   * Read an object, or a byte range of it. Throws NotFoundError when absent (checked before
   * the stream is returned). A range reaching past the end yields the bytes that exist (none
   * if it starts at or after the end). Errors later, while streaming, surface on the stream.
   */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /**
   * Read `length` bytes (default: to the end) of an object from `offset` (default 0), handing
   * them to `consume` in order as they arrive, without holding the object in memory (restic's
   * `Load(ctx, h, length, offset, fn)`). Resolves once the last piece is consumed; as with
   * `get`, a range reaching past the end yields the bytes that exist. Throws NotFoundError when
   * absent. A storage failure midway is a StorageError like any other, after the pieces already
   * consumed: the retrying wrapper restarts a transient one at the first byte not consumed, so
   * `consume` sees every byte once. An exception thrown by `consume` ends the read and is passed
   * through as-is, never retried. Aborting `options.signal` ends it with the signal's reason.
   */
  load(key: string, consume: LoadConsumer, options?: LoadOptions): Promise<void>;

  /** Read a whole (small) object into memory. Throws NotFoundError when absent. */
  getBuffer(key: string): Promise<Buffer>;

  /** Size, time and (when the backend keeps one) etag of an object. Throws NotFoundError when absent. */
  head(key: string): Promise<ObjectInfo>;

  /**
   * Every object whose key starts with `prefix` (recursively, in no guaranteed order),
   * delivered to `onObject` as found. The prefix is a plain string prefix as on S3: "a/b"
   * matches "a/b/c" and "a/bc". A prefix that matches nothing lists nothing. Only regular files
   * are objects: links are not followed, special files not reported as objects (`options.onUnsafe`).
   */
  list(prefix: string, onObject: (info: ObjectInfo) => void, options?: ListOptions): Promise<void>;

  /** Delete objects (any number; backends batch as needed). Keys that do not exist are not an error. */
  delete(keys: string[]): Promise<void>;

  /**
   * Check the target is reachable and usable (bucket exists, credentials work, directory
   * writable), failing with a StorageError whose message says what to fix.
   */
  check(): Promise<void>;

  /**
   * Optional, for backends that can hold invisible partial uploads (S3 multipart uploads that
   * were never completed or aborted, e.g. after a crash): abort those under `prefix` (default:
   * the whole backend) started before `olderThan`, and return how many were found. With
   * `dryRun` nothing is aborted. Backends whose failed writes leave nothing behind omit it.
   */
  cleanupIncompleteUploads?(olderThan: Date, options?: { prefix?: string; dryRun?: boolean }): Promise<number>;

  /** Object Lock and versions (S3); absent where the storage has neither (ObjectLockStore). */
  readonly objectLock?: ObjectLockStore;

  close(): Promise<void>;
}

/** The object does not exist. */
export class NotFoundError extends OperationalError {
  override name = 'NotFoundError';
  declare readonly kind: 'not-found';
  constructor(
    readonly key: string,
    location: string,
  ) {
    super(`${location}: object ${key} not found`, { kind: 'not-found', context: { object: `${location}/${key}` } });
  }
}

/** `unsafe-entry`: a symbolic link or special file inside a file-tree target, refused (storage/confined.ts). */
/** `locked`: a version under Object Lock retention refused a delete (ObjectLockedError). */
export type StorageErrorKind = 'permission' | 'not-found-container' | 'credentials' | 'no-space' | 'unsafe-entry' | 'locked' | 'other';

/**
 * A storage failure. `permanent` failures (access denied, no such bucket, no space)
 * are not retried by the retrying wrapper; transient ones are.
 */
export class StorageError extends OperationalError {
  override name = 'StorageError';
  declare readonly kind: StorageErrorKind;
  constructor(
    message: string,
    readonly permanent: boolean,
    kind: StorageErrorKind = 'other',
    options?: { cause?: unknown },
  ) {
    super(message, { ...options, kind });
  }
}

/**
 * A delete refused because the version is under Object Lock retention: told apart from any other
 * AccessDenied by the version's retention read back from the server (s3-errors.ts
 * `lockedRefusal`), never by the message text. Permanent until `until`.
 */
export class ObjectLockedError extends StorageError {
  override name = 'ObjectLockedError';
  declare readonly kind: 'locked';
  constructor(
    readonly key: string,
    readonly retention: ObjectRetention,
    location: string,
    options?: { cause?: unknown },
  ) {
    super(`${location}: cannot delete ${key}: it is locked (${retention.mode}) until ${retention.until.toISOString()}`, true, 'locked', options);
  }
}

/** Refuses an offset or length that is not a whole number ≥ 0 (a bug in the caller). */
export function checkRange(key: string, offset: number, length: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new RangeError(`invalid byte range ${JSON.stringify({ offset, length })} for ${key}`);
  }
}

export function isNotFound(err: unknown): err is NotFoundError {
  return err instanceof NotFoundError;
}
