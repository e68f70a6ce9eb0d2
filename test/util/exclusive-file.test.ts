/**
 * util/exclusive-file.ts on real files: what appears at FILE while the temporary file is being
 * written (another program, an attacker) is never replaced without `force`, and never a FIFO or
 * directory even with it; the temporary file never outlives a failure.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExclusiveFile, FileRefusedError, FileWriteError, openAppendOnly } from '../../src/util/exclusive-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-exclusive-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function written(file: ExclusiveFile, bytes: string): Promise<void> {
  const stream = file.stream();
  await new Promise<void>((resolve, reject) => stream.write(bytes, (err) => (err ? reject(err) : resolve())));
}

describe('ExclusiveFile', () => {
  it('puts the complete file at its path and leaves nothing else', async () => {
    const path = join(dir, 'out');
    const file = ExclusiveFile.create(path);
    expect(file.tempPath.startsWith(`${path}.`)).toBe(true);
    await written(file, 'stream bytes');
    await file.commit();
    expect(readFileSync(path, 'utf8')).toBe('stream bytes');
    expect(readdirSync(dir)).toEqual(['out']);
  });

  it('without force, refuses a file that appeared at the path while it was written, keeping that file', async () => {
    const path = join(dir, 'out');
    const file = ExclusiveFile.create(path);
    await written(file, 'ours');
    writeFileSync(path, 'theirs');
    const err = await file.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileRefusedError);
    expect((err as FileRefusedError).kind).toBe('file-exists');
    expect(readFileSync(path, 'utf8')).toBe('theirs');
    expect(readdirSync(dir)).toEqual(['out']);
  });

  it('with force, replaces a symlink that appeared at the path (the link, not its target) but refuses a FIFO', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'victim');
    const path = join(dir, 'out');
    const file = ExclusiveFile.create(path, { force: true });
    await written(file, 'ours');
    symlinkSync(victim, path);
    await file.commit();
    expect(lstatSync(path).isFile()).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('ours');
    expect(readFileSync(victim, 'utf8')).toBe('victim');

    const fifo = join(dir, 'fifo');
    const second = ExclusiveFile.create(fifo, { force: true });
    await written(second, 'ours');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const err = await second.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileRefusedError);
    expect((err as FileRefusedError).kind).toBe('file-not-regular');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['fifo', 'out', 'victim']);
  });

  it('discard removes the temporary file, before or after a stream was made, and twice is harmless', async () => {
    const a = ExclusiveFile.create(join(dir, 'a'));
    await a.discard();
    const b = ExclusiveFile.create(join(dir, 'b'));
    await written(b, 'partial');
    await b.discard();
    await b.discard();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names the file in a write failure, with the system error', () => {
    const file = ExclusiveFile.create(join(dir, 'out'));
    const err = file.writeFailed({ reason: Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) });
    expect(err).toBeInstanceOf(FileWriteError);
    expect(err.code).toBe('ENOSPC');
    expect(err.message).toBe(`cannot write ${join(dir, 'out')}: ENOSPC: no space left on device, write`);
    return file.discard();
  });
});

describe('openAppendOnly', () => {
  it('refuses a symlink, even to a regular file, and a directory; a missing directory is its own kind', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'kept');
    symlinkSync(target, join(dir, 'link'));
    mkdirSync(join(dir, 'sub'));
    const kindOf = (path: string) => {
      try {
        openAppendOnly(path, 'the log file');
      } catch (err) {
        return err instanceof FileRefusedError ? err.kind : String(err);
      }
      return 'opened';
    };
    expect(kindOf(join(dir, 'link'))).toBe('file-not-regular');
    expect(kindOf(join(dir, 'sub'))).toBe('file-not-regular');
    expect(kindOf(join(dir, 'none', 'log'))).toBe('no-directory');
    expect(readFileSync(target, 'utf8')).toBe('kept');
    expect(readlinkSync(join(dir, 'link'))).toBe(target);
  });
});
