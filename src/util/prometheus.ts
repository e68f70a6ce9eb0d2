import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, lstatSync, openSync, readFileSync, renameSync, rmSync, type Stats, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errorMessage, OperationalError, UsageError } from './errors.js';

/**
 * The Prometheus text exposition format (version 0.0.4), as node_exporter's textfile collector
 * reads it (`--collector.textfile.directory`), and the atomic write of such a file: the collector
 * may read the directory at any moment, so a file is written under a temporary name in the same
 * directory (never matching `*.prom`), flushed, and renamed over FILE — a scrape sees the old
 * file or the new one, never half of one. A symbolic link at FILE is replaced, never written through.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): names in snake case with the
 * base unit as suffix (`_seconds`, `_bytes`), `_total` only on counters; one HELP and one TYPE
 * line per metric family; label values escaped (backslash, double quote, newline).
 */

export type MetricType = 'gauge' | 'counter';

/** One sample: a family (`name`, `help`, `type`) and one labelled value of it. */
export interface MetricSample {
  name: string;
  help: string;
  type: MetricType;
  labels: Record<string, string>;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value inside its double quotes: `\` → `\\`, `"` → `\"`, newline → `\n`. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: `\` → `\\`, newline → `\n` (quotes stay as they are). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * The text of `samples`: grouped by family in the order each first appears, HELP and TYPE once
 * per family; a family given two helps or types, a bad name or label, or two samples with the
 * same labels is a programming error (thrown), never a file Prometheus would refuse.
 */
export function formatMetrics(samples: readonly MetricSample[]): string {
  const families = new Map<string, { help: string; type: MetricType; lines: string[]; seen: Set<string> }>();
  for (const s of samples) {
    if (!METRIC_NAME.test(s.name)) throw new Error(`invalid metric name ${JSON.stringify(s.name)}`);
    if (s.type === 'counter' && !s.name.endsWith('_total')) throw new Error(`counter ${s.name} must end in _total`);
    let family = families.get(s.name);
    if (!family) {
      family = { help: s.help, type: s.type, lines: [], seen: new Set() };
      families.set(s.name, family);
    } else if (family.help !== s.help || family.type !== s.type) {
      throw new Error(`metric ${s.name} given two different HELP or TYPE lines`);
    }
    const names = Object.keys(s.labels).sort();
    for (const l of names) if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(l)} of ${s.name}`);
    const labels = names.map((l) => `${l}="${escapeLabelValue(s.labels[l]!)}"`).join(',');
    if (family.seen.has(labels)) throw new Error(`metric ${s.name}{${labels}} given twice`);
    family.seen.add(labels);
    family.lines.push(`${s.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
  }
  const out: string[] = [];
  for (const [name, f] of families) out.push(`# HELP ${name} ${escapeHelp(f.help)}`, `# TYPE ${name} ${f.type}`, ...f.lines);
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/**
 * Writes `samples` to `path` atomically (temporary file in the same directory, fsync, rename).
 * The file is readable by all (0644 less the umask): node_exporter runs as its own user. A
 * directory at `path` or a missing directory is a UsageError (exit 2); a failed write an
 * OperationalError naming the file, with the temporary file removed.
 */
export function writeMetricsFile(path: string, samples: readonly MetricSample[]): void {
  const text = formatMetrics(samples);
  const dir = dirname(path);
  checkMetricsPath(path);
  // A leading dot and no `.prom` suffix: the textfile collector reads only `*.prom`.
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') throw new UsageError(`--metrics-file ${path}: no such directory ${dir}`);
    throw new OperationalError(`cannot write ${path}: ${errorMessage(err)}`);
  }
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new OperationalError(`cannot write ${path}: ${errorMessage(err)}`);
  }
}

/**
 * Refuses, before a command does anything, a metrics file that could not be written at its end:
 * a directory at `path`, or a missing directory (UsageError, exit 2, nothing done).
 */
export function checkMetricsPath(path: string): void {
  try {
    if (lstatSync(path).isDirectory()) throw new UsageError(`--metrics-file ${path} is a directory: give a file name such as ${join(path, 'zfs-offsite.prom')}`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (codeOf(err) !== 'ENOENT') throw new OperationalError(`cannot write ${path}: ${errorMessage(err)}`);
  }
  let parent: Stats;
  try {
    parent = statSync(dirname(path));
  } catch {
    throw new UsageError(`--metrics-file ${path}: no such directory ${dirname(path)}`);
  }
  if (!parent.isDirectory()) throw new UsageError(`--metrics-file ${path}: ${dirname(path)} is not a directory`);
}

/**
 * The values of one family in an existing metrics file (ours, from an earlier run): label set
 * (as formatMetrics writes it, sorted) → value. A missing or unreadable file has none; lines
 * that do not parse are skipped. Lets a failed run keep the last success time of a dataset.
 */
export function readMetricValues(path: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(\{.*\})? (\S+)$/.exec(line);
    if (!m) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) out.set(m[1] ?? '', value);
  }
  return out;
}

/** The label set of `labels` as formatMetrics writes it (and readMetricValues keys it). */
export function labelKey(labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  return names.length === 0 ? '' : `{${names.map((l) => `${l}="${escapeLabelValue(labels[l]!)}"`).join(',')}}`;
}
