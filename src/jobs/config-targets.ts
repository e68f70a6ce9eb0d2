import { randomInt } from 'node:crypto';
import type { Problem } from '../archive/plan/audit.js';
import { Repository } from '../archive/repository.js';
import { datasetSettings, entryFor, type ResolvedDatasetConfig, type ZfsOffsiteConfig } from '../config/config.js';
import type { SettingValues } from '../settings/table.js';
import type { Backend } from '../storage/backend.js';
import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { closest } from '../util/suggest.js';
import { type ListedDataset, listArchive } from './list.js';
import { type HeldLock, type PruneReport, pruneArchive } from './prune.js';
import { type DatasetStatus, datasetStatuses, notArchived } from './status.js';
import { type VerifyOptions, type VerifyReport, verifyArchive } from './verify.js';

/**
 * `list`, `verify` and `prune` with `--config FILE [--dataset NAME]`: the datasets of a `run`
 * config on their own targets, opened with their entries' settings as `run` opens them (restore
 * takes one entry: configEntry). Datasets that share a target and its settings are one group, so
 * a target is opened once. An archived dataset belongs to the entry config.ts `entryFor` gives it
 * (`tank/home/alice` of its own, not the recursive `tank/home` above it), so none is shown twice.
 * An entry with several targets (`targets:`) is one dataset per target: each target is its own
 * group, its own archive; `restore --config` takes the entry's first target.
 */

/** One config dataset to act on: an entry's name, or the `--dataset` NAME it holds. */
export interface ConfigDataset {
  name: string;
  entry: ResolvedDatasetConfig;
  /** Its descendants too (a recursive entry). */
  children: boolean;
  /** Named by `--dataset`: absent from the archive, it is an error, not a dataset not archived yet. */
  named: boolean;
}

export interface ConfigTarget {
  target: string;
  settings: SettingValues;
  datasets: ConfigDataset[];
}

/** Opens a group's target with its settings (the CLI's storage/open.ts call). */
export type OpenTarget = (group: ConfigTarget) => Promise<Backend>;

/** The entry that holds `dataset`, else a UsageError naming the config's datasets with a did-you-mean. */
export function configEntry(config: ZfsOffsiteConfig, dataset: string): ResolvedDatasetConfig {
  const entry = entryFor(config, dataset);
  if (entry) return entry;
  const names = [...new Set(config.datasets.map((d) => d.name))];
  const guess = closest(dataset, names);
  return fail(`dataset ${dataset} is not in ${config.file}${guess ? ` — did you mean ${guess}?` : ''} (it configures: ${names.join(', ')})`, dataset);
}

function fail(message: string, dataset: string): never {
  throw new UsageError(message, { kind: 'unknown-dataset', context: { dataset } });
}

/**
 * The config's datasets (or the one `only` names) grouped by target and settings; `overrides`
 * (setting flags given on the command line) replace the config's values for every target.
 */
export function configTargets(config: ZfsOffsiteConfig, only: string | undefined, overrides: SettingValues): ConfigTarget[] {
  const named = only === undefined ? undefined : configEntry(config, only);
  const chosen: ConfigDataset[] =
    only === undefined || named === undefined
      ? config.datasets.map((entry) => ({ name: entry.name, entry, children: entry.recursive, named: false }))
      : // Every target of the entry that holds it (`targets:`): each is listed, verified, pruned.
        config.datasets.filter((entry) => entry.entry === named.entry).map((entry) => ({ name: only, entry, children: named.recursive, named: true }));
  const groups = new Map<string, ConfigTarget>();
  for (const d of chosen) {
    const settings = { ...datasetSettings(d.entry), ...overrides } as SettingValues;
    const key = JSON.stringify([d.entry.target, Object.entries(settings).sort(([a], [b]) => a.localeCompare(b))]);
    const group = groups.get(key) ?? { target: d.entry.target, settings, datasets: [] };
    group.datasets.push(d);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/** Whether an archived dataset is one of `d`'s: under its name, and not another entry's. */
export function owns(config: ZfsOffsiteConfig, d: ConfigDataset, archived: string): boolean {
  const under = archived === d.name || (d.children && archived.startsWith(`${d.name}/`));
  return under && entryFor(config, archived)?.entry === d.entry.entry;
}

/** Runs `fn` on each group's open target, closing it whatever happens. */
async function eachTarget<T>(groups: ConfigTarget[], open: OpenTarget, fn: (backend: Backend, group: ConfigTarget) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (const group of groups) {
    const backend = await open(group);
    try {
      out.push(await fn(backend, group));
    } finally {
      await backend.close();
    }
  }
  return out;
}

function isUnknownDataset(err: unknown): boolean {
  return err instanceof UsageError && err.kind === 'unknown-dataset';
}

export interface ConfigListing {
  target: string;
  datasets: ListedDataset[];
  /** Datasets of the config its target does not hold yet (no run has archived them). */
  notArchived: string[];
}

export async function listConfig(config: ZfsOffsiteConfig, groups: ConfigTarget[], open: OpenTarget, log: Logger): Promise<ConfigListing[]> {
  return eachTarget(groups, open, async (backend, group) => {
    const section: ConfigListing = { target: backend.location, datasets: [], notArchived: [] };
    for (const d of group.datasets) {
      let listed: ListedDataset[];
      try {
        listed = await listArchive(backend, d.name, log);
      } catch (err) {
        if (d.named || !isUnknownDataset(err)) throw err;
        section.notArchived.push(d.name);
        continue;
      }
      section.datasets.push(...listed.filter((l) => owns(config, d, l.dataset)));
    }
    return section;
  });
}

/**
 * `status --config`: each dataset of the config on its target, its freshness limit `maxAgeMs`
 * gives (the flag typed, else the entry's max_age:, else the default); a dataset the target does
 * not hold at all is `not-archived` (CRITICAL), never skipped.
 */
export async function statusConfig(config: ZfsOffsiteConfig, groups: ConfigTarget[], open: OpenTarget, o: { log: Logger; maxAgeMs(dataset: string): number; now: Date }): Promise<DatasetStatus[]> {
  const sections = await eachTarget(groups, open, async (backend, group) => {
    const out: DatasetStatus[] = [];
    for (const d of group.datasets) {
      try {
        out.push(...(await datasetStatuses({ backend, log: o.log, dataset: d.name, keep: (name) => owns(config, d, name), maxAgeMs: o.maxAgeMs, now: o.now })));
      } catch (err) {
        if (d.named || !isUnknownDataset(err)) throw err;
        out.push(notArchived(d.name, backend.location, o.maxAgeMs(d.name), `configured in ${config.file} (${d.entry.where}) but not in the archive: no run has archived it there yet`));
      }
    }
    return out;
  });
  return sections.flat();
}

/** verify's options, but the target and dataset come from the config. */
export type ConfigVerifyOptions = Omit<VerifyOptions, 'backend' | 'dataset'>;

/** Every target's report, and their problems in one list, each naming its target (for monitors). */
export interface ConfigVerifyReport {
  config: string;
  mode: VerifyReport['mode'];
  seed?: number;
  targets: VerifyReport[];
  problems: (Problem & { target: string })[];
  seconds: number;
}

export async function verifyConfig(config: ZfsOffsiteConfig, groups: ConfigTarget[], open: OpenTarget, o: ConfigVerifyOptions): Promise<ConfigVerifyReport> {
  const started = Date.now();
  // One seed for every target: `--seed N` repeats the whole run.
  const seed = o.sample ? (o.seed ?? randomInt(2 ** 31)) : undefined;
  const mode = o.sample ? 'sampled' : o.deep ? 'deep' : 'quick';
  const targets = await eachTarget(groups, open, async (backend, group) => {
    const merged: VerifyReport = { target: backend.location, mode, seed, datasets: [], problems: [], sampledObjects: o.sample ? [] : undefined, seconds: 0 };
    for (const d of group.datasets) {
      let report: VerifyReport;
      try {
        report = await verifyArchive({ ...o, backend, dataset: d.name, seed });
      } catch (err) {
        if (d.named || !isUnknownDataset(err)) throw err;
        merged.problems.push({
          kind: 'not-archived',
          dataset: d.name,
          message: `configured in ${config.file} (${d.entry.where}) but not in the archive at ${backend.location}: no run has archived it there yet`,
        });
        continue;
      }
      merged.datasets.push(...report.datasets.filter((r) => owns(config, d, r.dataset)));
      merged.problems.push(...report.problems.filter((p) => owns(config, d, p.dataset)));
      merged.sampledObjects?.push(...(report.sampledObjects ?? []));
      merged.seconds += report.seconds;
    }
    return merged;
  });
  const problems = targets.flatMap((t) => t.problems.map((p) => ({ target: t.target, ...p })));
  return { config: config.file, mode, seed, targets, problems, seconds: (Date.now() - started) / 1000 };
}

export interface ConfigPruneOptions {
  log: Logger;
  staleAfterMs: number;
  dryRun: boolean;
  lockDataset(dataset: string, backend: Backend): Promise<HeldLock>;
}

export interface ConfigPruneReport {
  config: string;
  dryRun: boolean;
  /** One per dataset entry (its policy) and target; a recursive entry's archived descendants in one. */
  reports: PruneReport[];
  /** Datasets of the config not pruned, and why (keep: false, not archived yet). */
  skipped: { target: string; dataset: string; reason: string }[];
}

/** Prunes each dataset of the config on its target by its entry's `keep:`, as `run` does after a send. */
export async function pruneConfig(config: ZfsOffsiteConfig, groups: ConfigTarget[], open: OpenTarget, o: ConfigPruneOptions): Promise<ConfigPruneReport> {
  const out: ConfigPruneReport = { config: config.file, dryRun: o.dryRun, reports: [], skipped: [] };
  await eachTarget(groups, open, async (backend, group) => {
    const repo = await Repository.open(backend);
    const present = await repo.datasets();
    for (const d of group.datasets) {
      const policy = d.entry.keep;
      if (!policy) {
        if (d.named) throw new UsageError(`${d.name} is never pruned: its entry ${d.entry.where} in ${config.file} has keep: false or no keep (nor has defaults)`);
        out.skipped.push({ target: backend.location, dataset: d.name, reason: 'keep: false (never pruned)' });
        continue;
      }
      const mine = present.filter((name) => owns(config, d, name));
      if (mine.length === 0) {
        if (d.named) throw await repo.unknownDataset(d.name);
        out.skipped.push({ target: backend.location, dataset: d.name, reason: 'not archived yet' });
        continue;
      }
      let merged: PruneReport | undefined;
      for (const dataset of mine) {
        const report = await pruneArchive({ backend, log: o.log, dataset, policy, staleAfterMs: o.staleAfterMs, dryRun: o.dryRun, lockDataset: (ds) => o.lockDataset(ds, backend) });
        merged = merged ? mergePrune(merged, report) : report;
      }
      out.reports.push(merged!);
    }
  });
  return out;
}

function mergePrune(a: PruneReport, b: PruneReport): PruneReport {
  return {
    ...a,
    datasets: [...a.datasets, ...b.datasets],
    incompleteUploads: a.incompleteUploads === null && b.incompleteUploads === null ? null : (a.incompleteUploads ?? 0) + (b.incompleteUploads ?? 0),
    deletedStreams: a.deletedStreams + b.deletedStreams,
    deletedObjects: a.deletedObjects + b.deletedObjects,
    deletedBytes: a.deletedBytes + b.deletedBytes,
    seconds: a.seconds + b.seconds,
  };
}
