import { createHash } from 'node:crypto';
import type { DeleteObjectsCommand, DeleteObjectsCommandInput, DeleteObjectsCommandOutput } from '@aws-sdk/client-s3';
import type { BuildMiddleware } from '@smithy/types';

/**
 * What S3-compatible servers do differently, in ONE table (as rclone keeps its per-provider
 * settings): each quirk is one switch, each provider one row, chosen by `--s3-provider` /
 * `s3.provider` (src/settings/table.ts). docs/s3-providers.md explains every switch and row
 * and keeps the evidence; test/storage/s3-quirks.test.ts runs each row against the real servers
 * of the test suite (Ceph RGW, OpenStack Swift with s3api).
 *
 * The default row, `other`, is what works on every server we know of, so a user who never
 * names a provider is safe; the named rows only trade that for what a provider prefers.
 */

export const S3_PROVIDERS = ['other', 'aws', 'ceph', 'swift', 'b2'] as const;
export type S3Provider = (typeof S3_PROVIDERS)[number];

export interface S3Quirks {
  /**
   * How a DeleteObjects (multi-object delete) request proves its XML body.
   * - `content-md5`: a Content-MD5 header and no flexible checksum. S3's original rule (the
   *   API required Content-MD5), which every server accepts. Swift's s3api refuses the request
   *   without it ("Missing required header for this request: Content-MD5"), and Backblaze B2
   *   refuses the SDK's checksum headers.
   * - `crc32`: what the AWS SDK sends by default, x-amz-checksum-crc32 plus
   *   x-amz-sdk-checksum-algorithm, even with requestChecksumCalculation WHEN_REQUIRED
   *   (aws-sdk-js-v3 #6819). AWS and Ceph RGW accept it.
   */
  readonly deleteChecksum: 'content-md5' | 'crc32';
  /**
   * true: delete up to 1000 keys per DeleteObjects request. false: one DeleteObject request per
   * key (slower; for servers without multi-object delete). A server that answers DeleteObjects
   * with 501 Not Implemented gets single deletes anyway, whatever this says.
   */
  readonly multiDelete: boolean;
  /**
   * true: the server may answer SignatureDoesNotMatch for an access key it does not know, as it
   * does for a wrong secret (Swift's s3api does), so a message must not claim the key ID is
   * known. false: the server says InvalidAccessKeyId for an unknown key (AWS, Ceph RGW).
   */
  readonly unknownKeyLooksLikeWrongSecret: boolean;
}

const SAFE: S3Quirks = { deleteChecksum: 'content-md5', multiDelete: true, unknownKeyLooksLikeWrongSecret: true };

export const S3_QUIRKS: Readonly<Record<S3Provider, S3Quirks>> = {
  /** Any server: the choices every known server accepts. */
  other: SAFE,
  /** Amazon S3: takes either checksum; the SDK's own default is used. */
  aws: { ...SAFE, deleteChecksum: 'crc32', unknownKeyLooksLikeWrongSecret: false },
  /** Ceph RGW (16 and later): takes either checksum (tested). */
  ceph: { ...SAFE, deleteChecksum: 'crc32', unknownKeyLooksLikeWrongSecret: false },
  /** OpenStack Swift with the s3api middleware (OVH and other OpenStack clouds; tested). */
  swift: { ...SAFE, deleteChecksum: 'content-md5', unknownKeyLooksLikeWrongSecret: true },
  /** Backblaze B2: rejects the SDK's checksum headers on DeleteObjects (aws-sdk-js-v3 #6819). */
  b2: { ...SAFE, deleteChecksum: 'content-md5' },
};

/** The quirks of a provider (default `other`), with single switches overridden (tests, embedding). */
export function s3Quirks(provider: S3Provider = 'other', overrides: Partial<S3Quirks> = {}): S3Quirks {
  return { ...S3_QUIRKS[provider], ...overrides };
}

export function isS3Provider(name: string): name is S3Provider {
  return (S3_PROVIDERS as readonly string[]).includes(name);
}

/**
 * Makes a DeleteObjects request carry the checksum `quirks` ask for. For `content-md5` a step
 * right after the SDK's flexible-checksum middleware removes what that added (the checksum
 * header and the algorithm header) and sets Content-MD5 of the XML body instead; the request
 * is signed after this step, so the signature covers the header that is sent.
 */
export function withDeleteChecksum<C extends DeleteObjectsCommand>(command: C, quirks: S3Quirks): C {
  if (quirks.deleteChecksum !== 'content-md5') return command;
  const step: BuildMiddleware<DeleteObjectsCommandInput, DeleteObjectsCommandOutput> = (next) => async (args) => {
    const request = args.request as { headers?: Record<string, string>; body?: unknown };
    if (request.headers && (typeof request.body === 'string' || Buffer.isBuffer(request.body) || request.body instanceof Uint8Array)) {
      for (const name of Object.keys(request.headers)) {
        if (/^x-amz-(checksum-|sdk-checksum-algorithm$)|^content-md5$/i.test(name)) delete request.headers[name];
      }
      request.headers['content-md5'] = createHash('md5')
        .update(request.body as string | Uint8Array)
        .digest('base64');
    }
    return next(args);
  };
  command.middlewareStack.addRelativeTo(step, { relation: 'after', toMiddleware: 'flexibleChecksumsMiddleware', name: 'zfsOffsiteDeleteContentMd5', override: true });
  return command;
}
