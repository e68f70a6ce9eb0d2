import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
import { UsageError } from '../../util/errors.js';
import type { SettingValues } from '../../settings/table.js';
import { backendOptions } from '../../settings/values.js';
import type { Backend } from '../../storage/backend.js';
import { openBackend } from '../../storage/open.js';
import type { Logger } from '../../util/logger.js';

/** What a command module needs from the program (src/cli/program.ts), passed in so it never imports it. */
export interface CommandDeps {
  getLog(): Logger;
  /** --zfs-cmd (else env ZFS_OFFSITE_ZFS_CMD, read by Zfs.fromCommand). */
  zfsCommand(): string | undefined;
  /** An exit code that is not an error: verify's 3, run's 1. */
  setExitCode(code: number): void;
  /** put, send, run: Ctrl-C / SIGTERM aborts this instead of ending the process, so the journal is saved (src/cli/interrupt.ts). */
  /** The stop signal of a command that stops in its own time; `afterwards`: what its interrupted line says next (cli/interrupt.ts). */
  interruptSignal(afterwards?: string): AbortSignal;
}

/** Opens a target with the backend settings among `settings`. */
export function openTarget(target: string, settings: SettingValues): Promise<Backend> {
  return openBackend(target, backendOptions(settings));
}

/** Runs `fn` with an open target and a chunk pool, closing both whatever happens. */
export async function withTarget<T>(target: string, settings: SettingValues, fn: (backend: Backend, pool: ChunkPool) => Promise<T>): Promise<T> {
  const backend = await openTarget(target, settings);
  const pool = new ChunkPool();
  try {
    return await fn(backend, pool);
  } finally {
    await pool.close();
    await backend.close();
  }
}

/** The default target of list, verify, restore and prune (as restic's RESTIC_REPOSITORY). */
export const TARGET_ENV = 'ZFS_OFFSITE_TARGET';

function envTarget(): string | undefined {
  const value = process.env[TARGET_ENV];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The `[target] [dataset]` arguments of list, verify and prune. One rule, so that a single
 * argument is never guessed at: with ZFS_OFFSITE_TARGET set, the target is its value unless both
 * arguments are given, and a single argument is the dataset; without it, the first is the target.
 */
export function targetAndDataset(first: string | undefined, second: string | undefined): { target: string; dataset?: string } {
  if (second !== undefined) return { target: first!, dataset: second };
  const env = envTarget();
  if (env !== undefined) return first === undefined ? { target: env } : { target: env, dataset: first };
  if (first !== undefined) return { target: first };
  throw new UsageError(`no target: give TARGET or set ${TARGET_ENV}`);
}

/** restore's `--from`, else ZFS_OFFSITE_TARGET. */
export function fromTarget(from: string | undefined): string {
  const target = from ?? envTarget();
  if (target === undefined) throw new UsageError(`no target: give --from TARGET or set ${TARGET_ENV}`);
  return target;
}
