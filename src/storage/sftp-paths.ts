// File modes and paths as the SFTP server reports them (SFTP v3 attrs carry POSIX st_mode bits).

const S_IFMT = 0o170000;
export const isFile = (mode: number) => (mode & S_IFMT) === 0o100000;
export const isDir = (mode: number) => (mode & S_IFMT) === 0o040000;
export const isLink = (mode: number) => (mode & S_IFMT) === 0o120000;

/** Whether `dir` lies strictly inside `root` ('' = the login directory, so any relative path). */
export function isBelow(dir: string, root: string): boolean {
  if (root === '') return !dir.startsWith('/');
  if (root === '/') return dir.startsWith('/') && dir !== '/';
  return dir.startsWith(`${root}/`);
}
