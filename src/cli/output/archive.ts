import type { ArchiveStreamResult } from '../../jobs/archive-stream.js';
import { formatBytes, formatRatio } from '../../util/bytes.js';

/** One line saying what was archived (put, send), where, and how fast. */
export function archiveSummaryLine(result: ArchiveStreamResult, location: string): string {
  const where = `${location}/${result.dataset}/${result.streamId}`;
  if (result.status === 'already-archived' || !result.manifest) return `already archived: ${where} (nothing uploaded)`;
  const m = result.manifest;
  const what = `${m.dataset}@${m.to.name}`;
  const kind = m.kind === 'full' ? 'full' : `incremental from ${m.from?.name || `guid ${m.from?.guid}`}`;
  const rate = result.seconds > 0 ? m.rawBytes / result.seconds : 0;
  return (
    `archived ${what} (${kind}${m.raw ? ', raw' : ''}) → ${where}: ${formatBytes(m.rawBytes)} stream, ` +
    `${formatBytes(m.storedBytes)} stored (${formatRatio(m.storedBytes, m.rawBytes)}), ${m.chunks.length} chunk${m.chunks.length === 1 ? '' : 's'}, ` +
    `${result.seconds.toFixed(1)} s (${formatBytes(rate)}/s)` +
    (result.chunksReused > 0 ? `; resumed: ${result.chunksReused} chunk(s) of an interrupted upload reused, ${formatBytes(result.uploadedBytes)} uploaded` : '')
  );
}
