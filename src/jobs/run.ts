import { entryHolds, type ResolvedDatasetConfig } from '../config/config.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { redactText, withoutCredentials } from '../util/redact.js';
import { ping, runHook } from './notify.js';
import { DatasetRun, type DatasetRunResult, type RunOptions } from './run-dataset.js';

/** `zfs-offsite run --config`: the nightly job, per dataset, one failure never stopping the rest. */

export type { DatasetRunResult, RunOptions } from './run-dataset.js';

export interface RunReport {
  config: string;
  dryRun: boolean;
  results: DatasetRunResult[];
  ok: boolean;
}

export async function runNightly(o: RunOptions): Promise<RunReport> {
  const results: DatasetRunResult[] = [];
  // A dry run changes nothing and tells no one: hooks and pings are for real runs only.
  const tell = !o.dryRun;
  if (tell) await ping(o.config.healthcheck, 'start', o.log);
  // One entry's targets (`targets:`) run together: one snapshot, one zfs send where they can share it.
  const entries = new Map<number, ResolvedDatasetConfig[]>();
  for (const cfg of o.config.datasets) entries.set(cfg.entry, [...(entries.get(cfg.entry) ?? []), cfg]);
  for (const cfgs of entries.values()) {
    const cfg = cfgs[0]!;
    // --dataset: an entry that cannot hold it is not even listed (its failure is not this run's).
    if (o.only !== undefined && !entryHolds(cfg, o.only)) continue;
    // The entry's healthcheck_url is one check for all its datasets and targets.
    if (tell) await ping(cfg.healthcheck, 'start', o.log);
    const mine: DatasetRunResult[] = [];
    let names: string[];
    try {
      names = cfg.recursive ? await o.zfs.listDatasets(cfg.name, true) : [cfg.name];
    } catch (err) {
      const failed: DatasetRunResult = { dataset: cfg.name, status: 'failed', step: 'list', message: errorMessage(err), seconds: 0 };
      mine.push(failed);
      if (tell && cfg.onFailure) await runDatasetHook('on_failure', cfg.onFailure, cfg, failed, o);
      names = [];
    }
    for (const name of names) {
      if (o.only !== undefined && name !== o.only) continue;
      o.signal?.throwIfAborted();
      const outcome = await new DatasetRun(o, cfgs, name).execute();
      mine.push(...outcome);
      if (!tell) continue;
      for (const [i, result] of outcome.entries()) {
        const target = cfgs[i]!;
        if (result.status === 'failed' && target.onFailure) await runDatasetHook('on_failure', target.onFailure, target, result, o);
        if (result.status === 'ok' && target.onSuccess) await runDatasetHook('on_success', target.onSuccess, target, result, o);
      }
    }
    if (tell) await ping(cfg.healthcheck, mine.every((r) => r.status !== 'failed') ? 'success' : 'failure', o.log);
    results.push(...mine);
  }
  if (o.only !== undefined && results.length === 0) throw new UsageError(`dataset ${o.only} is not in ${o.config.file}`);
  const ok = results.every((r) => r.status !== 'failed');
  if (tell) await ping(o.config.healthcheck, ok ? 'success' : 'failure', o.log);
  return { config: o.config.file, dryRun: o.dryRun, results, ok };
}

/** on_failure, on_success: the configured command, told what happened through its environment. */
async function runDatasetHook(name: string, argv: string[], cfg: ResolvedDatasetConfig, result: DatasetRunResult, o: RunOptions): Promise<void> {
  const env = {
    ZFS_OFFSITE_DATASET: result.dataset,
    ZFS_OFFSITE_STEP: result.step ?? '',
    // The hook's output usually ends in mail: no password of a URL reaches it (src/util/redact.ts).
    ZFS_OFFSITE_ERROR: redactText(result.message ?? ''),
    ZFS_OFFSITE_TARGET: withoutCredentials(cfg.target),
    ZFS_OFFSITE_CONFIG: o.config.file,
    ZFS_OFFSITE_SNAPSHOT: result.snapshot ?? '',
  };
  await runHook(name, argv, env, o.log, result.dataset);
}
