import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Backend, type EntryType, NotFoundError, StorageError } from '../../src/storage/backend.js';
import { readAll } from './contract.js';

/**
 * The confinement half of the storage contract (src/storage/confined.ts), for the backends that
 * are file trees (local directory, SFTP): run unchanged against each. The target is planted
 * with links to a canary directory beside it and with special files; every operation must
 * refuse them (a permanent StorageError of kind `unsafe-entry`), never follow or open them, and
 * leave the canary exactly as it was. Links are relative, so they point at the canary both on
 * this host and inside the SFTP server's chroot.
 */
export interface FileTreeUnderTest {
  backend: Backend;
  /** The backend's root as a path on this host; its parent directory is ours to use. */
  root: string;
  /** Who the backend acts as on the files (SFTP: the box user), so the canary is writable to it. */
  owner?: { uid: number; gid: number };
  cleanup(): Promise<void>;
}

const SLOW = 60_000;

/** Everything under a directory: names, types, sizes, bytes and mtimes. */
function snapshot(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => {
      const path = join(e.parentPath, e.name);
      const st = lstatSync(path);
      const bytes = e.isFile() ? readFileSync(path).toString('hex') : '';
      return `${path} ${st.mode} ${st.size} ${st.mtimeMs} ${bytes}`;
    })
    .sort()
    .join('\n');
}

async function refusal(promise: Promise<unknown>): Promise<StorageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the operation to be refused').toBeInstanceOf(StorageError);
  expect((err as StorageError).kind).toBe('unsafe-entry');
  expect((err as StorageError).permanent).toBe(true);
  expect((err as Error).message).not.toContain('\n');
  return err as StorageError;
}

export function runFileTreeContract(name: string, make: () => Promise<FileTreeUnderTest>): void {
  describe(`File-tree confinement: ${name}`, () => {
    let t: FileTreeUnderTest;
    let canary: string;
    let before: string;

    beforeEach(async () => {
      t = await make();
      mkdirSync(t.root, { recursive: true });
      canary = join(dirname(t.root), 'canary');
      mkdirSync(join(canary, 'sub'), { recursive: true });
      writeFileSync(join(canary, 'secret'), 'do not read me\n');
      writeFileSync(join(canary, 'sub', 'victim'), 'do not delete me\n');
      own();
      before = snapshot(canary);
    }, SLOW);

    afterEach(async () => {
      expect(snapshot(canary), 'the canary directory outside the target changed').toBe(before);
      await t.backend.close();
      await t.cleanup();
    }, SLOW);

    const at = (rel: string) => join(t.root, rel);
    /** Gives everything planted to the backend's user: only our checks may keep it out of the canary. */
    const own = () => {
      if (t.owner) execFileSync('chown', ['-hR', `${t.owner.uid}:${t.owner.gid}`, dirname(t.root)]);
    };
    const mkfifo = (rel: string) => {
      mkdirSync(dirname(at(rel)), { recursive: true });
      execFileSync('mkfifo', [at(rel)]);
      own();
    };
    /** A relative link at `rel` (inside the root) to `target` (relative to the root's parent). */
    const link = (rel: string, target: string) => {
      mkdirSync(dirname(at(rel)), { recursive: true });
      const depth = rel.split('/').length;
      symlinkSync(`${'../'.repeat(depth)}${target}`, at(rel));
      own();
    };

    it(
      'refuses to read, head or load a key that is a link to a file outside',
      async () => {
        link('ds/s1/000000.zst', 'canary/secret');
        await refusal(t.backend.getBuffer('ds/s1/000000.zst'));
        await refusal(t.backend.get('ds/s1/000000.zst'));
        await refusal(t.backend.head('ds/s1/000000.zst'));
        await refusal(t.backend.load('ds/s1/000000.zst', () => undefined));
      },
      SLOW,
    );

    it(
      'refuses to read, write or delete through a directory that is a link outside',
      async () => {
        link('ds', 'canary/sub');
        const err = await refusal(t.backend.getBuffer('ds/victim'));
        expect(err.message).toContain('ds is a symbolic link');
        await refusal(t.backend.head('ds/victim'));
        await refusal(t.backend.put('ds/new', Buffer.from('x')));
        await refusal(t.backend.put('ds/deeper/new', Buffer.from('x')));
        await refusal(t.backend.delete(['ds/victim']));
        expect(readFileSync(join(canary, 'sub', 'victim'), 'utf8')).toBe('do not delete me\n');
      },
      SLOW,
    );

    it(
      'a link deeper down (a subfolder inside a stream directory) is refused too',
      async () => {
        await t.backend.put('ds/s1/000000.zst', Buffer.from('chunk'));
        link('ds/s1/sub', 'canary/sub');
        await refusal(t.backend.delete(['ds/s1/sub/victim']));
        await refusal(t.backend.getBuffer('ds/s1/sub/victim'));
        await refusal(t.backend.put('ds/s1/sub/victim', Buffer.from('overwritten')));
        expect((await t.backend.getBuffer('ds/s1/000000.zst')).toString()).toBe('chunk');
      },
      SLOW,
    );

    it(
      'never opens a FIFO (no hang) or a device',
      async () => {
        mkfifo('ds/journal.json');
        execFileSync('mknod', [at('ds/lease.json'), 'c', '1', '3']); // the /dev/null device
        own();
        for (const key of ['ds/journal.json', 'ds/lease.json']) {
          await refusal(t.backend.getBuffer(key));
          await refusal(t.backend.head(key));
        }
        const err = await refusal(t.backend.getBuffer('ds/journal.json'));
        expect(err.message).toContain('is a FIFO');
      },
      SLOW,
    );

    it(
      'a put over a link at the key replaces the link, never writes through it; a delete removes the link, not its target',
      async () => {
        link('ds/manifest.json', 'canary/secret');
        await t.backend.put('ds/manifest.json', Buffer.from('{"new":true}'));
        expect(lstatSync(at('ds/manifest.json')).isFile()).toBe(true);
        expect((await t.backend.getBuffer('ds/manifest.json')).toString()).toBe('{"new":true}');
        link('ds/lease.json', 'canary/sub/victim');
        await t.backend.delete(['ds/lease.json']);
        expect(() => lstatSync(at('ds/lease.json'))).toThrow();
        // A FIFO at the key is replaced the same way (the rename replaces the entry).
        mkfifo('ds/journal.json');
        await t.backend.put('ds/journal.json', Buffer.from('{}'));
        expect(statSync(at('ds/journal.json')).isFile()).toBe(true);
      },
      SLOW,
    );

    it(
      'lists only regular files: links and special files are reported, never followed or listed',
      async () => {
        await t.backend.put('ds/s1/000000.zst', Buffer.from('chunk'));
        link('ds/s2', 'canary/sub'); // a linked stream directory
        link('ds/s1/000001.zst', 'canary/secret'); // a linked chunk
        link('ds/s1/dangling', 'canary/no-such-file');
        symlinkSync('loop', at('ds/s1/loop'));
        mkfifo('ds/s1/fifo');
        const listed: string[] = [];
        const unsafe: { key: string; type: EntryType }[] = [];
        await t.backend.list('', (o) => listed.push(o.key), { onUnsafe: (e) => unsafe.push(e) });
        expect(listed).toEqual(['ds/s1/000000.zst']);
        expect(unsafe.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
          { key: 'ds/s1/000001.zst', type: 'symlink' },
          { key: 'ds/s1/dangling', type: 'symlink' },
          { key: 'ds/s1/fifo', type: 'fifo' },
          { key: 'ds/s1/loop', type: 'symlink' },
          { key: 'ds/s2', type: 'symlink' },
        ]);
        // A prefix through the linked directory lists nothing and reports the link.
        const throughLink: string[] = [];
        const reported: string[] = [];
        await t.backend.list('ds/s2/', (o) => throughLink.push(o.key), { onUnsafe: (e) => reported.push(e.key) });
        expect(throughLink).toEqual([]);
        expect(reported).toEqual(['ds/s2']);
        // Without onUnsafe they are silently skipped.
        const plain: string[] = [];
        await t.backend.list('ds/', (o) => plain.push(o.key));
        expect(plain).toEqual(['ds/s1/000000.zst']);
      },
      SLOW,
    );

    it(
      'a dangling link or a link loop at a key is refused, not "not found"',
      async () => {
        link('ds/a', 'canary/no-such-file');
        mkdirSync(at('ds/b'), { recursive: true });
        symlinkSync('loop', at('ds/b/loop'));
        own();
        await refusal(t.backend.getBuffer('ds/a'));
        await refusal(t.backend.getBuffer('ds/b/loop'));
        await refusal(t.backend.getBuffer('ds/b/loop/x'));
        const missing = await t.backend.getBuffer('ds/none').catch((e: unknown) => e);
        expect(missing).toBeInstanceOf(NotFoundError);
      },
      SLOW,
    );

    it(
      'reads through plain directories still work, and a plain file where a directory should be is "not found"',
      async () => {
        await t.backend.put('ds/s1/000000.zst', Buffer.from('chunk'));
        expect((await readAll(await t.backend.get('ds/s1/000000.zst'))).toString()).toBe('chunk');
        expect((await t.backend.head('ds/s1/000000.zst')).size).toBe(5);
        expect(await t.backend.getBuffer('ds/s1/000000.zst/x').catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
      },
      SLOW,
    );
  });
}
