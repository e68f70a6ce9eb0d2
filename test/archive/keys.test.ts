import { describe, expect, it } from 'vitest';
import { datasetFromPath, datasetPath, decodeComponent, encodeComponent, makeStreamId, parseManifestKey, parseStreamKey, splitSnapshotName } from '../../src/archive/format/keys.js';

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
    expect(datasetFromPath(path)).toEqual({ dataset: name });
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

  it('reads only keys spelt the way it writes them: a bad or other escape is invalid, never an exception (issue 15)', () => {
    const id = makeStreamId(0, 'full', 's1', 0xabcdef0123456789n);
    const invalid = (dir: string) => {
      const parsed = parseManifestKey(`${dir}/${id}/manifest.json`);
      expect(parsed && 'invalid' in parsed ? parsed.invalid : `valid: ${JSON.stringify(parsed)}`).toMatch(/dataset path component/);
      return (parsed as { invalid: string }).invalid;
    };
    expect(invalid('pool%ZZ')).toMatch(/"%ZZ" is not a %XX escape/);
    expect(invalid('pool%E0%A4')).toMatch(/not valid UTF-8/);
    expect(invalid('pool%')).toMatch(/"%" is not a %XX escape/);
    expect(invalid('po%41ol')).toMatch(/not escaped the way zfs-offsite writes it \("poAol"\)/);
    expect(invalid('pool%2a')).toMatch(/upper-case hex/);
    expect(invalid('pool%2Fgood')).toMatch(/decodes to "pool\/good", which would name another directory/);
    expect(invalid('pool/%2E%2E')).toMatch(/decodes to ".."/);
    expect(invalid('pool/%2E.')).toMatch(/decodes to ".."/);
    expect(invalid('pool/..')).toMatch(/decodes to ".."/);
    expect(invalid('pool/.hidden')).toMatch(/"%2Ehidden"/);
    expect(invalid('pool//x')).toMatch(/empty path component/);
    expect(invalid('pool/a%0Ab')).toMatch(/control character/);
    expect(invalid('pool/a b')).toMatch(/" " is not allowed/);
    expect(invalid('pool/\u00fc')).toMatch(/"ü" is not allowed/);
    // The snapshot part of a stream id is read by the same rule.
    const odd = parseStreamKey(`pool/20260101T000000Z-full-ba%73e-abcdef01/000000.zst`);
    expect(odd).toEqual({ invalid: expect.stringMatching(/snapshot part "ba%73e" of stream id .*: not escaped the way zfs-offsite writes it \("base"\)/) });
    expect(parseStreamKey(`pool/20260101T000000Z-full-b%ZZ-abcdef01/x`)).toEqual({ invalid: expect.stringMatching(/not a %XX escape/) });
    // Keys it writes are valid; keys in no stream directory are not stream keys at all.
    expect(parseManifestKey(`tank/my%20ds%3Av1/%2E.x/${id}/manifest.json`)).toEqual({ dataset: 'tank/my ds:v1/..x', streamId: id });
    expect(parseStreamKey('pool%ZZ/lease.json')).toBeUndefined();
    for (const name of ['a', 'my data:v1', '...', '.x', 'ü', '%', 'a.b', '-_']) expect(decodeComponent(encodeComponent(name))).toEqual({ name });
  });

  it('splits snapshot names', () => {
    expect(splitSnapshotName('pool/fs@a')).toEqual({ dataset: 'pool/fs', snapshot: 'a' });
    expect(splitSnapshotName('pool/fs')).toEqual({ dataset: 'pool/fs', snapshot: '' });
  });
});
