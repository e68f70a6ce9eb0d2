/**
 * Issue 20 (metrics): the text format src/util/prometheus.ts writes is what Prometheus's own
 * parser (promtool check metrics) accepts, also with hostile label values; the file is replaced
 * atomically, never written through a link planted at its name; a target label never carries a
 * user name or password.
 */
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gauge, outcomeSamples, targetLabel } from '../../src/jobs/metrics.js';
import { UsageError } from '../../src/util/errors.js';
import { escapeLabelValue, formatMetrics, type MetricSample, readMetricValues, writeMetricsFile } from '../../src/util/prometheus.js';
import { checkMetrics } from '../support/promtool.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zo-prom-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = 'tank/a "quoted" \\back\\slash\nnew line} {x="y"} # not a comment';

describe('formatMetrics', () => {
  it('escapes label values and HELP so promtool parses them back', () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const text = formatMetrics([
      gauge('zfs_offsite_stored_bytes', { dataset: HOSTILE, target: '/srv/x' }, 123),
      gauge('zfs_offsite_stored_bytes', { dataset: 'tank/b', target: '/srv/x' }, 1.5e12),
      gauge('zfs_offsite_fresh', { dataset: HOSTILE, target: '/srv/x' }, 0),
      { name: 'zfs_offsite_test_total', help: 'a "help" with \\ and\nnewline', type: 'counter', labels: {}, value: 7 },
    ]);
    expect(checkMetrics(text)).toEqual({ status: 0, output: '' });
    // One HELP and TYPE per family, the samples of a family together.
    expect(text.match(/^# TYPE zfs_offsite_stored_bytes gauge$/gm)).toHaveLength(1);
    expect(text).toContain('zfs_offsite_stored_bytes{dataset="tank/a \\"quoted\\" \\\\back\\\\slash\\nnew line} {x=\\"y\\"} # not a comment",target="/srv/x"} 123');
    expect(text).toContain('# HELP zfs_offsite_test_total a "help" with \\\\ and\\nnewline');
  });

  it('refuses what Prometheus would refuse: bad names, a counter without _total, two helps, a series twice', () => {
    const s = (over: Partial<MetricSample>): MetricSample => ({ name: 'zfs_offsite_x', help: 'h', type: 'gauge', labels: {}, value: 1, ...over });
    expect(() => formatMetrics([s({ name: 'zfs-offsite' })])).toThrow(/invalid metric name/);
    expect(() => formatMetrics([s({ type: 'counter' })])).toThrow(/_total/);
    expect(() => formatMetrics([s({}), s({ help: 'other', labels: { a: '1' } })])).toThrow(/two different HELP/);
    expect(() => formatMetrics([s({ labels: { 'bad-label': '1' } })])).toThrow(/invalid label name/);
    expect(() => formatMetrics([s({}), s({})])).toThrow(/given twice/);
  });
});

describe('writeMetricsFile', () => {
  it('replaces the file whole, leaves no temporary file, and reads its own values back', () => {
    const file = join(dir, 'zfs-offsite.prom');
    writeFileSync(file, 'old contents\n');
    const samples = outcomeSamples('verify', [{ dataset: HOSTILE, target: '/srv/x', ok: true, seconds: 2 }], new Date(1_700_000_000_000));
    writeMetricsFile(file, samples);
    expect(readdirSync(dir)).toEqual(['zfs-offsite.prom']);
    expect(lstatSync(file).mode & 0o777).toBe(0o644 & ~process.umask());
    const text = readFileSync(file, 'utf8');
    expect(checkMetrics(text)).toEqual({ status: 0, output: '' });
    const back = readMetricValues(file, 'zfs_offsite_last_success_timestamp_seconds');
    expect([...back.values()]).toEqual([1_700_000_000]);
    // The value is found again under the same labels: a failed run carries it over.
    const failed = outcomeSamples('verify', [{ dataset: HOSTILE, target: '/srv/x', ok: false, seconds: 2 }], new Date(1_800_000_000_000), file);
    expect(failed.find((x) => x.name === 'zfs_offsite_last_success_timestamp_seconds')?.value).toBe(1_700_000_000);
    expect(failed.find((x) => x.name === 'zfs_offsite_last_run_timestamp_seconds')?.value).toBe(1_800_000_000);
  });

  it('replaces a symbolic link planted at its name, never writing through it', () => {
    const canary = join(dir, 'canary');
    writeFileSync(canary, 'untouched');
    const file = join(dir, 'm.prom');
    symlinkSync(canary, file);
    writeMetricsFile(file, [gauge('zfs_offsite_fresh', { dataset: 'a', target: 'b' }, 1)]);
    expect(readFileSync(canary, 'utf8')).toBe('untouched');
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
    expect(readFileSync(file, 'utf8')).toContain('zfs_offsite_fresh{dataset="a",target="b"} 1');
  });

  it('a directory at the path, or a missing directory, is bad usage naming it', () => {
    mkdirSync(join(dir, 'd'));
    expect(() => writeMetricsFile(join(dir, 'd'), [])).toThrow(UsageError);
    expect(() => writeMetricsFile(join(dir, 'nope', 'm.prom'), [])).toThrow(/no such directory/);
  });
});

describe('targetLabel', () => {
  it('has no user name or password', () => {
    expect(targetLabel('sftp://u123@box.example.test:23/zfs')).toBe('sftp://box.example.test:23/zfs');
    expect(targetLabel('sftp://u:s3cr%2Ft@box/zfs')).toBe('sftp://box/zfs');
    expect(targetLabel('s3://bucket/prefix')).toBe('s3://bucket/prefix');
    expect(targetLabel('/srv/archive@2026')).toBe('/srv/archive@2026');
  });
});
