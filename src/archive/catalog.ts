import { hostname } from 'node:os';
import type { Backend } from '../storage/backend.js';
import { isNotFound } from '../storage/backend.js';
import { OperationalError } from '../util/errors.js';
import { TOOL_VERSION } from '../util/version.js';
import { datasetPath, JOURNAL_NAME, MARKER_KEY, parseManifestKey } from './keys.js';
import { type Manifest, parseManifest } from './manifest.js';

export const ARCHIVE_FORMAT = 'zfs-offsite-archive';
export const ARCHIVE_MAJOR = 1;

/**
 * Reads or creates the archive marker. An archive written by a newer, incompatible
 * version is refused rather than mixed with streams this version cannot describe.
 */
export async function ensureArchiveMarker(backend: Backend): Promise<void> {
  try {
    const marker = JSON.parse((await backend.getBuffer(MARKER_KEY)).toString()) as { format?: string; formatVersion?: string };
    const major = Number(String(marker.formatVersion ?? '').split('.')[0]);
    if (marker.format !== ARCHIVE_FORMAT || major !== ARCHIVE_MAJOR) {
      throw new OperationalError(
        `${backend.location}: ${MARKER_KEY} says format ${marker.format} ${marker.formatVersion}; this version writes ${ARCHIVE_FORMAT} ${ARCHIVE_MAJOR}.x`,
      );
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    const marker = { format: ARCHIVE_FORMAT, formatVersion: `${ARCHIVE_MAJOR}.0`, created: new Date().toISOString(), createdBy: `zfs-offsite ${TOOL_VERSION}`, host: hostname() };
    await backend.put(MARKER_KEY, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`));
  }
}

export interface InProgressStream {
  dataset: string;
  streamId: string;
  modified?: Date;
}

export interface Catalog {
  /** Committed streams, sorted by dataset then stream id (= time order). */
  streams: Manifest[];
  /** Streams with a journal and no manifest: being written, or interrupted. */
  inProgress: InProgressStream[];
}

/** Lists and reads every manifest of the archive, or of one dataset (not its children). */
export async function loadCatalog(backend: Backend, dataset?: string, concurrency = 8): Promise<Catalog> {
  const manifestKeys: string[] = [];
  const journals: InProgressStream[] = [];
  await backend.list(dataset ? `${datasetPath(dataset)}/` : '', (info) => {
    const parsed = parseManifestKey(info.key);
    if (parsed && (!dataset || parsed.dataset === dataset)) manifestKeys.push(info.key);
    if (info.key.endsWith(`/${JOURNAL_NAME}`)) {
      const asManifest = parseManifestKey(info.key.replace(/journal\.json$/, 'manifest.json'));
      if (asManifest && (!dataset || asManifest.dataset === dataset)) journals.push({ ...asManifest, modified: info.modified });
    }
  });
  const streams: Manifest[] = [];
  for (let i = 0; i < manifestKeys.length; i += concurrency) {
    const batch = manifestKeys.slice(i, i + concurrency);
    streams.push(...(await Promise.all(batch.map(async (key) => parseManifest(await backend.getBuffer(key), `${backend.location}/${key}`)))));
  }
  const committed = new Set(streams.map((m) => `${m.dataset}\0${m.streamId}`));
  streams.sort((a, b) => a.dataset.localeCompare(b.dataset) || a.streamId.localeCompare(b.streamId));
  return { streams, inProgress: journals.filter((j) => !committed.has(`${j.dataset}\0${j.streamId}`)) };
}

/** Every snapshot GUID an archived stream leads to, with whether that stream is raw. */
export function archivedSnapshots(streams: readonly Manifest[]): Map<string, { raw: boolean; name: string; streamId: string }> {
  const out = new Map<string, { raw: boolean; name: string; streamId: string }>();
  for (const m of streams) {
    for (const s of m.substreams) {
      out.set(s.toguid, { raw: s.raw, name: s.toname.slice(s.toname.indexOf('@') + 1), streamId: m.streamId });
    }
  }
  return out;
}
