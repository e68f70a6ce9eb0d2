// Paths as the SFTP server sees them (file types: confined.ts entryTypeOf).

/** Whether `dir` lies strictly inside `root` ('' = the login directory, so any relative path). */
export function isBelow(dir: string, root: string): boolean {
  if (root === '') return !dir.startsWith('/');
  if (root === '/') return dir.startsWith('/') && dir !== '/';
  return dir.startsWith(`${root}/`);
}
