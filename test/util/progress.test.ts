/**
 * The progress line (issue 16, item 4): size, percent, rate and ETA, fitted to the terminal's
 * width by dropping the least important fields and then cutting — never wrapped.
 */
import { describe, expect, it } from 'vitest';
import { formatEta, progressLine } from '../../src/util/progress.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('progressLine', () => {
  const archiving = { label: 'archiving', rawBytes: 3 * GiB, storedBytes: 1.5 * GiB, totalBytes: 12 * GiB };

  it('shows everything at 120 columns', () => {
    const line = progressLine(archiving, 30, 120);
    expect(line).toBe('archiving  3.00 GiB / 12.0 GiB  25%  ETA 1:30  102.4 MiB/s  stored 1.50 GiB (50.0%)');
    expect(line.length).toBeLessThanOrEqual(120);
  });

  it('drops the stored size first at 80 columns, and fits a long restore label', () => {
    const line = progressLine({ ...archiving, storedBytes: 1536 * MiB + 123 }, 30, 79);
    expect(line.length).toBeLessThanOrEqual(79);
    expect(line).toMatch(/25% {2}ETA 1:30 {2}102\.4 MiB\/s/);
    const restore = progressLine({ label: 'stream 12/345', rawBytes: 1023.9 * GiB, totalBytes: 1024.5 * GiB }, 86_400, 79);
    expect(restore.length).toBeLessThanOrEqual(79);
    expect(restore).toMatch(/^stream 12\/345 {2}1023\.9 GiB \/ 1\.00 TiB {2}99% {2}ETA \d+s {2}12\.1 MiB\/s$/);
  });

  it('keeps size and percent at 40 columns, and cuts rather than wraps', () => {
    const line = progressLine(archiving, 30, 40);
    expect(line).toBe('archiving  3.00 GiB / 12.0 GiB  25%');
    const narrow = progressLine(archiving, 30, 20);
    expect(narrow).toHaveLength(20);
    expect(narrow.endsWith('…')).toBe(true);
    for (const width of [40, 80, 120]) {
      for (const state of [archiving, { rawBytes: 5 * MiB, label: 'archiving', storedBytes: 5 * MiB }, { rawBytes: 0, totalBytes: 0 }]) {
        expect(progressLine(state, 1, width).length).toBeLessThanOrEqual(width);
      }
    }
  });

  it('never shows 100% or more, nor an ETA, while the stream outgrows an estimate', () => {
    const beyond = progressLine({ label: 'archiving', rawBytes: 13 * GiB, storedBytes: 13 * GiB, totalBytes: 12 * GiB, estimate: true }, 60, 120);
    expect(beyond).toMatch(/ \/ ~12\.0 GiB {2}99% {2}/);
    expect(beyond).not.toMatch(/ETA/);
    expect(progressLine({ rawBytes: 12 * GiB, totalBytes: 12 * GiB }, 60, 120)).toMatch(/ 100% /);
  });

  it('writes an ETA as seconds, m:ss or h:mm:ss', () => {
    expect([formatEta(42), formatEta(187), formatEta(3723), formatEta(-5)]).toEqual(['42s', '3:07', '1:02:03', '0s']);
  });
});
