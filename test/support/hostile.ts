/**
 * Tools of the hostile-target suite (test/security/hostile-*.test.ts, issue 15): the CLI run
 * with a hard timeout (a command blocked on a planted FIFO must fail the test, not hang it),
 * a canary directory snapshotted without following links, planting of links and special
 * files, and the two targets the suite attacks — a local directory and the test SFTP server,
 * whose served directory is a directory of this host (test/support/sshd.ts: `${chroot}/home`),
 * so links and FIFOs are planted there directly.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { CLI } from './cli.js';
import { SSHD_HINT, sshdSettings } from './sshd.js';

export const COMMAND_TIMEOUT_MS = 60_000;
/** A case runs its commands in five steps, each of which may have to wait out one hung command. */
export const CASE_TIMEOUT_MS = 6 * COMMAND_TIMEOUT_MS + 60_000;

export interface TimedResult {
  code: number | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  /** The command did not finish within the timeout and was killed (with its children). */
  timedOut: boolean;
}

/** Process groups still running: killed if the test process exits first (a run aborted midway). */
const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Runs the built CLI; after `timeoutMs` its whole process group is killed and `timedOut` set. */
export function runTimed(args: string[], options: { env?: NodeJS.ProcessEnv; input?: Buffer; timeoutMs?: number } = {}): Promise<TimedResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    if (child.pid) live.add(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (child.pid) live.delete(child.pid);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString(), timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? Buffer.alloc(0));
  });
}

/** What a user must never see: a JavaScript stack trace or a raw error. */
export function crashSigns(text: string): string[] {
  const found: string[] = [];
  if (/\n\s+at /.test(text)) found.push('stack frame ("    at …")');
  if (/^\w*Error:/m.test(text)) found.push('raw "Error:" line');
  if (text.includes('node:internal')) found.push('node:internal');
  return found;
}

/**
 * Every entry below `root`, by relative path: type, mode, size, mtime, and the SHA-256 of a
 * file or the target of a link. lstat only: a link is recorded, never followed.
 */
export function snapshotTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const rel = relative(root, path);
      const common = `mode=${st.mode.toString(8)} mtime=${st.mtimeMs}`;
      if (st.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(path)} ${common}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${common}`;
        walk(path);
      } else if (st.isFile()) out[rel] = `file size=${st.size} sha256=${createHash('sha256').update(readFileSync(path)).digest('hex')} ${common}`;
      else out[rel] = `special ${common}`;
    }
  };
  out['.'] = `dir mtime=${lstatSync(root).mtimeMs}`;
  walk(root);
  return out;
}

/** A relative symlink at `at` to `to` (relative, so it means the same thing to the chrooted SFTP server). */
export function plantLink(at: string, to: string): void {
  rmSync(at, { recursive: true, force: true });
  symlinkSync(relative(dirname(at), to), at);
}

/** A link whose text is given as-is (loops). */
export function plantRawLink(at: string, text: string): void {
  rmSync(at, { recursive: true, force: true });
  symlinkSync(text, at);
}

export function plantFifo(at: string): void {
  rmSync(at, { recursive: true, force: true });
  execFileSync('mkfifo', ['-m', '0666', at]);
}

/** A character device: major 1, minor 3 is /dev/null (needs root, which the suite runs as). */
export function plantDevice(at: string): void {
  rmSync(at, { recursive: true, force: true });
  execFileSync('mknod', ['-m', '0666', at, 'c', '1', '3']);
}

/** A UNIX socket file (bound, then left behind by its process: nothing listens on it). */
export function plantSocket(at: string): void {
  rmSync(at, { recursive: true, force: true });
  // Bound by its name from inside its directory: a socket path is limited to 107 bytes.
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', basename(at)], { cwd: dirname(at) });
}

/**
 * Wakes anything still blocked opening a FIFO below `root` (a command killed on timeout may
 * leave an SFTP server process waiting for a writer): opening it read-write never blocks on Linux.
 */
export function releaseFifos(root: string): void {
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(path);
      else if (st.isFIFO()) {
        try {
          closeSync(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
        } catch {
          // gone or not openable: nothing waits on it then
        }
      }
    }
  };
  walk(root);
}

/** One attacked target: its URL, the directory behind it on this host, and a canary beside it. */
export interface HostileCase {
  url: string;
  env: NodeJS.ProcessEnv;
  /** The target's directory on this host (where links are planted). */
  targetDir: string;
  /** Outside the target, reachable through a relative link from inside it. */
  canaryDir: string;
  /** Local scratch space: restore outputs, lock dir, run config. */
  workDir: string;
  /** Gives what was planted to the account that serves the target (SFTP: the box user). */
  handOver(): void;
  cleanup(): void;
}

export interface HostileBackend {
  name: string;
  makeCase(): HostileCase;
}

function workDirFor(): string {
  return mkdtempSync(join(tmpdir(), 'zo-hostile-work-'));
}

/** A local directory and the test SFTP server (skipped, saying why, when it is not running; an error under CI). */
export function hostileBackends(): HostileBackend[] {
  const backends: HostileBackend[] = [
    {
      name: 'local directory',
      makeCase() {
        const base = mkdtempSync(join(tmpdir(), 'zo-hostile-'));
        const workDir = workDirFor();
        return {
          url: `file://${join(base, 'target')}`,
          env: { ZFS_OFFSITE_LOCK_DIR: join(workDir, 'locks') },
          targetDir: join(base, 'target'),
          canaryDir: join(base, 'canary'),
          workDir,
          handOver: () => undefined,
          cleanup() {
            releaseFifos(base);
            rmSync(base, { recursive: true, force: true });
            rmSync(workDir, { recursive: true, force: true });
          },
        };
      },
    },
  ];
  const sshd = sshdSettings();
  if (sshd) {
    const owner = `${execFileSync('id', ['-u', sshd.user]).toString().trim()}:${execFileSync('id', ['-g', sshd.user]).toString().trim()}`;
    backends.push({
      name: 'SFTP (OpenSSH storage box)',
      makeCase() {
        const rel = `hostile-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
        const base = join(sshd.chroot, 'home', rel);
        mkdirSync(base);
        const workDir = workDirFor();
        return {
          url: `sftp://${sshd.user}@${sshd.host}:${sshd.port}/${rel}/target`,
          env: { ZFS_OFFSITE_SFTP_KEY: sshd.key, ZFS_OFFSITE_SFTP_KNOWN_HOSTS: sshd.knownHosts, ZFS_OFFSITE_LOCK_DIR: join(workDir, 'locks') },
          targetDir: join(base, 'target'),
          canaryDir: join(base, 'canary'),
          workDir,
          // The box user owns target AND canary: a followed link could really write there.
          handOver: () => execFileSync('chown', ['-R', '-h', owner, base]),
          cleanup() {
            releaseFifos(base);
            rmSync(base, { recursive: true, force: true });
            rmSync(workDir, { recursive: true, force: true });
          },
        };
      },
    });
  } else if (process.env.CI) {
    throw new Error(`CI must test SFTP: the test SFTP server is not running (${SSHD_HINT})`);
  } else {
    console.warn(`hostile SFTP cases skipped: the test SFTP server is not running; ${SSHD_HINT}.`);
  }
  return backends;
}
