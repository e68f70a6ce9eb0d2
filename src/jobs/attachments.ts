import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { isAttachmentName } from '../archive/format/keys.js';
import { MAX_ATTACHMENT_BYTES } from '../archive/format/manifest.js';
import { errorMessage, OperationalError, UsageError } from '../util/errors.js';
import { describeEntryType, entryTypeOf } from '../util/file-type.js';
import { splitCommandWords } from '../zfs/command.js';

/**
 * Attachments: small files kept with a stream (docs/archive-format.md, "Attachments") — the
 * `vmadm get` JSON of a SmartOS zone, a pool layout — from `--attach NAME=FILE` or a config
 * entry's `attach:` command. All are read before the upload starts, so a missing file or a
 * failing command stops the job before anything is written; each is held in memory (at most
 * MAX_ATTACHMENT_BYTES) and stored by the writer just before the manifest (pipeline/writer.ts).
 */

export interface Attachment {
  name: string;
  body: Buffer;
}

/** Refuses a name that is not a safe file name: it becomes an object key and, on restore, a file in DIR. */
export function checkAttachmentName(name: string, what: string): void {
  if (!isAttachmentName(name)) {
    throw new UsageError(`invalid ${what}: ${JSON.stringify(name)} (an attachment name is letters, digits, '.', '_' and '-', not starting with '.', '_' or '-', at most 128)`, {
      kind: 'attachment-name',
    });
  }
}

/** `NAME=FILE` of `--attach`. */
export function parseAttachFlag(text: string): { name: string; path: string } {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new UsageError(`invalid --attach: ${JSON.stringify(text)} (expected NAME=FILE, e.g. vmadm.json=/tmp/zone.json)`);
  const name = text.slice(0, eq);
  checkAttachmentName(name, '--attach name');
  return { name, path: text.slice(eq + 1) };
}

/** Two attachments of one stream never share a name. */
export function checkUniqueNames(list: readonly { name: string }[]): void {
  const seen = new Set<string>();
  for (const a of list) {
    if (seen.has(a.name)) throw new UsageError(`attachment ${a.name} is given twice`, { kind: 'attachment-name' });
    seen.add(a.name);
  }
}

/**
 * A regular file, read whole: never through a symbolic link (O_NOFOLLOW), never a FIFO, device
 * or directory (O_NONBLOCK, so a FIFO cannot hang the open; then fstat), at most the size limit.
 */
export function readAttachmentFile(name: string, path: string): Attachment {
  let fd: number;
  try {
    const found = entryTypeOf(lstatSync(path).mode);
    if (found !== 'file') throw new UsageError(`--attach ${name}=${path}: ${describeEntryType(found)}, not a regular file: refused`, { kind: 'file-not-regular' });
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--attach ${name}=${path}: cannot read it (${errorMessage(err)})`, { kind: 'file-denied' });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UsageError(`--attach ${name}=${path}: not a regular file: refused`, { kind: 'file-not-regular' });
    if (st.size > MAX_ATTACHMENT_BYTES) throw new UsageError(`--attach ${name}=${path}: ${st.size} bytes, more than the ${MAX_ATTACHMENT_BYTES} an attachment may hold`);
    const body = Buffer.alloc(st.size);
    let at = 0;
    while (at < body.length) {
      const n = readSync(fd, body, at, body.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return { name, body: body.subarray(0, at) };
  } finally {
    closeSync(fd);
  }
}

/** A config `attach:` command failed: the job stops before anything is uploaded. */
export class AttachmentCommandError extends OperationalError {
  override name = 'AttachmentCommandError';
}

/**
 * Runs a config `attach:` command (its words split as a shell would, run without a shell) and
 * keeps its standard output. Anything but exit 0 is an AttachmentCommandError naming the command,
 * its status and the last line of its stderr.
 */
export function runAttachmentCommand(name: string, command: string, timeoutMs = 300_000): Promise<Attachment> {
  const words = splitCommandWords(command);
  if (words.length === 0) return Promise.reject(new UsageError(`attachment ${name}: empty command`));
  return new Promise((resolve, reject) => {
    const child = spawn(words[0]!, words.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let failure: string | undefined;
    const timer = setTimeout(() => {
      failure = `still running after ${timeoutMs / 1000} s`;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_ATTACHMENT_BYTES) {
        failure ??= `more than ${MAX_ATTACHMENT_BYTES} bytes of output`;
        child.kill('SIGTERM');
      } else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
    });
    child.on('error', (err) => {
      failure ??= errorMessage(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = stderr.trim().split('\n').pop() ?? '';
      const why = failure ?? (code === 0 ? undefined : `exit ${code ?? signal}${last ? `: ${last}` : ''}`);
      if (why === undefined) resolve({ name, body: Buffer.concat(out) });
      else reject(new AttachmentCommandError(`attachment ${name}: command ${JSON.stringify(command)} failed (${why}); nothing was archived`, { kind: 'attachment-command' }));
    });
  });
}

/** The config's `attach:` commands of a dataset, one after another. */
export async function runAttachments(list: readonly { name: string; command: string }[]): Promise<Attachment[]> {
  const out: Attachment[] = [];
  for (const a of list) out.push(await runAttachmentCommand(a.name, a.command));
  return out;
}
