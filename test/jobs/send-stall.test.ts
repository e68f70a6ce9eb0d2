/**
 * A `zfs send` that stops producing data but does not exit: `--stall-timeout` ends the send with
 * the stall named, nothing committed, and the stuck zfs send stopped (zfs stand-in:
 * test/support/zfs-stand-in.mjs).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';
import { listFiles } from '../support/archive-files.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('zfs send that stalls', () => {
  it('fails after --stall-timeout with the stall named, exit 1, nothing committed, the send stopped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-stall-'));
    try {
      const guid = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
      const pidFile = join(dir, 'send.pid');
      const state = {
        log: join(dir, 'zfs.log'),
        datasets: { 'labpool/zfs-send-tiny': { encryption: 'off', snapshots: [{ name: 'base', guid, createtxg: 1, creation: 1 }] } },
        streams: { [`0:${guid}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') },
        send: { stallAfterBytes: 20_000, pidFile },
      };
      writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
      mkdirSync(join(dir, 'archive'));
      const started = Date.now();
      const r = await runCli(['send', 'labpool/zfs-send-tiny@base', '--to', join(dir, 'archive'), '--stall-timeout', '1s'], {
        env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: join(dir, 'state.json') },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^zfs-offsite: error: the input produced no data for 1 s \(stalled zfs send\?\)[^\n]*\n$/);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(listFiles(join(dir, 'archive')).filter((f) => f.endsWith('manifest.json'))).toEqual([]);
      expect(alive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
