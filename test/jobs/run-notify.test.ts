/**
 * Issue 20 (pings, hooks, metrics of `run`): healthcheck_url start / success / failure pings hit
 * a local HTTP server (the run's at the top level, an entry's for its datasets), a ping server
 * that is down or answers 500 never fails the run (a warning that does not show the URL's
 * token), on_success runs beside on_failure, and run --metrics-file passes promtool and keeps a
 * dataset's last success while it fails. The zfs stand-in serves real OpenZFS streams.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';
import { checkMetrics } from '../support/promtool.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const DS = 'labpool/zfs-send-tiny';
const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();
const TOKEN = '5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278';

let dir: string;
let server: Server | undefined;
let hits: string[];

/** A ping server answering `status` to every request, recording method and path. */
async function pingServer(status = 200): Promise<string> {
  hits = [];
  server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(status).end('OK');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

function writeConfig(url: string, pattern = 'base'): string {
  const file = join(dir, 'config.yaml');
  const hook = (name: string) =>
    `[${process.execPath}, -e, "require('fs').writeFileSync(process.argv[1], JSON.stringify({d: process.env.ZFS_OFFSITE_DATASET, s: process.env.ZFS_OFFSITE_SNAPSHOT, e: process.env.ZFS_OFFSITE_ERROR}))", ${join(dir, `${name}.json`)}]`;
  writeFileSync(
    file,
    `healthcheck_url: ${url}/ping/${TOKEN}
defaults:
  target: ${join(dir, 'archive')}
  on_failure: ${hook('failed')}
  on_success: ${hook('succeeded')}
datasets:
  - name: ${DS}
    snapshot: { mode: pick, pattern: "${pattern}" }
    healthcheck_url: { start: "${url}/push/kuma?status=up&msg=start", success: "${url}/push/kuma?status=up&msg=OK", failure: "${url}/push/kuma?status=down&msg=failed" }
  - name: nopool/gone
    snapshot: { mode: pick, pattern: "*" }
    healthcheck_url: ${url}/ping/gone-${TOKEN}
`,
  );
  return file;
}

const run = (...args: string[]) =>
  runCli(['run', ...args], { env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: join(dir, 'state.json'), ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') } });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zo-run-notify-'));
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({
      log: join(dir, 'zfs.log'),
      datasets: { [DS]: { encryption: 'off', snapshots: [{ name: 'base', guid: base, createtxg: 100, creation: 1786111636 }] } },
      streams: { [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') },
    }),
  );
});

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('run: healthcheck pings, on_success, metrics', () => {
  it('pings start, success and failure: the run at the top level, each entry for its datasets', { timeout: 300_000 }, async () => {
    const url = await pingServer();
    const r = await run('--config', writeConfig(url));
    expect(r.code, r.stderr).toBe(1); // nopool/gone fails; the other dataset is archived
    expect(hits).toEqual([
      `GET /ping/${TOKEN}/start`,
      'GET /push/kuma?status=up&msg=start',
      'GET /push/kuma?status=up&msg=OK',
      `GET /ping/gone-${TOKEN}/start`,
      `GET /ping/gone-${TOKEN}/fail`,
      `GET /ping/${TOKEN}/fail`,
    ]);
    // on_success for the archived dataset, on_failure for the one that failed.
    expect(JSON.parse(readFileSync(join(dir, 'succeeded.json'), 'utf8'))).toEqual({ d: DS, s: `${DS}@base`, e: '' });
    expect(JSON.parse(readFileSync(join(dir, 'failed.json'), 'utf8'))).toMatchObject({ d: 'nopool/gone' });

    // --dataset of the one that works: the run succeeds, and a dry run pings nothing.
    hits.length = 0;
    expect((await run('--config', writeConfig(url), '--dataset', DS)).code).toBe(0);
    expect(hits).toEqual([`GET /ping/${TOKEN}/start`, 'GET /push/kuma?status=up&msg=start', 'GET /push/kuma?status=up&msg=OK', `GET /ping/${TOKEN}`]);
    hits.length = 0;
    expect((await run('--config', writeConfig(url), '--dataset', DS, '--dry-run')).code).toBe(0);
    expect(hits).toEqual([]);
  });

  it('a ping server that is down, or answers 500, never fails the run: a warning without the token', { timeout: 300_000 }, async () => {
    const url = await pingServer(500);
    const answered = await run('--config', writeConfig(url), '--dataset', DS);
    expect(answered.code, answered.stderr).toBe(0);
    expect(hits).toHaveLength(4);
    expect(answered.stderr).toMatch(/warning: healthcheck ping \(start\) to http:\/\/127\.0\.0\.1:\d+\/… failed: HTTP 500; the run goes on/);
    expect(answered.stderr).not.toContain(TOKEN);
    expect(existsSync(join(dir, 'succeeded.json'))).toBe(true);

    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const down = await run('--config', writeConfig(url), '--dataset', DS, '--json');
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout).results).toEqual([expect.objectContaining({ dataset: DS, status: 'ok' })]);
    expect(down.stderr).toMatch(/healthcheck ping \(success\) to http:\/\/127\.0\.0\.1:\d+\/… failed: ECONNREFUSED; the run goes on/);
    expect(down.stderr).not.toContain(TOKEN);
  });

  it('--metrics-file: promtool accepts it; a failing dataset keeps its last success from the previous file', { timeout: 300_000 }, async () => {
    const url = await pingServer();
    const file = join(dir, 'run.prom');
    const first = await run('--config', writeConfig(url), '--metrics-file', file);
    expect(first.code).toBe(1);
    const text = readFileSync(file, 'utf8');
    expect(checkMetrics(text)).toEqual({ status: 0, output: '' });
    const target = `target="${join(dir, 'archive')}"`;
    const success = new RegExp(`^zfs_offsite_last_success_timestamp_seconds\\{command="run",dataset="${DS}",${target}\\} (\\S+)$`, 'm');
    const at = success.exec(text)?.[1];
    expect(at).toBeDefined();
    expect(text).toContain(`zfs_offsite_last_run_success{command="run",dataset="${DS}",${target}} 1`);
    expect(text).toContain(`zfs_offsite_last_run_success{command="run",dataset="nopool/gone",${target}} 0`);
    expect(text).not.toContain('zfs_offsite_last_success_timestamp_seconds{command="run",dataset="nopool/gone"');
    expect(text).toMatch(new RegExp(`^zfs_offsite_sent_bytes\\{dataset="${DS}",${target}\\} [1-9]\\d*$`, 'm'));

    // The next night the dataset fails (no snapshot matches): its last success stays the first run's.
    const second = await run('--config', writeConfig(url, 'nomatch'), '--metrics-file', file);
    expect(second.code).toBe(1);
    const again = readFileSync(file, 'utf8');
    expect(checkMetrics(again)).toEqual({ status: 0, output: '' });
    expect(success.exec(again)?.[1]).toBe(at);
    expect(again).toContain(`zfs_offsite_last_run_success{command="run",dataset="${DS}",${target}} 0`);
  });
});
