import { describe, expect, it } from 'vitest';
import { datasetFromPath, datasetPath, encodeComponent, makeStreamId, parseManifestKey, splitSnapshotName } from '../../src/archive/format/keys.js';

describe('object keys', () => {
  it('keeps safe dataset names readable and escapes the rest', () => {
    expect(datasetPath('tank/data/home')).toBe('tank/data/home');
    expect(encodeComponent('my data:v1')).toBe('my%20data%3Av1');
    expect(encodeComponent('..')).toBe('%2E.');
    expect(encodeComponent('.hidden')).toBe('%2Ehidden');
    expect(encodeComponent('a.b')).toBe('a.b');
  });

  it('round-trips every character ZFS allows in names', () => {
    const name = 'pool/a-b_c.d:e f/ü';
    const path = datasetPath(name);
    expect(path).toMatch(/^[A-Za-z0-9._%/-]+$/);
    expect(datasetFromPath(path)).toBe(name);
  });

  it('makes time-sortable stream ids with kind, snapshot and short guid', () => {
    const id = makeStreamId(Date.UTC(2026, 10, 22, 2, 0, 0) / 1000, 'incr', 'daily_2026-11-22', 0x3fa9c1d2_00000001n);
    expect(id).toBe('20261122T020000Z-incr-daily_2026-11-22-3fa9c1d2');
    const older = makeStreamId(Date.UTC(2026, 10, 21) / 1000, 'full', 'zzz', 1n);
    expect([id, older].sort()).toEqual([older, id]);
  });

  it('parses manifest keys back into dataset and stream id', () => {
    const id = makeStreamId(0, 'full', 's1', 0xabcdef0123456789n);
    expect(parseManifestKey(`tank/my%20ds/${id}/manifest.json`)).toEqual({ dataset: 'tank/my ds', streamId: id });
    expect(parseManifestKey(`tank/${id}/000000.zst`)).toBeUndefined();
    expect(parseManifestKey('tank/not-a-stream/manifest.json')).toBeUndefined();
    expect(parseManifestKey('manifest.json')).toBeUndefined();
  });

  it('splits snapshot names', () => {
    expect(splitSnapshotName('pool/fs@a')).toEqual({ dataset: 'pool/fs', snapshot: 'a' });
    expect(splitSnapshotName('pool/fs')).toEqual({ dataset: 'pool/fs', snapshot: '' });
  });
});
