import { posix } from 'node:path';
import type { Stats } from 'ssh2';
import type { StorageError } from './backend.js';
import { entryTypeOf, type TreeOps } from './confined.js';
import type { SftpSession } from './sftp-connect.js';
import { SFTP_STATUS, sftpStatus } from './sftp-errors.js';

/** The file-tree primitives of confined.ts over one SFTP session; `join` maps a path under the root to the server's. */
export function sftpTree(s: SftpSession, join: (rel: string) => string, fail: (err: unknown, action: string, rel: string) => StorageError): TreeOps {
  return {
    lstat: async (rel) => {
      try {
        const st = await s.call<Stats>((sftp, done) => sftp.lstat(join(rel), done));
        return { type: entryTypeOf(st.mode), size: st.size, modified: new Date(st.mtime * 1000) };
      } catch (err) {
        if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return undefined;
        throw fail(err, 'read', rel);
      }
    },
    mkdir: async (rel) => {
      try {
        await s.call((sftp, done) => sftp.mkdir(join(rel), done));
        return true;
      } catch (err) {
        // FAILURE is what OpenSSH says for "exists" (EEXIST): confined.ts looks again.
        if (sftpStatus(err) === SFTP_STATUS.FAILURE) return false;
        throw fail(err, 'create directory', rel);
      }
    },
  };
}

/**
 * `mkdir -p` of the root directory itself (the user's path, links in it followed as given): from
 * the deepest missing directory down, tolerating ones made meanwhile.
 */
export async function makeRootDirs(s: SftpSession, dir: string, fail: (err: unknown, dir: string) => StorageError): Promise<void> {
  if (dir === '.' || dir === '/' || dir === '') return;
  const mkdir = () => s.call((sftp, done) => sftp.mkdir(dir, done));
  try {
    await mkdir();
    return;
  } catch (caught) {
    let err = caught;
    if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) {
      await makeRootDirs(s, posix.dirname(dir), fail);
      const again = await mkdir().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (again === undefined) return;
      err = again;
    }
    // FAILURE is what OpenSSH says for "exists" (EEXIST); a directory that exists is fine.
    const st = await s.call<Stats>((sftp, done) => sftp.stat(dir, done)).catch(() => undefined);
    if (st && entryTypeOf(st.mode) === 'directory') return;
    throw fail(st ? new Error(`${dir} exists and is not a directory`) : err, dir);
  }
}
