import { hostname } from 'node:os';
import type { Backend } from '../../storage/backend.js';
import { OperationalError } from '../../util/errors.js';
import { TOOL_VERSION } from '../../util/version.js';
import { datasetFromPath, datasetPath, STATUS_NAMES } from './keys.js';

/**
 * The last recorded result of a check of one dataset — `verify --record` (and `run`'s quick
 * verify), a drill — at `<dataset path>/~verify.json` or `~drill.json` (docs/archive-format.md,
 * "Status records"). `status` shows it beside the dataset's freshness.
 *
 * Display only, never trusted: anyone who can write the target can write these objects, so
 * nothing decides on them — not what to restore, send, prune or verify, not `status`'s exit
 * code. A record that cannot be read or does not parse is "unknown"; strings are cut short and
 * stripped of control characters before anyone shows them. One object per dataset and kind, each
 * written whole (an atomic put), so a verify and a drill never overwrite each other's.
 */

export const STATUS_FORMAT = 'zfs-offsite-status';
export const STATUS_MAJOR = 1;

export type StatusKind = keyof typeof STATUS_NAMES;

export interface StatusRecord {
  kind: StatusKind;
  dataset: string;
  /** ISO time the check finished. */
  at: string;
  ok: boolean;
  /** e.g. "quick: 0 problems", "deep: 2 problems (chunk-corrupt)", "passed: pool/x@s3". */
  summary: string;
  /** verify: quick, deep, sampled; drill: what the drill helper says. */
  mode?: string;
  /** Problems found (verify), 0 or 1 (drill). */
  problems?: number;
  host?: string;
}

const MAX_TEXT = 200;

export function statusKey(dataset: string, kind: StatusKind): string {
  return `${datasetPath(dataset)}/${STATUS_NAMES[kind]}`;
}

/** Whether a key is a status record of some dataset (quick verify does not report them as orphans). */
export function isStatusRecordKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash <= 0) return false;
  const name = key.slice(slash + 1);
  return Object.values(STATUS_NAMES).includes(name as (typeof STATUS_NAMES)[StatusKind]) && 'dataset' in datasetFromPath(key.slice(0, slash));
}

/** A string fit to show: control characters dropped, at most MAX_TEXT characters. */
function shown(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return clean.length > MAX_TEXT ? `${clean.slice(0, MAX_TEXT - 1)}…` : clean;
}

/** The record of `dataset` from a stored body, or undefined when it is not a valid one. */
export function parseStatusRecord(body: Buffer, dataset: string, kind: StatusKind): StatusRecord | undefined {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(body.toString()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || data.format !== STATUS_FORMAT || Number(String(data.formatVersion).split('.')[0]) !== STATUS_MAJOR) return undefined;
  if (data.kind !== kind || data.dataset !== dataset || typeof data.ok !== 'boolean' || typeof data.at !== 'string' || Number.isNaN(Date.parse(data.at))) return undefined;
  const problems = Number.isSafeInteger(data.problems) && (data.problems as number) >= 0 ? (data.problems as number) : undefined;
  return {
    kind,
    dataset,
    at: new Date(Date.parse(data.at)).toISOString(),
    ok: data.ok,
    summary: shown(data.summary) ?? '',
    ...(shown(data.mode) === undefined ? {} : { mode: shown(data.mode) }),
    ...(problems === undefined ? {} : { problems }),
    ...(shown(data.host) === undefined ? {} : { host: shown(data.host) }),
  };
}

/** Reads a record; undefined when there is none or it is not valid (never an error: display only). */
export async function readStatusRecord(backend: Backend, dataset: string, kind: StatusKind): Promise<StatusRecord | undefined> {
  try {
    return parseStatusRecord(await backend.getBuffer(statusKey(dataset, kind)), dataset, kind);
  } catch (err) {
    if (err instanceof OperationalError) return undefined;
    throw err;
  }
}

/** Writes a record (an atomic put, replacing the previous one of that dataset and kind). */
export async function writeStatusRecord(backend: Backend, record: Omit<StatusRecord, 'host'>): Promise<void> {
  const body = { format: STATUS_FORMAT, formatVersion: `${STATUS_MAJOR}.0`, ...record, host: hostname(), toolVersion: TOOL_VERSION };
  await backend.put(statusKey(record.dataset, record.kind), Buffer.from(`${JSON.stringify(body, null, 2)}\n`));
}
