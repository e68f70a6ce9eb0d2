import type { RestoreResult } from '../../jobs/restore.js';

/** The human form of a plan (`--dry-run`, and the summary). */
export function describePlan(result: RestoreResult, mode: 'dry-run' | 'done'): string {
  const { plan } = result;
  const lines: string[] = [];
  const target = `${plan.dataset}@${plan.target.name} (guid ${plan.target.guid})`;
  if (plan.units.length === 0) return `${result.destination} already holds ${target}: nothing to restore\n`;
  lines.push(`${mode === 'dry-run' ? 'would restore' : 'restored'} ${target} into ${result.destination}${plan.raw ? ' (raw)' : ''}:`);
  if (plan.startsAfter) lines.push(`  starting after snapshot guid ${plan.startsAfter.guid}, which ${result.destination} already holds`);
  for (const [k, u] of plan.units.entries()) {
    const part = u.whole ? '' : ` (substreams ${u.first + 1}-${u.last + 1} of ${u.manifest.substreams.length})`;
    lines.push(`  ${k + 1}. ${u.manifest.kind} ${u.toname} ← ${u.manifest.streamId}${part}, ${u.bytes} bytes`);
  }
  if (mode === 'done') lines.push(`  ${result.bytes} bytes in ${result.seconds.toFixed(1)} s`);
  if (result.files) lines.push(`${mode === 'dry-run' ? 'would write' : 'wrote'} one file per stream; receive them in this order:`, ...result.files.map((f) => `  ${f.receive}`));
  else if (plan.units.length > 1 && result.into === undefined) {
    // Kept as it was (the plan's bytes in order); one `zfs receive` reads one send stream only.
    lines.push(`  ${result.destination} holds the ${plan.units.length} streams one after another, and one zfs receive reads only the first: use --output-dir DIR for one file per stream`);
  }
  return `${lines.join('\n')}\n`;
}

/** The attachments `restore --attachments DIR` wrote (or would write), one line each. */
export function describeAttachments(result: RestoreResult, mode: 'dry-run' | 'done'): string {
  const list = result.attachments ?? [];
  if (list.length === 0) return 'no attachments kept with these streams\n';
  return list.map((a) => `${mode === 'dry-run' ? 'would write' : 'wrote'} attachment ${a.name} (${a.size} bytes, of ${a.stream}, SHA-256 checked) to ${a.path}\n`).join('');
}

/** The machine-readable plan and result (`--json`). */
export function restoreJson(result: RestoreResult): object {
  const { plan } = result;
  return {
    dataset: plan.dataset,
    destination: result.destination,
    ...(result.files ? { files: result.files } : {}),
    ...(result.attachments ? { attachments: result.attachments } : {}),
    target: plan.target,
    raw: plan.raw,
    startsAfter: plan.startsAfter,
    done: result.done,
    bytes: result.bytes,
    seconds: result.seconds,
    streams: plan.units.map((u) => ({
      streamId: u.manifest.streamId,
      kind: u.manifest.kind,
      substreams: { first: u.first, last: u.last, of: u.manifest.substreams.length },
      whole: u.whole,
      fromguid: u.fromguid,
      toguid: u.toguid,
      toname: u.toname,
      bytes: u.bytes,
    })),
  };
}
