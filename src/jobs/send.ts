import { archivedSnapshots } from '../archive/format/catalog.js';
import { StreamRejectedError } from '../archive/pipeline/writer.js';
import { Repository } from '../archive/repository.js';
import type { StreamSummary } from '../stream/validator.js';
import type { ByteSource } from '../util/byte-source.js';
import { InterruptedError } from '../util/interrupted.js';
import { teeSource } from '../util/tee-source.js';
import { localSnapshotTxgs } from '../zfs/snapshot-txgs.js';
import { type SendHandle, type SnapshotInfo, ZfsCommandError } from '../zfs/zfs.js';
import { archiveStream, showsProgress } from './archive-stream.js';
import { archivedStreams, type UploadPlan } from './dry-run.js';
import { protectBase } from './protect.js';
import { chooseBase, type SendCommon, type SendOptions, type SendResult, type SendSource, type SendTarget, sendArguments, sendEstimate, sendSource } from './send-plan.js';

export type { SendCommon, SendOptions, SendResult, SendSource, SendTarget } from './send-plan.js';
export { sendSource } from './send-plan.js';

/**
 * `send` and `run`: a snapshot into one target or several. Targets that need the same stream
 * (the same base, raw-ness and flags) share one `zfs send`: its bytes are read once and fed to
 * every target's writer (util/tee-source.ts: the slowest target sets the pace); targets that
 * need different bases get a send each, one after the other. A target that fails, fails alone.
 */

/** --dry-run: the base the planner chooses and the zfs send it would run; nothing is written to the target. */
export async function planSend(o: SendOptions): Promise<UploadPlan> {
  const source = await sendSource(o);
  const { dataset, target } = source;
  const raw = o.raw ?? source.encrypted;
  const { exists, streams } = await archivedStreams(o.backend, dataset);
  const archived = archivedSnapshots(streams);
  const targetId = exists ? await new Repository(o.backend).targetId() : undefined;
  const { base } = await chooseBase(o, o, source, raw, targetId);
  const args = sendArguments(o, raw, base);
  const estimate = await sendEstimate(o, args);
  return {
    dryRun: true,
    dataset,
    snapshot: o.snapshot,
    kind: base ? 'incremental' : 'full',
    ...(base ? { base: { name: base.name, guid: base.guid.toString(), inArchive: archived.has(base.guid.toString()) } } : {}),
    raw,
    archiveExists: exists,
    alreadyArchived: archived.has(target.guid.toString()),
    sendArgs: ['zfs', 'send', ...args],
    ...(estimate !== undefined ? { bytes: estimate, estimated: true } : {}),
  };
}

/** Plans the `zfs send` (raw?, which base?) and archives its stream in one target. */
export async function sendSnapshot(o: SendOptions): Promise<SendResult> {
  const source = await sendSource(o);
  const repo = new Repository(o.backend);
  await repo.check();
  // Live from the choice of the base to the commit (archive/lease.ts): no prune takes the base away, or
  // the upload for abandoned, meanwhile.
  const taken = o.lease ? undefined : await repo.lease({ dataset: source.dataset, log: o.log, localLock: false });
  try {
    const [outcome] = await sendToTargets(o, source, [{ ...o, lease: o.lease ?? taken }], { everyTarget: true });
    if ('error' in outcome!) throw outcome.error;
    return outcome!.result;
  } finally {
    await taken?.release();
  }
}

/** How one target's send ended: its result, or its error and the step it failed at. */
export type TargetOutcome = { result: SendResult } | { error: unknown; step: 'plan' | 'send' | 'protect' };

interface Planned {
  index: number;
  t: SendTarget;
  targetId: string;
  raw: boolean;
  base?: SnapshotInfo;
  archived: ReadonlyMap<string, unknown>;
  args: string[];
}

/**
 * Archives `source` in every target; one outcome per target, in order. `everyTarget`: these are
 * all the targets of the dataset (then, when every one succeeded, each has a bookmark of its own
 * and the legacy bookmarks its archive holds may go: plan/bookmarks.ts). An interruption
 * (InterruptedError) is thrown once every writer has stopped.
 */
export async function sendToTargets(o: SendCommon, source: SendSource, targets: SendTarget[], options: { everyTarget: boolean }): Promise<TargetOutcome[]> {
  const outcomes: TargetOutcome[] = new Array(targets.length);
  const planned: Planned[] = [];
  for (const [index, t] of targets.entries()) {
    try {
      const repo = new Repository(t.backend);
      await repo.check();
      const targetId = await repo.ensureMarker();
      const raw = t.raw ?? source.encrypted;
      const { base, archived } = await chooseBase(o, t, source, raw, targetId);
      planned.push({ index, t, targetId, raw, base, archived, args: sendArguments(o, raw, base) });
    } catch (err) {
      if (err instanceof InterruptedError) throw err;
      outcomes[index] = { error: err, step: 'plan' };
    }
  }
  const groups = new Map<string, Planned[]>();
  for (const p of planned) {
    // The same stream: the same flags and a base of the same GUID, whatever its name (each
    // target's own bookmark of one snapshot is one base).
    const key = sendArguments(o, p.raw, p.base && { ...p.base, name: `guid ${p.base.guid}` }).join('\0');
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  let interrupted: InterruptedError | undefined;
  for (const group of groups.values()) {
    if (interrupted) break;
    interrupted = await sendGroup(o, source, group, outcomes);
  }
  if (interrupted) throw interrupted;
  const allSent = options.everyTarget && targets.every((_, i) => outcomes[i] && 'result' in outcomes[i]!);
  for (const p of planned) {
    const outcome = outcomes[p.index];
    if (!outcome || !('result' in outcome) || o.bookmark === false) continue;
    try {
      const legacyRemovable = (b: SnapshotInfo) => allSent && p.archived.has(b.guid.toString());
      outcome.result.bookmark = await protectBase(o.zfs, source.dataset, source.snapshot, p.targetId, legacyRemovable);
    } catch (err) {
      outcomes[p.index] = { error: err, step: 'protect' };
    }
  }
  return outcomes;
}

/** One `zfs send` for the targets of a group; returns the interruption, if one stopped it. */
async function sendGroup(o: SendCommon, source: SendSource, group: Planned[], outcomes: TargetOutcome[]): Promise<InterruptedError | undefined> {
  // The first target's names run the send; the others' bases have the same GUID.
  const { args, base } = group[0]!;
  const where = group.map((p) => p.t.backend.location);
  o.log.info(
    { args: args.join(' '), ...(group.length > 1 ? { targets: where.join(', ') } : {}) },
    `${base ? `incremental from ${base.name}` : 'full stream'}${group.length > 1 ? ` (one zfs send for ${group.length} targets)` : ''}`,
  );
  o.signal?.throwIfAborted();
  const zfsVersion = await o.zfs.version();
  const estimate = group.some((p) => showsProgress(p.t.settings)) ? await sendEstimate(o, args) : undefined;
  const send = o.zfs.send(args);
  const inputs: ByteSource[] = group.length === 1 ? [send.stream] : teeSource(send.stream, group.length);
  const settled = await Promise.allSettled(
    group.map(async (p, i) => {
      try {
        // One progress line on the terminal: the first target's.
        return await archiveOne(o, source, p, args, inputs[i]!, send, zfsVersion, estimate, i === 0);
      } finally {
        // A target that failed (or holds the stream already) holds no other target back.
        if (group.length > 1) inputs[i]!.destroy();
      }
    }),
  );
  // Ended already, or still writing a stream every target had archived before.
  const own = await send.abort();
  let interrupted: InterruptedError | undefined;
  for (const [i, s] of settled.entries()) {
    const p = group[i]!;
    if (s.status === 'fulfilled') {
      outcomes[p.index] = { result: { ...s.value, base: p.base?.name, sendArgs: args, targetId: p.targetId } };
      continue;
    }
    const err = s.reason;
    // A zfs send killed by the same Ctrl-C is not what stopped the run.
    if (err instanceof InterruptedError) interrupted = err;
    // A zfs send failure explains a broken stream better than the stream itself does.
    outcomes[p.index] = { error: own && !(err instanceof InterruptedError) ? own.explained({ outcome: 'nothing was committed' }) : err, step: 'send' };
  }
  return interrupted;
}

async function archiveOne(
  o: SendCommon,
  source: SendSource,
  p: Planned,
  sendArgs: string[],
  input: ByteSource,
  send: SendHandle,
  zfsVersion: string | null,
  estimate: number | undefined,
  progress: boolean,
) {
  const { target, dataset } = source;
  const { base } = p;
  const beforeCommit = async (summary: StreamSummary): Promise<void> => {
    await send.completion.catch((err: unknown) => {
      throw err instanceof ZfsCommandError ? err.explained({ outcome: 'nothing was committed' }) : err;
    });
    const last = summary.substreams[summary.substreams.length - 1];
    if (!last || last.toguid !== target.guid) {
      throw new StreamRejectedError(`stream ends at GUID ${last?.toguid}, but ${o.snapshot} has GUID ${target.guid}; nothing was committed`);
    }
    if (base && summary.substreams[0]?.fromguid !== base.guid) {
      throw new StreamRejectedError(`stream starts from GUID ${summary.substreams[0]?.fromguid}, expected ${base.name} (${base.guid}); nothing was committed`);
    }
  };
  return archiveStream({
    backend: p.t.backend,
    input,
    pool: o.pool,
    settings: progress ? p.t.settings : { ...p.t.settings, progress: false },
    log: o.log,
    dataset,
    sendArgs: ['zfs', 'send', ...sendArgs],
    zfsVersion,
    fromName: async () => (base ? base.name.slice(base.name.search(/[@#]/) + (base.kind === 'snapshot' ? 1 : 0)) : ''),
    beforeCommit,
    lease: p.t.lease,
    totalBytes: estimate,
    estimate: true,
    signal: o.signal,
    attachments: o.attachments,
    snapshotTxgs: async (summary) => {
      const txgs = await localSnapshotTxgs(o.zfs, summary);
      // What zfs said when the send was planned, should the listing have failed since.
      for (const s of [target, base]) if (s && !txgs.has(s.guid.toString())) txgs.set(s.guid.toString(), s.createtxg.toString());
      return txgs;
    },
  });
}
