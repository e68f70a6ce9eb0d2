import { describe, expect, it } from 'vitest';
import { checkZfsName, shellQuote, splitCommandWords } from '../../src/zfs/command.js';
import { parseSnapshotLines } from '../../src/zfs/zfs.js';

describe('zfs command prefix', () => {
  it('splits words with quotes and escapes, without a shell', () => {
    expect(splitCommandWords('ssh -p 2222 root@127.0.0.1 zfs')).toEqual(['ssh', '-p', '2222', 'root@127.0.0.1', 'zfs']);
    expect(splitCommandWords(`ssh -o "ProxyCommand=nc %h 22" 'my host' zfs`)).toEqual(['ssh', '-o', 'ProxyCommand=nc %h 22', 'my host', 'zfs']);
    expect(splitCommandWords('a\\ b c')).toEqual(['a b', 'c']);
    expect(() => splitCommandWords('ssh "open')).toThrow(/unbalanced quote/);
    expect(() => splitCommandWords('   ')).toThrow(/empty/);
  });

  it('quotes arguments for a remote shell so they cannot inject commands', () => {
    expect(shellQuote('tank/ds@snap')).toBe('tank/ds@snap');
    expect(shellQuote('my ds')).toBe("'my ds'");
    expect(shellQuote("it's;rm -rf /")).toBe(`'it'\\''s;rm -rf /'`);
  });

  it('refuses names that are not ZFS names', () => {
    expect(() => checkZfsName('tank/ds@s1', 'snapshot')).not.toThrow();
    expect(() => checkZfsName('tank/my ds#bm', 'bookmark')).not.toThrow();
    expect(() => checkZfsName('tank/ds;reboot', 'dataset')).toThrow(/invalid ZFS dataset name/);
    expect(() => checkZfsName('-o foo', 'dataset')).toThrow(/invalid/);
    expect(() => checkZfsName('tank/$(id)', 'dataset')).toThrow(/invalid/);
  });

  it('parses zfs list -Hp output with 64-bit GUIDs exactly', () => {
    const rows = parseSnapshotLines('tank/ds@a\t18446744073709551615\t12\t1700000000\ntank/ds#b\t42\t13\t1700000001\n');
    expect(rows).toEqual([
      { name: 'tank/ds@a', kind: 'snapshot', guid: 18446744073709551615n, createtxg: 12n, creation: 1700000000 },
      { name: 'tank/ds#b', kind: 'bookmark', guid: 42n, createtxg: 13n, creation: 1700000001 },
    ]);
  });
});
