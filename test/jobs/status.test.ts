/**
 * Issue 20 (freshness): `status` on generated archives — a dataset whose newest snapshot is older
 * than --max-age (or its config entry's max_age:) turns the exit code to 3 and the --nagios line
 * to CRITICAL; a fresh one is 0 / OK. The verify result `verify --record` stores is shown, a
 * garbage one is "unknown" and never an orphan object; --metrics-file passes promtool.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusKey } from '../../src/archive/format/status-record.js';
import { runCli } from '../support/cli.js';
import { checkMetrics, checkRules } from '../support/promtool.js';
import { buildStream } from '../support/synthetic-stream.js';

const OLD = 'pool/old';
const FRESH = 'pool/fresh';
const HOUR = 3600;
const guid = (base: bigint, n: number) => base + BigInt(n);
const now = () => Math.floor(Date.now() / 1000);

/** Stream i of a chain of `dataset` (i = 0: the full), its snapshot taken at `created` (Unix seconds). */
function chainStream(dataset: string, base: bigint, i: number, created: number): Buffer {
  return Buffer.from(buildStream({ substreams: [{ toname: `${dataset}@s${i}`, toguid: guid(base, i + 1), fromguid: i === 0 ? 0n : guid(base, i), creationTime: created }] }).bytes);
}

let dir: string;
let archive: string;
const env = () => ({ ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') });
const cli = (...args: string[]) => runCli(args, { env: env() });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zo-status-'));
  archive = join(dir, 'archive');
  // pool/old: a full and two incrementals, the newest taken 2026-01-03 (long before now).
  for (let i = 0; i < 3; i++) {
    const r = await runCli(['put', '--to', archive, '--no-progress'], { env: env(), input: chainStream(OLD, 0x7100_0000_0000_0000n, i, Date.UTC(2026, 0, 1 + i, 2) / 1000) });
    expect(r.code, r.stderr).toBe(0);
  }
  // pool/fresh: one full, taken an hour ago.
  const r = await runCli(['put', '--to', archive, '--no-progress'], { env: env(), input: chainStream(FRESH, 0x7200_0000_0000_0000n, 0, now() - HOUR) });
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface StatusJson {
  ok: boolean;
  datasets: {
    dataset: string;
    state: string;
    ageSeconds: number;
    ageFrom: string;
    maxAgeSeconds: number;
    chainLength: number;
    streams: number;
    storedBytes: number;
    streamBytes: number;
    newest: { snapshot: string };
    verify: { ok: boolean; mode: string } | null;
    drill: unknown;
  }[];
}

describe('status', () => {
  it('exit 3 when the newest snapshot of a dataset is older than --max-age; 0 when every one is fresh', async () => {
    const stale = await cli('status', archive, '--json');
    expect(stale.code, stale.stderr).toBe(3);
    const report = JSON.parse(stale.stdout) as StatusJson;
    expect(report.ok).toBe(false);
    const [fresh, old] = report.datasets;
    expect(old).toMatchObject({
      dataset: OLD,
      state: 'stale',
      ageFrom: 'snapshot-creation',
      chainLength: 3,
      streams: 3,
      newest: { snapshot: 's2' },
      maxAgeSeconds: 26 * HOUR,
      verify: null,
      drill: null,
    });
    expect(old!.ageSeconds).toBeGreaterThan(now() - Date.UTC(2026, 0, 3, 2) / 1000 - 60);
    expect(old!.storedBytes).toBeGreaterThan(0);
    expect(old!.streamBytes).toBeGreaterThan(0);
    expect(fresh).toMatchObject({ dataset: FRESH, state: 'ok', chainLength: 1, streams: 1, newest: { snapshot: 's0' } });
    expect(Math.abs(fresh!.ageSeconds - HOUR)).toBeLessThan(120);

    // Only the fresh dataset (and its children), or a limit the old one is within: 0.
    const one = await cli('status', archive, FRESH);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/all 1 dataset\(s\) fresh/);
    const generous = await cli('status', archive, '--max-age', '3650d');
    expect(generous.code, generous.stderr).toBe(0);
    // Less than the fresh one's hour: both stale.
    const strict = await cli('status', archive, FRESH, '--max-age', '30m');
    expect(strict.code).toBe(3);
    expect(strict.stdout).toMatch(/pool\/fresh: STALE: the newest snapshot is 1h( \dm)? old \(max 30m\)/);
  });

  it('--nagios: one line, OK or CRITICAL with perfdata, Nagios exit codes', async () => {
    const critical = await cli('status', archive, '--nagios');
    expect(critical.code).toBe(2);
    const lines = critical.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ZFS-OFFSITE CRITICAL - 1 of 2 dataset\(s\) not fresh: pool\/old stale \(\d+d( \d+h)? old, max 1d 2h\) \| /);
    expect(lines[0]).toMatch(/'pool\/old age'=\d+s;;93600;0 'pool\/old chain'=3;;;0/);

    const ok = await cli('status', archive, FRESH, '--nagios');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^ZFS-OFFSITE OK - 1 dataset\(s\) fresh; oldest newest snapshot pool\/fresh@s0 1h( \dm)? old \(max 1d 2h\) \| 'pool\/fresh age'=\d+s;;93600;0 'pool\/fresh chain'=1;;;0\n$/,
    );

    // Could not run (no archive there): UNKNOWN on stdout, exit 3.
    const unknown = await cli('status', join(dir, 'nothing-here'), '--nagios');
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toMatch(/^ZFS-OFFSITE UNKNOWN - no archive at .*nothing-here/);
  });

  it('without --nagios: an unknown dataset is exit 2, no archive exit 4', async () => {
    expect((await cli('status', archive, 'pool/nope')).code).toBe(2);
    expect((await cli('status', join(dir, 'nothing-here'))).code).toBe(4);
    expect((await cli('status', archive, '--json', '--nagios')).code).toBe(2);
  });

  it('--config: each entry by its own max_age:, a dataset not archived yet is CRITICAL', async () => {
    const config = join(dir, 'status.yaml');
    writeFileSync(config, `defaults:\n  target: ${archive}\n  max_age: 2h\ndatasets:\n  - name: ${OLD}\n    max_age: 3650d\n  - name: ${FRESH}\n  - name: pool/never\n`);
    const r = await cli('status', '--config', config, '--json');
    expect(r.code, r.stderr).toBe(3);
    const report = JSON.parse(r.stdout) as StatusJson;
    expect(report.datasets.map((d) => [d.dataset, d.state, d.maxAgeSeconds])).toEqual([
      [OLD, 'ok', 3650 * 86_400],
      [FRESH, 'ok', 2 * HOUR],
      ['pool/never', 'not-archived', 2 * HOUR],
    ]);
    // The flag typed wins over the config's max_age.
    const flag = await cli('status', '--config', config, '--dataset', OLD, '--max-age', '26h', '--json');
    expect(flag.code).toBe(3);
    expect((JSON.parse(flag.stdout) as StatusJson).datasets.map((d) => d.state)).toEqual(['stale']);
    writeFileSync(config, readFileSync(config, 'utf8').replace('  - name: pool/never\n', ''));
    expect((await cli('status', '--config', config)).code).toBe(0);
  });

  it('shows the result verify --record stored; a forged record is unknown, and never an orphan object', async () => {
    const verify = await cli('verify', archive, '--record');
    expect(verify.code, verify.stderr).toBe(0);
    const shown = JSON.parse((await cli('status', archive, '--json')).stdout) as StatusJson;
    expect(shown.datasets.map((d) => d.verify && [d.verify.ok, d.verify.mode])).toEqual([
      [true, 'quick'],
      [true, 'quick'],
    ]);
    expect((await cli('status', archive, FRESH)).stdout).toMatch(/ok \d{4}-\d\d-\d\d \(quick\)/);

    // Whoever can write the target can write the record: not valid, it is unknown (and changes no exit code).
    writeFileSync(join(archive, statusKey(FRESH, 'verify')), '{"format":"zfs-offsite-status","formatVersion":"1.0","kind":"verify","dataset":"pool/other","ok":true,"at":"2026-01-01T00:00:00Z"}');
    const forged = await cli('status', archive, FRESH, '--json');
    expect(forged.code).toBe(0);
    expect((JSON.parse(forged.stdout) as StatusJson).datasets[0]!.verify).toBeNull();
    const again = await cli('verify', archive, '--json');
    expect(again.code, again.stdout).toBe(0);
  });

  it('--metrics-file: written atomically, accepted by promtool, freshness per dataset and target', async () => {
    const metrics = join(dir, 'metrics');
    rmSync(metrics, { recursive: true, force: true });
    const file = join(metrics, 'status.prom');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(metrics);
    const r = await cli('status', archive, '--metrics-file', file);
    expect(r.code).toBe(3);
    expect(readdirSync(metrics)).toEqual(['status.prom']);
    const text = readFileSync(file, 'utf8');
    const check = checkMetrics(text);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
    const target = `target="${archive}"`;
    expect(text).toContain(`zfs_offsite_fresh{dataset="${OLD}",${target}} 0`);
    expect(text).toContain(`zfs_offsite_fresh{dataset="${FRESH}",${target}} 1`);
    expect(text).toContain(`zfs_offsite_chain_length{dataset="${OLD}",${target}} 3`);
    expect(text).toContain(`zfs_offsite_newest_snapshot_timestamp_seconds{dataset="${OLD}",${target}} ${Date.UTC(2026, 0, 3, 2) / 1000}`);
    expect(text).toMatch(/^# TYPE zfs_offsite_newest_snapshot_age_seconds gauge$/m);
    expect(text).toContain(`zfs_offsite_last_run_success{command="status",dataset="${OLD}",${target}} 0`);
    // A failing dataset has no last success yet; the fresh one has one.
    expect(text).not.toContain(`zfs_offsite_last_success_timestamp_seconds{command="status",dataset="${OLD}"`);
    expect(text).toContain(`zfs_offsite_last_success_timestamp_seconds{command="status",dataset="${FRESH}"`);
    expect(existsSync(file)).toBe(true);
  });

  it('--metrics-file in a missing directory is refused before anything is done (exit 2)', async () => {
    const r = await cli('verify', archive, '--record', '--metrics-file', join(dir, 'nope', 'verify.prom'));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`zfs-offsite: error: --metrics-file ${join(dir, 'nope', 'verify.prom')}: no such directory ${join(dir, 'nope')}\n`);
    expect(r.stdout).toBe('');
  });

  it("the README's alert rules pass promtool check rules", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Monitoring and drills'));
    const rules = /```yaml\n(groups:[\s\S]*?)```/.exec(section)?.[1];
    expect(rules).toBeDefined();
    const check = checkRules(rules!, dir);
    expect(check.output).toMatch(/SUCCESS: 3 rules found/);
    expect(check.status).toBe(0);
  });

  it('--metrics-file on verify and prune: accepted by promtool', async () => {
    const verifyFile = join(dir, 'verify.prom');
    const v = await cli('verify', archive, '--metrics-file', verifyFile);
    expect(v.code, v.stderr).toBe(0);
    const vt = readFileSync(verifyFile, 'utf8');
    expect(checkMetrics(vt)).toEqual({ status: 0, output: '' });
    expect(vt).toContain(`zfs_offsite_verify_problems{dataset="${OLD}",target="${archive}"} 0`);
    expect(vt).toContain(`zfs_offsite_last_run_success{command="verify",dataset="${OLD}",target="${archive}"} 1`);

    const pruneFile = join(dir, 'prune.prom');
    const p = await cli('prune', archive, OLD, '--keep-last', '1', '--metrics-file', pruneFile);
    expect(p.code, p.stderr).toBe(0);
    const pt = readFileSync(pruneFile, 'utf8');
    expect(checkMetrics(pt)).toEqual({ status: 0, output: '' });
    expect(pt).toContain(`zfs_offsite_pruned_streams{dataset="${OLD}",target="${archive}"} 0`);
    // A dry run deletes nothing and writes no metrics.
    const dry = join(dir, 'dry.prom');
    expect((await cli('prune', archive, OLD, '--keep-last', '1', '--dry-run', '--metrics-file', dry)).code).toBe(0);
    expect(existsSync(dry)).toBe(false);
  });
});
