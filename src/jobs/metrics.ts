import { labelKey, type MetricSample, readMetricValues, writeMetricsFile } from '../util/prometheus.js';
import { withoutCredentials } from '../util/redact.js';
import type { PruneReport } from './prune.js';
import type { DrillReport } from './drill.js';
import type { RunReport } from './run.js';
import type { DatasetStatus } from './status.js';
import type { VerifyReport } from './verify.js';

/**
 * The metrics of `--metrics-file FILE` (run, verify, prune, status, drill), for node_exporter's
 * textfile collector (README, "Monitoring and drills"). Every family is declared once here, so
 * two commands writing two files (one file per command: each write replaces the whole file) give
 * a family the same HELP and TYPE, as the collector requires. Labels: `dataset`, `target` (the
 * target without user name or password) and, on the families every command writes, `command`.
 *
 * All are gauges: a file holds the outcome of the command's last run, not a count since some
 * start, so nothing is a counter (`_total`). Times are Unix seconds (`_timestamp_seconds`):
 * alert on `time() - zfs_offsite_newest_snapshot_timestamp_seconds`, which keeps growing between
 * runs, rather than on the age the file froze at.
 */

export type MetricCommand = 'run' | 'verify' | 'prune' | 'status' | 'drill';

/** name → help; each a gauge. */
export const METRICS = {
  zfs_offsite_last_run_timestamp_seconds: 'When the command last ran for the dataset (Unix time).',
  zfs_offsite_last_success_timestamp_seconds: 'When the command last succeeded for the dataset (Unix time); kept from the previous file while it fails.',
  zfs_offsite_last_run_success: '1 if the last run of the command succeeded for the dataset, else 0.',
  zfs_offsite_duration_seconds: 'How long the last run of the command took for the dataset.',
  zfs_offsite_sent_bytes: 'Bytes of the zfs send stream the last run archived (0 when the snapshot was archived already).',
  zfs_offsite_uploaded_bytes: 'Bytes the last run uploaded to the target (compressed chunks).',
  zfs_offsite_pruned_streams: 'Streams the last prune deleted.',
  zfs_offsite_verify_problems: 'Problems the last verify found (0: clean).',
  zfs_offsite_newest_snapshot_timestamp_seconds: 'Creation time of the newest archived snapshot (Unix time; the commit time where the stream does not say).',
  zfs_offsite_newest_snapshot_age_seconds: 'Age of the newest archived snapshot when the file was written.',
  zfs_offsite_max_age_seconds: 'The age beyond which status calls the dataset stale (max_age).',
  zfs_offsite_fresh: '1 if the newest snapshot is restorable and younger than max_age, else 0.',
  zfs_offsite_chain_length: 'Streams a restore of the newest snapshot receives, its full included.',
  zfs_offsite_streams: 'Committed streams of the dataset in the archive.',
  zfs_offsite_stored_bytes: 'Bytes the dataset takes in the archive (compressed chunks of every stream).',
  zfs_offsite_stream_bytes: 'Bytes of every zfs send stream of the dataset, uncompressed.',
  zfs_offsite_drill_success: '1 if the last restore drill of the dataset passed, else 0.',
} as const;

export type MetricName = keyof typeof METRICS;

/** One gauge sample of a family declared above. */
export function gauge(name: MetricName, labels: Record<string, string>, value: number): MetricSample {
  return { name, help: METRICS[name], type: 'gauge', labels, value };
}

/** A target as a label: no password (util/redact.ts) and no user name, as on_failure's ZFS_OFFSITE_TARGET. */
export function targetLabel(location: string): string {
  return withoutCredentials(location);
}

/** How one dataset came out of one command. */
export interface DatasetOutcome {
  dataset: string;
  /** The target's location (Backend.location), made a label by targetLabel. */
  target: string;
  ok: boolean;
  seconds: number;
  /** The command's own figures for the dataset (sent bytes, problems…). */
  samples?: { name: MetricName; value: number }[];
}

/**
 * The samples of one command's run: per dataset and target, when it ran, whether it succeeded,
 * the last success (now, or carried over from `previousFile` — the file about to be replaced —
 * while it fails), its duration, and its own figures.
 */
export function outcomeSamples(command: MetricCommand, outcomes: readonly DatasetOutcome[], now: Date, previousFile?: string): MetricSample[] {
  const previous = previousFile === undefined ? new Map<string, number>() : readMetricValues(previousFile, 'zfs_offsite_last_success_timestamp_seconds');
  const at = now.getTime() / 1000;
  const out: MetricSample[] = [];
  for (const o of outcomes) {
    const labels = { command, dataset: o.dataset, target: targetLabel(o.target) };
    out.push(gauge('zfs_offsite_last_run_timestamp_seconds', labels, at));
    const success = o.ok ? at : previous.get(labelKey(labels));
    if (success !== undefined) out.push(gauge('zfs_offsite_last_success_timestamp_seconds', labels, success));
    out.push(gauge('zfs_offsite_last_run_success', labels, o.ok ? 1 : 0));
    out.push(gauge('zfs_offsite_duration_seconds', labels, o.seconds));
    const own = { dataset: o.dataset, target: labels.target };
    for (const s of o.samples ?? []) out.push(gauge(s.name, own, s.value));
  }
  return out;
}

/** The freshness figures of datasets (status; run and drill may add them too). */
export function statusSamples(statuses: readonly DatasetStatus[]): MetricSample[] {
  const out: MetricSample[] = [];
  for (const s of statuses) {
    const labels = { dataset: s.dataset, target: targetLabel(s.target) };
    if (s.newest && s.ageSeconds !== null) {
      out.push(gauge('zfs_offsite_newest_snapshot_timestamp_seconds', labels, Date.parse(s.newest.created ?? s.newest.archivedAt) / 1000));
      out.push(gauge('zfs_offsite_newest_snapshot_age_seconds', labels, s.ageSeconds));
    }
    out.push(gauge('zfs_offsite_max_age_seconds', labels, s.maxAgeSeconds));
    out.push(gauge('zfs_offsite_fresh', labels, s.state === 'ok' ? 1 : 0));
    if (s.chainLength !== null) out.push(gauge('zfs_offsite_chain_length', labels, s.chainLength));
    out.push(gauge('zfs_offsite_streams', labels, s.streams));
    out.push(gauge('zfs_offsite_stored_bytes', labels, s.storedBytes));
    out.push(gauge('zfs_offsite_stream_bytes', labels, s.streamBytes));
  }
  return out;
}

/** Writes a command's metrics file atomically: its outcomes (last success carried over from the file it replaces) and extra samples. */
export function writeCommandMetrics(file: string, command: MetricCommand, outcomes: readonly DatasetOutcome[], extra: readonly MetricSample[] = [], now = new Date()): void {
  writeMetricsFile(file, [...outcomeSamples(command, outcomes, now, file), ...extra]);
}

/** `run`: one outcome per dataset (a dry run writes no metrics: nothing ran). `targetOf`: a dataset's configured target, for one never opened. */
export function runOutcomes(report: RunReport, targetOf: (dataset: string) => string): DatasetOutcome[] {
  return report.results.map((r) => ({
    dataset: r.dataset,
    target: r.target ?? targetOf(r.dataset),
    ok: r.status === 'ok',
    seconds: r.seconds,
    samples: [
      ...(r.rawBytes === undefined ? [] : [{ name: 'zfs_offsite_sent_bytes' as const, value: r.kind === 'none' ? 0 : r.rawBytes }]),
      ...(r.uploadedBytes === undefined ? [] : [{ name: 'zfs_offsite_uploaded_bytes' as const, value: r.uploadedBytes }]),
      ...(r.prunedStreams === undefined ? [] : [{ name: 'zfs_offsite_pruned_streams' as const, value: r.prunedStreams }]),
    ],
  }));
}

/**
 * `verify`: one outcome per dataset verified, ok when it has no problem; problems of no dataset
 * (objects outside any stream, links in the target) are the outcome of dataset "".
 */
export function verifyOutcomes(reports: readonly VerifyReport[]): DatasetOutcome[] {
  const out: DatasetOutcome[] = [];
  for (const r of reports) {
    const names = new Set([...r.datasets.map((d) => d.dataset), ...r.problems.map((p) => p.dataset)]);
    for (const dataset of [...names].sort()) {
      const problems = r.problems.filter((p) => p.dataset === dataset).length;
      out.push({ dataset, target: r.target, ok: problems === 0, seconds: r.seconds, samples: [{ name: 'zfs_offsite_verify_problems', value: problems }] });
    }
  }
  return out;
}

/** `prune`: one outcome per dataset pruned, ok unless its prune failed. */
export function pruneOutcomes(reports: readonly PruneReport[]): DatasetOutcome[] {
  return reports.flatMap((r) =>
    r.datasets.map((d) => ({
      dataset: d.dataset,
      target: r.target,
      ok: d.error === undefined,
      seconds: r.seconds,
      samples: [{ name: 'zfs_offsite_pruned_streams' as const, value: d.deleted.length }],
    })),
  );
}

/** drill: per dataset and target, passed or not (zfs_offsite_drill_success) and the bytes received. */
export function drillOutcomes(report: DrillReport): DatasetOutcome[] {
  return report.datasets.map((r) => ({
    dataset: r.dataset,
    target: r.target,
    ok: r.result === 'passed',
    seconds: r.seconds,
    samples: [{ name: 'zfs_offsite_drill_success', value: r.result === 'passed' ? 1 : 0 }],
  }));
}
