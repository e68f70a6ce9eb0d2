import { spawn } from 'node:child_process';
import { entryHolds, type ResolvedDatasetConfig } from '../config/config.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { redactText, redactUrl } from '../util/redact.js';
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
  // One entry's targets (`targets:`) run together: one snapshot, one zfs send where they can share it.
  const entries = new Map<number, ResolvedDatasetConfig[]>();
  for (const cfg of o.config.datasets) entries.set(cfg.entry, [...(entries.get(cfg.entry) ?? []), cfg]);
  for (const cfgs of entries.values()) {
    const cfg = cfgs[0]!;
    // --dataset: an entry that cannot hold it is not even listed (its failure is not this run's).
    if (o.only !== undefined && !entryHolds(cfg, o.only)) continue;
    let names: string[];
    try {
      names = cfg.recursive ? await o.zfs.listDatasets(cfg.name, true) : [cfg.name];
    } catch (err) {
      results.push({ dataset: cfg.name, status: 'failed', step: 'list', message: errorMessage(err), seconds: 0 });
      continue;
    }
    for (const name of names) {
      if (o.only !== undefined && name !== o.only) continue;
      o.signal?.throwIfAborted();
      const outcome = await new DatasetRun(o, cfgs, name).execute();
      results.push(...outcome);
      // A dry run changes nothing and tells no one: hooks are for real runs only.
      for (const [i, result] of outcome.entries()) if (result.status === 'failed' && cfgs[i]!.onFailure && !o.dryRun) await runOnFailure(cfgs[i]!, result, o);
    }
  }
  if (o.only !== undefined && results.length === 0) throw new UsageError(`dataset ${o.only} is not in ${o.config.file}`);
  return { config: o.config.file, dryRun: o.dryRun, results, ok: results.every((r) => r.status !== 'failed') };
}

/** on_failure: the configured command, told what failed through its environment. */
async function runOnFailure(cfg: ResolvedDatasetConfig, result: DatasetRunResult, o: RunOptions): Promise<void> {
  const [cmd, ...args] = cfg.onFailure!;
  const env = {
    ...process.env,
    ZFS_OFFSITE_DATASET: result.dataset,
    ZFS_OFFSITE_STEP: result.step ?? '',
    // The hook's output usually ends in mail: no password of a URL reaches it (src/util/redact.ts).
    ZFS_OFFSITE_ERROR: redactText(result.message ?? ''),
    ZFS_OFFSITE_TARGET: redactUrl(cfg.target).replace(/\/\/[^@/]*@/, '//'),
    ZFS_OFFSITE_CONFIG: o.config.file,
  };
  await new Promise<void>((resolve) => {
    const child = spawn(cmd!, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGTERM'), 5 * 60_000);
    child.on('error', (err) => o.log.error({ dataset: result.dataset, err: err.message }, 'on_failure could not be run'));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) o.log.error({ dataset: result.dataset, code }, 'on_failure exited with an error');
      resolve();
    });
  });
}
