import { createHash, randomBytes } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { CHECK_PREFIX, MARKER_KEY } from '../archive/format/keys.js';
import { deletionRefused } from '../archive/leftovers.js';
import { type Backend, isNotFound, StorageError } from '../storage/backend.js';
import { parseTarget, type Target } from '../storage/open.js';
import { RetryingBackend } from '../storage/retrying.js';
import type { CheckItem, CheckStatus } from '../storage/s3-check.js';
import type { S3Backend } from '../storage/s3.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { formatBytes } from '../util/bytes.js';

/**
 * `zfs-offsite check TARGET`: a doctor for a target. What it reports, in this order: reachable,
 * credentials, archive (the marker), write, read, delete (allowed, or refused: append-only
 * credentials), and for S3 the clock, versioning, Object Lock, the multipart lifecycle rule and
 * whether the server checks x-amz-content-sha256 (storage/s3-check.ts); free space on a local
 * directory. Its probe objects live under CHECK_PREFIX (archive/format/keys.ts) and are removed
 * whenever the credentials may delete. A `problem` makes the exit code 3 (README "Exit codes");
 * `warn` and `info` do not. Nothing here prints: cli/output/check.ts does.
 */

export type { CheckItem, CheckStatus } from '../storage/s3-check.js';

export interface CheckReport {
  target: string;
  kind: Target['kind'];
  items: CheckItem[];
  problems: number;
  warnings: number;
  /** Write allowed, delete refused. */
  appendOnly: boolean;
}

const S3_ONLY = ['clock', 'versioning', 'object-lock', 'multipart-cleanup', 'content-sha256'] as const;
const PROBE = `${CHECK_PREFIX}probe`;
const SHA_PROBE = `${CHECK_PREFIX}content-sha256-probe`;

export async function checkTarget(target: string, open: () => Promise<Backend>): Promise<CheckReport> {
  const parsed = parseTarget(target);
  const items: CheckItem[] = [];
  const add = (property: string, status: CheckStatus, detail: string) => items.push({ property, status, detail });
  const report = (location: string, appendOnly = false): CheckReport => ({
    target: location,
    kind: parsed.kind,
    items,
    problems: items.filter((i) => i.status === 'problem').length,
    warnings: items.filter((i) => i.status === 'warn').length,
    appendOnly,
  });
  let backend: Backend;
  try {
    backend = await open();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    add('reachable', 'problem', errorMessage(err));
    return report(target);
  }
  try {
    if (!(await reachable(backend, parsed, add))) {
      for (const p of ['archive', 'write', 'read', 'delete', ...S3_ONLY, 'free-space']) add(p, 'skipped', 'not checked: the target cannot be used');
      return report(backend.location);
    }
    await marker(backend, add);
    const appendOnly = await writeReadDelete(backend, add);
    const s3 = parsed.kind === 's3' ? await innerS3(backend) : undefined;
    if (s3) await s3Properties(s3, !appendOnly, add);
    else for (const p of S3_ONLY) add(p, 'n/a', 'not applicable (S3 only)');
    if (parsed.kind === 'local') await freeSpace(parsed.path, add);
    else add('free-space', 'n/a', parsed.kind === 'sftp' ? 'not measured over SFTP' : 'not applicable (S3 has no fixed size)');
    return report(backend.location, appendOnly);
  } finally {
    await backend.close();
  }
}

/** reachable + credentials, from the backend's own check (one cheap request). */
async function reachable(backend: Backend, parsed: Target, add: (p: string, s: CheckStatus, d: string) => void): Promise<boolean> {
  try {
    await backend.check();
  } catch (err) {
    const kind = err instanceof StorageError ? err.kind : 'other';
    // A wrong key or secret, a listing denied, no such bucket: the server answered.
    if (kind === 'credentials' || kind === 'permission' || kind === 'not-found-container') {
      add('reachable', 'ok', 'the server answered');
      add('credentials', 'problem', errorMessage(err));
    } else {
      add('reachable', 'problem', errorMessage(err));
      add('credentials', 'skipped', 'not checked: the target cannot be reached');
    }
    return false;
  }
  add('reachable', 'ok', parsed.kind === 'local' ? 'the directory exists' : 'the server answered');
  add('credentials', parsed.kind === 'local' ? 'n/a' : 'ok', parsed.kind === 'local' ? 'not applicable (a local directory)' : parsed.kind === 's3' ? 'valid: the bucket can be listed' : 'logged in');
  return true;
}

async function marker(backend: Backend, add: (p: string, s: CheckStatus, d: string) => void): Promise<void> {
  try {
    await backend.head(MARKER_KEY);
    add('archive', 'info', `${MARKER_KEY} present: an archive`);
  } catch (err) {
    if (isNotFound(err)) add('archive', 'info', `no ${MARKER_KEY}: no archive yet (put, send and run create it)`);
    else add('archive', 'warn', `${MARKER_KEY} not readable: ${errorMessage(err)}`);
  }
}

/** Writes, reads back and deletes a probe object. Returns true for append-only credentials. */
async function writeReadDelete(backend: Backend, add: (p: string, s: CheckStatus, d: string) => void): Promise<boolean> {
  const body = randomBytes(64);
  let written = false;
  try {
    await backend.put(PROBE, body, body.length, { sha256: createHash('sha256').update(body).digest('hex') });
    written = true;
    add('write', 'ok', `allowed (probe ${PROBE})`);
  } catch (err) {
    add('write', 'problem', `refused: ${errorMessage(err)}`);
  }
  if (written) {
    try {
      const back = await backend.getBuffer(PROBE);
      if (back.equals(body)) add('read', 'ok', 'allowed; the probe read back intact');
      else add('read', 'problem', `the probe read back ${back.length} bytes that differ from the ${body.length} written`);
    } catch (err) {
      add('read', 'problem', `refused: ${errorMessage(err)}`);
    }
  } else {
    try {
      await backend.head(MARKER_KEY);
      add('read', 'ok', `allowed (${MARKER_KEY} read)`);
    } catch (err) {
      add('read', isNotFound(err) ? 'skipped' : 'problem', isNotFound(err) ? 'not checked: nothing to read (no probe, no archive)' : `refused: ${errorMessage(err)}`);
    }
  }
  try {
    // Without a probe, a key that does not exist: S3 still answers AccessDenied to a denied deletion.
    await backend.delete([written ? PROBE : `${CHECK_PREFIX}deletion-probe`]);
    if (written && (await gone(backend, PROBE)) === false) {
      add('delete', 'problem', 'the deletion was acknowledged but the probe is still there');
      return false;
    }
    add('delete', 'ok', 'allowed: prune works with these credentials');
    return false;
  } catch (err) {
    if (deletionRefused(err)) {
      add(
        'delete',
        written ? 'info' : 'problem',
        `refused: append-only credentials (write allowed, delete refused): put, send and run work, prune needs a key that can delete${written ? `; the probe ${PROBE} stays` : ''}`,
      );
      return written;
    }
    add('delete', 'problem', `failed: ${errorMessage(err)}`);
    return false;
  }
}

async function gone(backend: Backend, key: string): Promise<boolean> {
  try {
    await backend.head(key);
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

/** The S3 backend under the retrying wrapper (open.ts wraps every backend in it). */
async function innerS3(backend: Backend): Promise<S3Backend | undefined> {
  const { S3Backend } = await import('../storage/s3.js');
  const inner = backend instanceof RetryingBackend ? backend.inner : backend;
  return inner instanceof S3Backend ? inner : undefined;
}

async function s3Properties(s3: S3Backend, canDelete: boolean, add: (p: string, s: CheckStatus, d: string) => void): Promise<void> {
  const probes = await import('../storage/s3-check.js');
  const each = async (property: string, fn: () => Promise<CheckItem>) => {
    try {
      const item = await fn();
      add(item.property, item.status, item.detail);
    } catch (err) {
      add(property, 'warn', `not measured: ${errorMessage(err)}`);
    }
  };
  await each('clock', async () => probes.clockItem(await probes.clockSkew(s3)));
  let versioned = false;
  await each('versioning', async () => {
    const v = await probes.versioningItem(s3);
    versioned = v.enabled;
    return v.item;
  });
  await each('object-lock', () => probes.objectLockItem(s3));
  await each('multipart-cleanup', () => probes.multipartLifecycleItem(s3));
  await each('content-sha256', async () => {
    const { item, stored } = await probes.contentSha256Item(s3, SHA_PROBE);
    if (stored && canDelete) await s3.delete([SHA_PROBE]);
    return item;
  });
  // A deletion on a versioned bucket only hides the probes: their versions go too (best effort).
  if (versioned && canDelete) {
    const left = await probes.removeProbeVersions(s3, CHECK_PREFIX).catch(() => -1);
    if (left !== 0) add('probes', 'info', `the versions of the check's probes under ${CHECK_PREFIX} could not all be removed (locked by a default retention?)`);
  }
}

/** Free space of the file system holding a local target, when statfs answers. */
async function freeSpace(path: string, add: (p: string, s: CheckStatus, d: string) => void): Promise<void> {
  try {
    const s = await statfs(path);
    add('free-space', 'info', `${formatBytes(s.bavail * s.bsize)} free of ${formatBytes(s.blocks * s.bsize)}`);
  } catch (err) {
    add('free-space', 'warn', `not measured: ${errorMessage(err)}`);
  }
}
