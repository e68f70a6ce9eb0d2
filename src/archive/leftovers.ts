import type { Backend } from '../storage/backend.js';
import { StorageError } from '../storage/backend.js';
import { OperationalError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { CHECK_PREFIX } from './format/keys.js';

/**
 * Writers with append-only credentials (README "Ransomware protection"): a nightly key that may
 * write but not delete, so that a compromised host cannot destroy the archive. What a writer
 * deletes on the way — the journal after the commit, chunks an interrupted longer run left, the
 * lease — is then left behind, each in a state that is harmless: readers pass over a journal
 * beside a manifest (format/catalog.ts, plan/audit.ts), an expired lease is taken over
 * (lease.ts), and `prune` run with a key that can delete removes them (jobs/prune.ts).
 */

/** The server refused a deletion for lack of permission (S3 AccessDenied, EACCES): decided on the kind, never the text. */
export function deletionRefused(err: unknown): err is StorageError {
  return err instanceof StorageError && err.kind === 'permission';
}

/**
 * Deletes `keys`; a refusal for lack of permission is a warning saying who cleans up, not a
 * failure. Returns whether they were deleted. Any other failure is thrown as before.
 */
export async function deleteOrLeave(backend: Backend, keys: string[], log: Logger, what: string): Promise<boolean> {
  if (keys.length === 0) return true;
  try {
    await backend.delete(keys);
    return true;
  } catch (err) {
    if (!deletionRefused(err)) throw err;
    log.warn(
      { target: backend.location, objects: keys.length },
      `${what} left in ${backend.location}: these credentials may not delete (append-only?); cleanup is left to \`zfs-offsite prune\` run with a key that can delete`,
    );
    return false;
  }
}

/**
 * `prune` (or `run`'s keep step) with credentials that may not delete: refused before anything is
 * deleted, or at the first refused deletion, which leaves the archive consistent (a stream's
 * manifest goes first: jobs/prune.ts). Exit 1 (README "Exit codes").
 */
export class DeletionRefusedError extends OperationalError {
  override name = 'DeletionRefusedError';
  declare readonly kind: 'deletion-refused';
  constructor(location: string, cause: StorageError, done: string) {
    super(`${location} refuses deletions with these credentials (access denied); ${done}: prune needs a key that can delete (append-only keys can only write: README "Ransomware protection")`, {
      kind: 'deletion-refused',
      cause,
    });
  }
}

/**
 * Asks the server whether these credentials may delete, by deleting a key that does not exist
 * (under the reserved prefix of format/keys.ts), where that asks the server's permission
 * (`Backend.deletionAsksPermission`: S3); on a file tree it would prove nothing, and the first
 * refused deletion stops prune instead.
 */
export async function probeDeletion(backend: Backend): Promise<void> {
  if (!backend.deletionAsksPermission) return;
  const probe = `${CHECK_PREFIX}deletion-probe`;
  try {
    await backend.delete([probe]);
  } catch (err) {
    if (deletionRefused(err)) throw new DeletionRefusedError(backend.location, err, 'nothing was deleted');
    throw err;
  }
  await removeProbeMarkers(backend, probe);
}

/**
 * On a versioned bucket (measured on Ceph RGW) the probe's deletion of a missing key adds a delete
 * marker, which every prune would leave under the reserved prefix: removed by its version. Best
 * effort (one listing; a server without version listings, or a key that may not delete versions,
 * leaves a harmless marker), so it never fails prune.
 */
async function removeProbeMarkers(backend: Backend, probe: string): Promise<void> {
  const lock = backend.objectLock;
  if (!lock) return;
  try {
    const left = (await lock.listVersions(probe)).filter((v) => v.key === probe);
    if (left.length > 0) await lock.deleteVersions(left);
  } catch {
    // The marker stays: hidden by the reserved prefix from list, verify and prune.
  }
}
