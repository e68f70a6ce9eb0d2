import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestAttachment, ManifestSummary } from '../archive/format/manifest.js';
import type { RestorePlan } from '../archive/plan/restore-plan.js';
import type { Repository } from '../archive/repository.js';
import { OperationalError } from '../util/errors.js';
import { checkReplaceable, ExclusiveFile } from '../util/exclusive-file.js';

/**
 * `restore --attachments DIR`: the files kept with the streams of the restore (jobs/attachments.ts),
 * read and checked against their manifests (size and SHA-256) BEFORE any is written, then each
 * written as a new file `DIR/NAME` (util/exclusive-file.ts: never through a link or into a FIFO
 * planted there, put in place only when complete). An attachment of the same name in several
 * streams: the newest stream's. A damaged one stops the restore before anything is written or received.
 */

export interface RestoredAttachment {
  name: string;
  size: number;
  sha256: string;
  /** The stream it was kept with. */
  stream: string;
  path: string;
}

/** The attachments to write: of the streams the plan receives (or, when there are none, of the one ending at its target), newest wins. */
export function chosenAttachments(plan: RestorePlan, streams: readonly ManifestSummary[]): { stream: ManifestSummary; attachment: ManifestAttachment }[] {
  const sources = plan.units.length > 0 ? plan.units.map((u) => u.manifest) : streams.filter((m) => m.substreams.some((s) => s.toguid === plan.target.guid));
  const byName = new Map<string, { stream: ManifestSummary; attachment: ManifestAttachment }>();
  for (const stream of sources) for (const attachment of stream.attachments ?? []) byName.set(attachment.name, { stream, attachment });
  return [...byName.values()].sort((a, b) => a.attachment.name.localeCompare(b.attachment.name));
}

/** Checks DIR and every `DIR/NAME` (nothing there, unless `force`) before anything is read or written. */
export function checkAttachmentDir(dir: string, names: readonly string[], force: boolean): void {
  if (!existsSync(dir)) {
    checkReplaceable(dir); // its parent must exist: only DIR itself is created
    return;
  }
  for (const name of names) checkReplaceable(join(dir, name), { force, forceFlag: '--force' });
}

/** Reads and checks every chosen attachment, then writes them; `dryRun`: only says where they would go. */
export async function restoreAttachments(
  repo: Repository,
  dir: string,
  chosen: readonly { stream: ManifestSummary; attachment: ManifestAttachment }[],
  o: { force: boolean; dryRun: boolean },
): Promise<RestoredAttachment[]> {
  const described = chosen.map(({ stream, attachment: a }) => ({ name: a.name, size: a.size, sha256: a.sha256, stream: stream.streamId, path: join(dir, a.name) }));
  checkAttachmentDir(
    dir,
    chosen.map((c) => c.attachment.name),
    o.force,
  );
  if (o.dryRun) return described;
  const bodies: Buffer[] = [];
  for (const { stream, attachment: planned } of chosen) {
    // The plan's summaries may come from the stream index (a cache): the entry read is the manifest's.
    const attachment = (await repo.fullManifest(stream)).attachments?.find((a) => a.name === planned.name);
    if (!attachment) throw new OperationalError(`${repo.where(repo.streamPrefix(stream))}: the manifest lists no attachment ${planned.name} (changed since the listing?): run the command again`);
    const read = await repo.readAttachment(stream, attachment);
    if (!('body' in read)) throw new OperationalError(`${read.object}: ${read.message}: nothing was written or received`, { kind: read.kind, context: { object: read.object } });
    bodies.push(read.body);
  }
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
  for (const [k, d] of described.entries()) {
    const file = ExclusiveFile.create(d.path, { force: o.force, forceFlag: '--force' });
    try {
      const sink = file.stream();
      sink.write(bodies[k]!);
      await file.commit();
    } catch (err) {
      await file.discard();
      throw err;
    }
  }
  return described;
}
