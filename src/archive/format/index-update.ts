import type { Backend, ObjectInfo } from '../../storage/backend.js';
import { loadCatalog, readManifest } from './catalog.js';
import { MANIFEST_NAME, SUMS_NAME } from './keys.js';
import type { Manifest } from './manifest.js';
import { entryOf, readIndexHead, recordIndexEntry, writeIndex } from './stream-index.js';

/**
 * The writers' updates of a dataset's stream index (format/stream-index.ts, docs/archive-format.md
 * "Stream index"), under the dataset's lease, best effort: the manifests stay the truth.
 */

/**
 * Rebuilds the index of `dataset` from one listing of it (prune): entries the listing proves kept,
 * the other manifests read — each stream's SHA256SUMS stamped once its content is found to be
 * what the manifest's chunks give (format/catalog.ts loadCatalog `sums`) — and written only when
 * it differs from the stored one; every segment removed when no committed stream is left.
 */
export async function rebuildIndex(backend: Backend, dataset: string): Promise<void> {
  const fresh = (await loadCatalog(backend, dataset, { sums: true })).indexes.get(dataset);
  if (!fresh) await writeIndex(backend, dataset, new Map());
  else if (fresh.stale) await writeIndex(backend, dataset, fresh.index);
}

/**
 * After a commit: the entry of the stream just committed, without listing the dataset (which
 * grows with its history): a listing of the stream's own directory, its manifest, and the newest
 * index's head read and rewritten (stream-index.ts recordIndexEntry). Its SHA256SUMS, written
 * by this writer from the manifest's chunks, is stamped as listed. `stored`: the manifest the
 * writer just put (checked by the server), used instead of reading it back. Without a usable
 * newest segment the index is rebuilt first (once: the dataset listed, every manifest read).
 */
export async function recordCommit(backend: Backend, stream: { dataset: string; streamId: string; prefix: string }, stored?: Manifest): Promise<void> {
  const head = await readIndexHead(backend, stream.dataset);
  const found = new Map<string, ObjectInfo>();
  await backend.list(stream.prefix, (o) => found.set(o.key.slice(stream.prefix.length), o));
  const listed = found.get(MANIFEST_NAME);
  const read = !listed ? undefined : stored ? { manifest: stored } : await readManifest(backend, stream);
  const entry = listed && read && 'manifest' in read ? entryOf(read.manifest, listed, found.get(SUMS_NAME)) : undefined;
  if (head) return recordIndexEntry(backend, stream.dataset, head, stream.streamId, entry);
  const index = (await loadCatalog(backend, stream.dataset, { sums: true })).indexes.get(stream.dataset)?.index ?? new Map();
  if (entry) index.set(stream.streamId, entry);
  else index.delete(stream.streamId);
  await writeIndex(backend, stream.dataset, index);
}
