import { createHash } from 'node:crypto';
import { type Backend, isNotFound, type ObjectInfo } from '../../storage/backend.js';

/**
 * Whether a stored chunk object still holds the exact frame a run uploaded, before a resume
 * reuses it instead of uploading it again. A size alone proves nothing (a chunk damaged in
 * place keeps its size), so:
 *   - where the server keeps a content fingerprint (S3: the ETag of the one PutObject, recorded
 *     in the journal right after the upload), the fingerprint now listed must be that one;
 *   - otherwise (local directory, SFTP, or a journal written before ETags were recorded) the
 *     object is read back and its SHA-256 compared with the stored SHA-256 the journal holds.
 */
export interface StoredFrame {
  storedSize: number;
  storedSha256: string;
  /** The server's fingerprint of the object as uploaded (S3 ETag), when it gave one. */
  etag?: string;
}

export type StoredProof = { proven: true; by: 'etag' | 'sha256' } | { proven: false; why: string };

/** `listed`: the object as a listing (or head) found it; undefined when it was not found. */
export async function proveStored(backend: Backend, key: string, frame: StoredFrame, listed: ObjectInfo | undefined): Promise<StoredProof> {
  if (!listed) return { proven: false, why: 'the object is missing' };
  if (listed.size !== frame.storedSize) return { proven: false, why: `it has ${listed.size} bytes, ${frame.storedSize} were stored` };
  if (frame.etag !== undefined && listed.etag !== undefined) {
    return listed.etag === frame.etag ? { proven: true, by: 'etag' } : { proven: false, why: `the server's ETag is ${listed.etag}, it was ${frame.etag} after the upload` };
  }
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await backend.load(key, (piece) => {
      hash.update(piece);
      bytes += piece.length;
    });
  } catch (err) {
    if (isNotFound(err)) return { proven: false, why: 'the object is missing' };
    throw err;
  }
  const sha256 = hash.digest('hex');
  if (bytes !== frame.storedSize) return { proven: false, why: `it has ${bytes} bytes, ${frame.storedSize} were stored` };
  return sha256 === frame.storedSha256 ? { proven: true, by: 'sha256' } : { proven: false, why: `its SHA-256 is ${sha256}, ${frame.storedSha256} was stored` };
}
