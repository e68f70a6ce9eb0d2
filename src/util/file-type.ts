/** What is at a path, from lstat's mode bits (not following links). */
export type EntryType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'block device' | 'character device' | 'unknown';

/** File type from POSIX st_mode bits: local fs.Stats and SFTP attributes both carry them. */
export function entryTypeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    case 0o060000:
      return 'block device';
    case 0o020000:
      return 'character device';
    default:
      return 'unknown';
  }
}

const DESCRIBED: Record<EntryType, string> = {
  file: 'a regular file',
  directory: 'a directory',
  symlink: 'a symbolic link',
  fifo: 'a FIFO',
  socket: 'a socket',
  'block device': 'a block device',
  'character device': 'a character device',
  unknown: 'not a regular file',
};

/** "a symbolic link", "a FIFO"…: for messages. */
export function describeEntryType(type: EntryType): string {
  return DESCRIBED[type];
}
