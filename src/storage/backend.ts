import type { Readable } from 'node:stream';

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

export interface PutOptions {
  /** Hex SHA-256 of the (Buffer) body. */
  sha256?: string;
}

export interface ByteRange {
  offset: number;
  /** Number of bytes; omitted = to the end. */
  length?: number;
}

export interface Backend {
  /** Human-readable location without secrets, for messages (e.g. "s3://bucket/prefix"). */
  readonly location: string;
  /** How many requests in parallel this backend handles well (a hint for upload/prefetch pools). */
  readonly connections: number;

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
  put(key: string, body: Buffer | Readable, size?: number, options?: PutOptions): Promise<void>;

  /**
   * Read an object, or a byte range of it. Throws NotFoundError when absent (checked before
   * the stream is returned). A range reaching past the end yields the bytes that exist (none
   * if it starts at or after the end). Errors later, while streaming, surface on the stream.
   */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /** Read a whole (small) object into memory. Throws NotFoundError when absent. */
  getBuffer(key: string): Promise<Buffer>;

  /** Size, time and (when the backend keeps one) etag of an object. Throws NotFoundError when absent. */
  head(key: string): Promise<ObjectInfo>;

  /**
   * Every object whose key starts with `prefix` (recursively, in no guaranteed order),
   * delivered to `onObject` as found. The prefix is a plain string prefix as on S3: "a/b"
   * matches "a/b/c" and "a/bc". A prefix that matches nothing lists nothing.
   */
  list(prefix: string, onObject: (info: ObjectInfo) => void): Promise<void>;

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

  close(): Promise<void>;
}

/** The object does not exist. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
  constructor(readonly key: string, location: string) {
    super(`${location}: object ${key} not found`);
  }
}

/**
 * A storage failure. `permanent` failures (access denied, no such bucket, no space)
 * are not retried by the retrying wrapper; transient ones are.
 */
export class StorageError extends Error {
  override name = 'StorageError';
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly kind: 'permission' | 'not-found-container' | 'credentials' | 'no-space' | 'other' = 'other',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isNotFound(err: unknown): err is NotFoundError {
  return err instanceof NotFoundError;
}
