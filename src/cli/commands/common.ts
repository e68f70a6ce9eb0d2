import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
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
