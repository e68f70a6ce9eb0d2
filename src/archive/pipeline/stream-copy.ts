import { createHash } from 'node:crypto';
import type { Backend, ObjectInfo, ObjectRetention } from '../../storage/backend.js';
import { isNotFound } from '../../storage/backend.js';
import { putWhole } from '../../storage/bodies.js';
import { errorMessage, OperationalError } from '../../util/errors.js';
import { interruptionOf } from '../../util/interrupted.js';
import { Semaphore } from '../../util/semaphore.js';
import { MANIFEST_NAME, streamPrefix, SUMS_NAME } from '../format/keys.js';
import { type Manifest, manifestPieces, sha256sumsPieces } from '../format/manifest.js';
import { proveStored } from '../format/stored-proof.js';

/**
 * One committed stream copied from one archive to another (`zfs-offsite copy`, jobs/copy.ts):
 * every object of the stream directory the manifest names — chunks, then attachments — read
 * from the source, its size and SHA-256 checked against the source's manifest, stored in the
 * target with that SHA-256 (S3 checks it on arrival) and its size checked there; then
 * SHA256SUMS and the manifest, LAST, as the writer commits (docs/archive-format.md, "Commit
 * protocol"). Objects are copied as stored (zstd frames as they are): nothing is recompressed.
 *
 * Resumable without a journal: an object the target already holds under its key, with the size
 * and the SHA-256 the manifest names (stored-proof.ts: read back and hashed), is kept. Memory:
 * `parallel` objects in flight at most, each read whole (a chunk object: ≤ the chunk size).
 */

/** An object of the source stream is not the one its manifest names: nothing of the stream is committed. */
export class CopyDamagedError extends OperationalError {
  override name = 'CopyDamagedError';
  declare readonly kind: 'copy-damaged';
  constructor(
    message: string,
    readonly object: string,
  ) {
    super(message, { kind: 'copy-damaged', context: { object } });
  }
}

export interface StreamCopyOptions {
  source: Backend;
  target: Backend;
  manifest: Manifest;
  parallel: number;
  /** Last check before the commit (the target's lease still held). */
  beforeCommit(): Promise<void>;
  onObject?(copiedBytes: number): void;
  /** Ctrl-C / SIGTERM: no new object is started; those under way finish. */
  signal?: AbortSignal;
  /** Object Lock (`copy --object-lock`): every object stored is written with this retention, as the writer's (pipeline/writer.ts). */
  retention?: () => ObjectRetention;
}

export interface StreamCopyResult {
  /** Objects (chunks and attachments) read from the source and stored in the target by this run. */
  copied: number;
  /** Objects the target held already (an interrupted copy), proven by their SHA-256. */
  reused: number;
  copiedBytes: number;
}

interface StoredObject {
  key: string;
  size: number;
  sha256: string;
  /** How the object is named in messages: `chunk 000003.zst`, `attachment vmadm.json`. */
  what: string;
}

/** The objects of a stream beside its manifest and SHA256SUMS, as the manifest names them. */
export function streamObjects(m: Manifest): StoredObject[] {
  return [
    ...m.chunks.map((c) => ({ key: c.key, size: c.storedSize, sha256: c.storedSha256, what: `chunk ${c.key}` })),
    ...(m.attachments ?? []).map((a) => ({ key: a.key, size: a.size, sha256: a.sha256, what: `attachment ${a.name}` })),
  ];
}

export async function copyStream(o: StreamCopyOptions): Promise<StreamCopyResult> {
  const m = o.manifest;
  const prefix = streamPrefix(m.dataset, m.streamId);
  const listed = new Map<string, ObjectInfo>();
  await o.target.list(prefix, (info) => listed.set(info.key.slice(prefix.length), info));
  const result: StreamCopyResult = { copied: 0, reused: 0, copiedBytes: 0 };
  const slots = new Semaphore(Math.max(1, o.parallel));
  let failure: unknown;
  const running: Promise<void>[] = [];
  for (const obj of streamObjects(m)) {
    await slots.acquire();
    if (failure === undefined && interruptionOf(o.signal)) failure = interruptionOf(o.signal);
    if (failure !== undefined) {
      slots.release();
      break;
    }
    running.push(
      copyObject(o, prefix, obj, listed.get(obj.key))
        .then((copied) => {
          if (copied === 0) result.reused++;
          else {
            result.copied++;
            result.copiedBytes += copied;
            o.onObject?.(copied);
          }
        })
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => slots.release()),
    );
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
  // Objects the stream does not use (a journal of an interrupted put, leftovers of another
  // length): they must not outlive the commit, as the writer's (pipeline/writer.ts proveComplete).
  const wanted = new Set([MANIFEST_NAME, SUMS_NAME, ...streamObjects(m).map((x) => x.key)]);
  const strays = [...listed.keys()].filter((name) => !wanted.has(name)).map((name) => prefix + name);
  if (strays.length > 0) await o.target.delete(strays);
  await o.beforeCommit();
  await putWhole(o.target, prefix + SUMS_NAME, sha256sumsPieces(m.chunks), o.retention?.());
  await putWhole(o.target, prefix + MANIFEST_NAME, manifestPieces(m), o.retention?.());
  return result;
}

/** Stores one object in the target unless it holds it already; the stored bytes copied (0: kept). */
async function copyObject(o: StreamCopyOptions, prefix: string, obj: StoredObject, listed: ObjectInfo | undefined): Promise<number> {
  const key = prefix + obj.key;
  if (listed && (await proveStored(o.target, key, { storedSize: obj.size, storedSha256: obj.sha256 }, listed)).proven) return 0;
  const where = `${o.source.location}/${key}`;
  let body: Buffer;
  try {
    body = await o.source.getBuffer(key);
  } catch (err) {
    if (isNotFound(err)) throw new CopyDamagedError(`${m(o)}: ${obj.what} is missing at ${where}: nothing of this stream was committed in ${o.target.location}`, where);
    throw err;
  }
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (body.length !== obj.size || sha256 !== obj.sha256) {
    const found = body.length !== obj.size ? `${body.length} bytes, the manifest says ${obj.size}` : `SHA-256 ${sha256}, the manifest says ${obj.sha256}`;
    throw new CopyDamagedError(`${m(o)}: ${obj.what} at ${where} is damaged (${found}): nothing of this stream was committed in ${o.target.location}`, where);
  }
  await o.target.put(key, body, body.length, { sha256, chunkData: true, ...(o.retention ? { retention: o.retention() } : {}) });
  const stored = await o.target.head(key).catch((err: unknown) => {
    throw new OperationalError(`${o.target.location}/${key}: not found right after it was stored (${errorMessage(err)})`);
  });
  if (stored.size !== obj.size) throw new OperationalError(`${o.target.location}/${key}: ${stored.size} bytes right after ${obj.size} were stored`);
  return body.length;
}

function m(o: StreamCopyOptions): string {
  return `stream ${o.manifest.dataset} ${o.manifest.streamId}`;
}
