import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/storage/backend.js';
import { fingerprint, hostKeyName, hostMatches, parseKnownHosts, verifyHostKey } from '../../src/storage/known-hosts.js';
import { TEMP_PREFIX } from '../../src/storage/local.js';
import { openBackend, parseTarget } from '../../src/storage/open.js';
import { RetryingBackend } from '../../src/storage/retrying.js';
import { SftpBackend, type SftpBackendOptions } from '../../src/storage/sftp.js';
import { parseSftpUrl, sftpLocationUrl } from '../../src/storage/sftp-config.js';
import { UsageError } from '../../src/util/errors.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { SSHD_HINT, sftpOptions, sshdSettings, uniqueSftpDir } from '../support/sshd.js';
import { chunkedReadable, readAll, runBackendContract } from './contract.js';
import { runFileTreeContract } from './file-tree-contract.js';

const MiB = 1024 * 1024;
const sshd = sshdSettings();
if (!sshd) {
  if (process.env.CI) throw new Error(`CI must test SFTP, but the test SFTP server is not running: ${SSHD_HINT}`);
  console.warn(`SFTP backend tests skipped: the test SFTP server is not running; ${SSHD_HINT}`);
}

/** Every text an error could show: message, stack and the messages of its causes. */
function allText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; stack?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(String(e.message), String(e.stack));
  }
  return parts.join('\n');
}

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageError);
  expect((err as Error).message).not.toContain('\n');
  return err as StorageError;
}

/** Every file under `dir` on this host, recursively, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('SFTP URLs (no server needed)', () => {
  it.each([
    ['sftp://u123@box.example:23/zfs/host1', { user: 'u123', host: 'box.example', port: 23, path: 'zfs/host1' }],
    ['sftp://u123@box.example:23//srv/zfs/', { user: 'u123', host: 'box.example', port: 23, path: '/srv/zfs' }],
    ['sftp://u123@box.example', { user: 'u123', host: 'box.example', port: 22, path: '' }],
    ['sftp://u123@box.example:2222/', { user: 'u123', host: 'box.example', port: 2222, path: '' }],
    ['sftp://u123@box.example//', { user: 'u123', host: 'box.example', port: 22, path: '/' }],
    ['sftp://backup@[::1]:2200/a', { user: 'backup', host: '::1', port: 2200, path: 'a' }],
    ['SFTP://u%40corp@host/x', { user: 'u@corp', host: 'host', port: 22, path: 'x' }],
  ])('%s: relative to the login directory unless the path starts with //', (url, expected) => {
    expect(parseSftpUrl(url)).toEqual(expected);
    expect(parseTarget(url)).toEqual({ kind: 'sftp', ...expected });
  });

  it('writes the location back in the same convention, without secrets', () => {
    expect(sftpLocationUrl(parseSftpUrl('sftp://u@h:23/a/b'))).toBe('sftp://u@h:23/a/b');
    expect(sftpLocationUrl(parseSftpUrl('sftp://u@h//srv/a'))).toBe('sftp://u@h//srv/a');
    expect(sftpLocationUrl(parseSftpUrl('sftp://u@[::1]:22/'))).toBe('sftp://u@[::1]');
  });

  it.each([
    ['sftp://u@h:0/x', /invalid port/],
    ['sftp://u@h:ssh/x', /invalid port/],
    ['sftp://u@h/a/../b', /'\.\.' segment/],
    ['sftp://u@h/a//b', /empty/],
    ['sftp://u@h/a?x=1', /may not contain/],
    ['sftp://@/x', /not an SFTP URL/],
  ])('%s is a one-line UsageError', (url, message) => {
    const err = (() => {
      try {
        parseSftpUrl(url);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('refuses a password in the URL without repeating it', () => {
    for (const parse of [parseSftpUrl, parseTarget]) {
      const err = (() => {
        try {
          parse('sftp://u123:hunter2-secret@box.example:23/zfs');
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(UsageError);
      expect(err!.message).toMatch(/password does not belong in the URL.*ZFS_OFFSITE_SFTP_PASSWORD/);
      expect(err!.message).toContain('sftp://u123:***@box.example:23/zfs');
      expect(allText(err)).not.toContain('hunter2');
    }
  });
});

describe('known_hosts matching (no server needed)', () => {
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), randomBytes(32)]);
  const other = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), randomBytes(32)]);
  const line = (hosts: string, key = blob) => `${hosts} ssh-ed25519 ${key.toString('base64')}`;

  it('matches plain names, [host]:port, wildcards, negation and hashed |1| names', () => {
    expect(hostKeyName('Box.Example', 22)).toBe('box.example');
    expect(hostKeyName('box.example', 23)).toBe('[box.example]:23');
    expect(hostMatches('box.example,other', 'box.example')).toBe(true);
    expect(hostMatches('box.example', '[box.example]:23')).toBe(false); // port 22 entries do not cover port 23
    expect(hostMatches('[box.example]:23', '[box.example]:23')).toBe(true);
    expect(hostMatches('*.example', 'box.example')).toBe(true);
    expect(hostMatches('*.example,!box.example', 'box.example')).toBe(false);
    expect(hostMatches('bo?.example', 'box.example')).toBe(true);
    // `ssh-keygen -H` form: |1|base64(salt)|base64(HMAC-SHA1(salt, name))
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[box.example]:23').digest('base64')}`;
    expect(hostMatches(hashed, '[box.example]:23')).toBe(true);
    expect(hostMatches(hashed, 'box.example')).toBe(false);
  });

  it('tells trusted, unknown, changed and revoked keys apart', () => {
    const entries = parseKnownHosts([`# comment`, line('a.example'), line('b.example', other), `@revoked * ssh-ed25519 ${other.toString('base64')}`, 'garbage line'].join('\n'), 'kh');
    expect(verifyHostKey(entries, 'a.example', blob)).toEqual({ status: 'trusted' });
    expect(verifyHostKey(entries, 'c.example', blob)).toEqual({ status: 'unknown' });
    expect(verifyHostKey(entries, 'b.example', blob)).toMatchObject({ status: 'changed' });
    expect(verifyHostKey(entries, 'b.example', other)).toMatchObject({ status: 'revoked' });
    expect(fingerprint(blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe.skipIf(!sshd)(`SFTP backend on OpenSSH (skipped without a server: ${SSHD_HINT})`, () => {
  // The body is still collected when skipped: nothing here may touch the settings eagerly.
  const s = sshd ?? ({} as NonNullable<typeof sshd>);
  const home = sshd ? join(sshd.chroot, 'home') : '';

  runBackendContract('SFTP (OpenSSH, chrooted storage box, path relative to the login directory)', async () => {
    const dir = uniqueSftpDir(s, 'contract');
    return { backend: new SftpBackend(sftpOptions(s, `${dir.rel}/archive`)), cleanup: dir.cleanup };
  });

  runFileTreeContract('SFTP (OpenSSH, chrooted storage box)', async () => {
    const dir = uniqueSftpDir(s, 'confined');
    const box = statSync(home); // the login directory belongs to the box user
    await mkdir(join(home, dir.rel));
    execFileSync('chown', [`${box.uid}:${box.gid}`, join(home, dir.rel)]);
    const backend = new RetryingBackend(new SftpBackend(sftpOptions(s, `${dir.rel}/archive`)));
    return { backend, root: join(home, dir.rel, 'archive'), owner: { uid: box.uid, gid: box.gid }, cleanup: dir.cleanup };
  });

  // The same suite through openBackend: an absolute //path URL, key and known_hosts from the
  // environment, behind the retry wrapper.
  runBackendContract('SFTP via openBackend (absolute //path URL, settings from the environment)', async () => {
    const dir = uniqueSftpDir(s, 'contract-abs');
    const saved = { ...process.env };
    Object.assign(process.env, { ZFS_OFFSITE_SFTP_KEY: s.key, ZFS_OFFSITE_SFTP_KNOWN_HOSTS: s.knownHosts });
    delete process.env.SSH_AUTH_SOCK;
    delete process.env.ZFS_OFFSITE_SFTP_PASSWORD;
    try {
      const backend = await openBackend(`sftp://${s.user}@${s.host}:${s.port}//home/${dir.rel}`);
      expect(backend).toBeInstanceOf(RetryingBackend);
      return { backend, cleanup: dir.cleanup };
    } finally {
      process.env = saved;
    }
  });

  describe('SftpBackend specifics', () => {
    let scratch: string;
    let dir: ReturnType<typeof uniqueSftpDir>;
    const backends: SftpBackend[] = [];
    const make = (path: string, extra: Partial<SftpBackendOptions> = {}) => {
      const b = new SftpBackend(sftpOptions(s, path, extra));
      backends.push(b);
      return b;
    };

    beforeAll(() => {
      scratch = mkdtempSync(join(tmpdir(), 'zfs-offsite-sftp-'));
      dir = uniqueSftpDir(s, 'specifics');
    });
    afterAll(async () => {
      await Promise.all(backends.map((b) => b.close()));
      rmSync(scratch, { recursive: true, force: true });
      await dir.cleanup();
    });

    it('names itself in the URL convention and resolves relative and //absolute paths alike', async () => {
      const relative = make(`${dir.rel}/paths`);
      const absolute = make(`/home/${dir.rel}/paths`); // the parsed form of …//home/…
      expect(relative.location).toBe(`sftp://${s.user}@${s.host}:${s.port}/${dir.rel}/paths`);
      expect(absolute.location).toBe(`sftp://${s.user}@${s.host}:${s.port}//home/${dir.rel}/paths`);
      await relative.put('ds/x.bin', Buffer.from('written via the relative path'));
      expect((await absolute.getBuffer('ds/x.bin')).toString()).toBe('written via the relative path');
      // On the server: under the login directory (/home inside the chroot).
      expect(readFileSync(join(home, dir.rel, 'paths/ds/x.bin'), 'utf8')).toBe('written via the relative path');
      const login = make('');
      expect((await login.getBuffer(`${dir.rel}/paths/ds/x.bin`)).length).toBe(29);
    });

    it('writes through a .tmp- file in the target directory; the final name appears only when complete', async () => {
      const backend = make(`${dir.rel}/atomic`);
      await backend.put('ds/stream/keep', Buffer.from('x'));
      const body = new PassThrough();
      const done = backend.put('ds/stream/000000.zst', body);
      body.write(Buffer.alloc(300_000, 1));
      const target = join(home, dir.rel, 'atomic/ds/stream');
      for (let i = 0; i < 100 && readdirSync(target).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      const during = readdirSync(target).sort();
      expect(during).toHaveLength(2);
      expect(during[0]?.startsWith(TEMP_PREFIX)).toBe(true);
      expect(during[1]).toBe('keep');
      body.end(Buffer.alloc(24, 2));
      await done;
      expect(readdirSync(target).sort()).toEqual(['000000.zst', 'keep']);
      expect(statSync(join(target, '000000.zst')).size).toBe(300_024);
    });

    it('a connection killed mid-upload: transient error, no file under the final name, temp file removed on reconnect', async () => {
      const backend = make(`${dir.rel}/killed`);
      await backend.put('ds/old', Buffer.from('previous version'));
      const body = new PassThrough();
      const done = backend.put('ds/old', body).catch((e: unknown) => e);
      const done2 = backend.put('ds/new', chunkedReadable(randomBytes(64 * MiB))).catch((e: unknown) => e);
      body.write(randomBytes(2 * MiB));
      const target = join(home, dir.rel, 'killed/ds');
      for (let i = 0; i < 200 && readdirSync(target).filter((n) => n.startsWith(TEMP_PREFIX)).length < 2; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      backend.killConnectionsForTests();
      for (const err of [await done, await done2]) {
        expect(err).toBeInstanceOf(StorageError);
        expect(err).toMatchObject({ permanent: false });
        expect((err as Error).message).toMatch(/cannot write ds\/(old|new).*connection/);
      }
      expect(body.destroyed).toBe(true); // the producer is not left blocked
      const names = readdirSync(target).sort();
      expect(names.filter((n) => !n.startsWith(TEMP_PREFIX))).toEqual(['old']);
      expect(readFileSync(join(target, 'old'), 'utf8')).toBe('previous version');
      // The backend reconnects by itself; the temp files the dead connection left are removed.
      await backend.put('ds/after', Buffer.from('after'));
      expect(readdirSync(target).sort()).toEqual(['after', 'old']);
    });

    it('the retry wrapper carries a Buffer put over a dropped connection', async () => {
      const inner = make(`${dir.rel}/retry`);
      const backend = new RetryingBackend(inner, { baseDelayMs: 10 });
      await backend.put('a', Buffer.from('1'));
      inner.killConnectionsForTests();
      await backend.put('b', randomBytes(3 * MiB));
      expect((await backend.head('b')).size).toBe(3 * MiB);
    });

    it('a process killed mid-upload leaves no file under the final name (and list does not show its temp file)', async () => {
      const backend = make(`${dir.rel}/crash`);
      const sftpModule = fileURLToPath(new URL('../../dist/storage/sftp.js', import.meta.url));
      const script = `
        import { readFileSync } from 'node:fs';
        import { Readable } from 'node:stream';
        import { SftpBackend } from ${JSON.stringify(sftpModule)};
        const o = JSON.parse(process.argv[1]);
        o.auth.key.data = readFileSync(o.auth.key.file);
        const b = new SftpBackend(o);
        let n = 0;
        const slow = new Readable({ read() { setTimeout(() => this.push(n++ < 1000 ? Buffer.alloc(256 * 1024, 7) : null), 5); } });
        await b.put('ds/chunk', slow);
        console.log('finished');`;
      const opts = sftpOptions(s, `${dir.rel}/crash`);
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify({ ...opts, auth: { key: { file: s.key } } })], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const target = join(home, dir.rel, 'crash/ds');
      let tmpSize = 0;
      for (let i = 0; i < 500 && tmpSize < MiB; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const tmp = (() => {
          try {
            return readdirSync(target).find((n) => n.startsWith(TEMP_PREFIX));
          } catch {
            return undefined;
          }
        })();
        if (tmp) tmpSize = statSync(join(target, tmp)).size;
      }
      expect(tmpSize).toBeGreaterThanOrEqual(MiB);
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
      await new Promise((r) => setTimeout(r, 200)); // the server notices the dropped connection
      expect(readdirSync(target).filter((n) => !n.startsWith(TEMP_PREFIX))).toEqual([]);
      const keys: string[] = [];
      await backend.list('', (i) => keys.push(i.key));
      expect(keys).toEqual([]);
      await expect(backend.head('ds/chunk')).rejects.toThrow(/not found/);
    });

    it('failed and mis-sized puts leave no temp files behind', async () => {
      const backend = make(`${dir.rel}/clean`);
      await backend.put('a/1', Buffer.from('one'));
      const failing = new PassThrough();
      const failed = backend.put('a/2', failing);
      failing.write(randomBytes(MiB));
      setTimeout(() => failing.destroy(new Error('producer died')), 50);
      await expect(failed).rejects.toThrow('producer died');
      await expect(backend.put('a/3', Buffer.from('three'), 4)).rejects.toThrow(/5 bytes, expected 4/);
      await expect(backend.put('a/4', chunkedReadable(Buffer.from('four')), 5)).rejects.toThrow(/4 bytes, expected 5/);
      expect(filesUnder(join(home, dir.rel, 'clean'))).toEqual(['a/1']);
    });

    it('replaces an existing file also without posix-rename@openssh.com (plain SFTP rename refuses to)', async () => {
      const backend = make(`${dir.rel}/norename`);
      await backend.put('k', Buffer.from('first'));
      for (const session of backend.pool.sessions) {
        delete (session.sftp as unknown as { _extensions: Record<string, string> })._extensions['posix-rename@openssh.com'];
        expect(session.hasExtension('posix-rename@openssh.com')).toBe(false);
      }
      await backend.put('k', Buffer.from('second'));
      await backend.put('new', Buffer.from('fresh'));
      expect((await backend.getBuffer('k')).toString()).toBe('second');
      expect(filesUnder(join(home, dir.rel, 'norename'))).toEqual(['k', 'new']);
    });

    it('permission denied outside the writable login directory: permanent "permission"', async () => {
      const inReadonly = make('/readonly/sub');
      for (const op of [() => inReadonly.check(), () => inReadonly.put('x/y', Buffer.from('data'))]) {
        const err = await failure(op());
        expect(err).toMatchObject({ permanent: true, kind: 'permission' });
        expect(err.message).toContain('permission denied');
        expect(err.message).toContain('//readonly/sub');
      }
      const atRoot = make('/');
      const err = await failure(atRoot.put('file-in-the-box-root', Buffer.from('x')));
      expect(err).toMatchObject({ permanent: true, kind: 'permission' });
      // Reading there works, and deleting is refused the same way.
      const readonly = make('/readonly');
      expect((await readonly.getBuffer('hello.txt')).toString()).toBe('hello\n');
      expect(await failure(readonly.delete(['hello.txt']))).toMatchObject({ permanent: true, kind: 'permission' });
    });

    it('a full disk: permanent "no-space" and no temp file left (root only: mounts a tiny tmpfs in the box)', async (ctx) => {
      const full = join(home, dir.rel, 'full');
      await mkdir(full, { recursive: true });
      try {
        const uid = execFileSync('id', ['-u', s.user]).toString().trim();
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=256k,uid=${uid}`, 'zfs-offsite-sftp-test', full], { stdio: 'pipe' });
      } catch (err) {
        return ctx.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`);
      }
      try {
        const backend = make(`${dir.rel}/full`);
        const err = await failure(backend.put('big', randomBytes(2 * MiB)));
        expect(err).toMatchObject({ permanent: true, kind: 'no-space' });
        expect(err.message).toMatch(/cannot write big: no space left/);
        expect(await readdir(full)).toEqual([]);
      } finally {
        execFileSync('umount', [full]);
      }
    });

    describe('host keys', () => {
      const hostFile = () => join(scratch, `known_hosts-${randomBytes(4).toString('hex')}`);
      const name = () => hostKeyName(s.host, s.port);
      const otherKey = () => {
        const f = join(scratch, `other-${randomBytes(4).toString('hex')}`);
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f]);
        return readFileSync(`${f}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      };

      it('an unknown host key is refused, showing its SHA256 fingerprint and how to accept it', async () => {
        const file = hostFile();
        writeFileSync(file, `[other.example]:${s.port} ${otherKey()}\n`);
        const backend = make(`${dir.rel}/hk`, { hostKeys: { files: [file], acceptNew: false } });
        const err = await failure(backend.check());
        expect(err).toMatchObject({ permanent: true });
        expect(err.message).toContain(`unknown SSH host key for ${name()}: ssh-ed25519 ${s.hostFingerprint}`);
        expect(err.message).toContain('--sftp-accept-new');
        expect(err.message).toContain(file);
        expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(1); // nothing added
      });

      it('a changed host key is refused, even with accept-new, and the file is left alone', async () => {
        const file = hostFile();
        const before = `${name()} ${otherKey()}\n`;
        writeFileSync(file, before);
        for (const acceptNew of [false, true]) {
          const backend = make(`${dir.rel}/hk`, { hostKeys: { files: [file], acceptNew } });
          const err = await failure(backend.check());
          expect(err).toMatchObject({ permanent: true });
          expect(err.message).toMatch(/host key of .* has CHANGED/);
          expect(err.message).toContain(s.hostFingerprint);
          expect(err.message).toContain(`${file}:1`);
        }
        expect(readFileSync(file, 'utf8')).toBe(before);
      });

      it('accept-new records an unknown key (creating the file) and the next connection trusts it', async () => {
        const file = join(scratch, `new-dir-${randomBytes(4).toString('hex')}`, 'known_hosts');
        const first = make(`${dir.rel}/hk`, { hostKeys: { files: [file], acceptNew: true }, sessions: 3 });
        // Parallel operations on a fresh backend: the key is checked and recorded once.
        await Promise.all(Array.from({ length: 6 }, (_, i) => first.put(`k${i}`, Buffer.from(`${i}`))));
        const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`^\\[${s.host.replace(/\./g, '\\.')}\\]:${s.port} ssh-ed25519 `));
        const entries = parseKnownHosts(lines.join('\n'), file);
        expect(fingerprint(entries[0]!.key)).toBe(s.hostFingerprint);
        const second = make(`${dir.rel}/hk`, { hostKeys: { files: [file], acceptNew: false } });
        expect((await second.getBuffer('k5')).toString()).toBe('5');
      });

      it('trusts hashed known_hosts entries (ssh-keygen -H)', async () => {
        const file = hostFile();
        writeFileSync(file, readFileSync(s.knownHosts));
        execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'pipe' });
        expect(readFileSync(file, 'utf8')).toMatch(/^\|1\|/);
        const backend = make(`${dir.rel}/hk`, { hostKeys: { files: [file], acceptNew: false } });
        await backend.check();
      });
    });

    describe('authentication', () => {
      it('a key the server does not accept: permanent "credentials", naming the key and what the server accepts', async () => {
        const file = join(scratch, 'wrong_key'); // a valid private key that is not in authorized_keys
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
        const backend = make(`${dir.rel}/auth`, { auth: { key: { file, data: readFileSync(file) } } });
        for (const op of [() => backend.check(), () => backend.put('x', Buffer.from('x')), () => backend.head('x')]) {
          const err = await failure(op());
          expect(err).toMatchObject({ permanent: true, kind: 'credentials' });
          expect(err.message).toContain(`SSH authentication failed for user ${s.user}`);
          expect(err.message).toContain(`key ${file} rejected`);
          expect(err.message).toMatch(/the server accepts: publickey, password/);
        }
      });

      it('a wrong password: permanent "credentials", never showing the password; the right one works', async () => {
        const secret = `WRONG-${randomBytes(12).toString('hex')}`;
        const bad = make(`${dir.rel}/auth`, { auth: { password: secret } });
        const err = await failure(bad.check());
        expect(err).toMatchObject({ permanent: true, kind: 'credentials' });
        expect(err.message).toContain('password (ZFS_OFFSITE_SFTP_PASSWORD) rejected');
        expect(allText(err)).not.toContain(secret);
        const good = make(`${dir.rel}/auth`, { auth: { password: s.password } });
        await good.put('by-password', Buffer.from('ok'));
        expect((await good.getBuffer('by-password')).toString()).toBe('ok');
      });

      it('an encrypted key: a missing or wrong passphrase is "credentials" (never shown); the right one works', async () => {
        const data = readFileSync(s.keyEncrypted);
        const file = s.keyEncrypted;
        const missing = await failure(make(`${dir.rel}/auth`, { auth: { key: { file, data } } }).check());
        expect(missing).toMatchObject({ permanent: true, kind: 'credentials' });
        expect(missing.message).toMatch(/cannot use the SSH key .*passphrase.*ZFS_OFFSITE_SFTP_PASSPHRASE/);
        const secret = `wrong-${randomBytes(8).toString('hex')}`;
        const wrong = await failure(make(`${dir.rel}/auth`, { auth: { key: { file, data, passphrase: secret } } }).check());
        expect(wrong).toMatchObject({ permanent: true, kind: 'credentials' });
        expect(allText(wrong)).not.toContain(secret);
        await make(`${dir.rel}/auth`, { auth: { key: { file, data, passphrase: s.keyPassphrase } } }).check();
      });

      it('logs in through an ssh-agent (SSH_AUTH_SOCK)', async () => {
        const sock = join(scratch, 'agent.sock');
        const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
        try {
          for (let i = 0; i < 100; i++) {
            try {
              statSync(sock);
              break;
            } catch {
              await new Promise((r) => setTimeout(r, 20));
            }
          }
          execFileSync('ssh-add', ['-q', s.key], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'pipe' });
          const saved = { ...process.env };
          Object.assign(process.env, { SSH_AUTH_SOCK: sock, ZFS_OFFSITE_SFTP_KNOWN_HOSTS: s.knownHosts });
          delete process.env.ZFS_OFFSITE_SFTP_KEY;
          delete process.env.ZFS_OFFSITE_SFTP_PASSWORD;
          let backend;
          try {
            backend = await openBackend(`sftp://${s.user}@${s.host}:${s.port}/${dir.rel}/agent`);
          } finally {
            process.env = saved;
          }
          await backend.put('via-agent', Buffer.from('agent'));
          expect((await backend.getBuffer('via-agent')).toString()).toBe('agent');
          await backend.close();
        } finally {
          agent.kill();
        }
      });

      it('no configured method at all is a UsageError before connecting', async () => {
        const saved = { ...process.env };
        for (const k of ['SSH_AUTH_SOCK', 'ZFS_OFFSITE_SFTP_KEY', 'ZFS_OFFSITE_SFTP_PASSWORD']) delete process.env[k];
        try {
          await expect(openBackend(`sftp://${s.user}@${s.host}:${s.port}/x`)).rejects.toThrow(/no SSH credentials .*--sftp-key/);
          await expect(openBackend(`sftp://${s.user}@${s.host}:${s.port}/x`, { sftpKey: '/nonexistent/key' })).rejects.toThrow(/cannot read the SSH key \/nonexistent\/key/);
        } finally {
          process.env = saved;
        }
      });
    });

    it('a refused connection is a transient failure naming the server', async () => {
      const down = make('x', { port: 1 });
      const err = await failure(down.check());
      expect(err.permanent).toBe(false);
      expect(err.message).toContain('cannot connect to 127.0.0.1:1: connection refused (ECONNREFUSED)');
    });

    it('streams ranged reads and parallel puts over the connection pool', async () => {
      const backend = make(`${dir.rel}/pool`, { sessions: 2 });
      const data = randomBytes(8 * MiB + 5);
      await Promise.all(Array.from({ length: 6 }, (_, i) => backend.put(`p/${i}`, data)));
      const part = await readAll(await backend.get('p/3', { offset: 6 * MiB, length: MiB }));
      expect(part.equals(data.subarray(6 * MiB, 7 * MiB))).toBe(true);
      const stream = await backend.get('p/4');
      const head = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
      stream.destroy(); // a consumer giving up releases the handle and the session
      expect(head.length).toBeGreaterThan(0);
      expect((await readAll(await backend.get('p/5'))).equals(data)).toBe(true);
      expect(backend.pool.sessions.length).toBeGreaterThanOrEqual(1);
      expect(backend.pool.sessions.length).toBeLessThanOrEqual(2);
    });

    it('the CLI takes --sftp-key, --sftp-known-hosts and --sftp-accept-new', async () => {
      const url = `sftp://${s.user}@${s.host}:${s.port}/${dir.rel}/cli`;
      const env = { SSH_AUTH_SOCK: '', ZFS_OFFSITE_SFTP_KEY: '', ZFS_OFFSITE_SFTP_KNOWN_HOSTS: '', ZFS_OFFSITE_SFTP_PASSWORD: '' };
      // An archive to list (list creates nothing: without the marker it would be exit 4).
      const put = await runCli(['put', '--to', url, '--sftp-key', s.key, '--sftp-known-hosts', s.knownHosts], { env, input: fixtureBytes('zse-tiny-full.zfs') });
      expect(put.stderr).toBe('');
      expect(put.code).toBe(0);
      const ok = await runCli(['list', url, '--sftp-key', s.key, '--sftp-known-hosts', s.knownHosts, '--json'], { env });
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      const file = join(scratch, 'cli_known_hosts');
      const refused = await runCli(['list', url, '--sftp-key', s.key, '--sftp-known-hosts', file], { env });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(s.hostFingerprint);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      const accepted = await runCli(['list', url, '--sftp-key', s.key, '--sftp-known-hosts', file, '--sftp-accept-new', '--json'], { env });
      expect(accepted.code).toBe(0);
      expect(readFileSync(file, 'utf8')).toContain('ssh-ed25519');
      const password = await runCli(['list', `sftp://${s.user}:${s.password}@${s.host}:${s.port}/x`], { env });
      expect(password.code).toBe(2);
      expect(password.stderr).toMatch(/password does not belong in the URL/);
      expect(password.stderr).not.toContain(s.password);
    });
  });
});
