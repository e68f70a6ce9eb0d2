import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  /** stdout as bytes (a restored stream with --output -). */
  stdoutBytes: Buffer;
  stderr: string;
}

/**
 * Local locks of the CLI runs of this test process (a file's runs share it, so they still lock
 * each other out): not /run/zfs-offsite, which another test run on the same machine also uses
 * for the same dataset names. A test may set its own ZFS_OFFSITE_LOCK_DIR.
 */
const LOCK_DIR = join(tmpdir(), `zfs-offsite-test-locks-${process.pid}`);

/** Runs the built CLI (what users run) with optional bytes on stdin; ZFS_OFFSITE_TARGET only when a test gives it (a default target of the shell would change what one argument means). */
export function runCli(args: string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ZFS_OFFSITE_LOCK_DIR: LOCK_DIR, ...process.env, ZFS_OFFSITE_TARGET: undefined, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => undefined); // the CLI may exit before reading everything (bad input)
    child.stdin.end(options.input ?? Buffer.alloc(0));
  });
}
