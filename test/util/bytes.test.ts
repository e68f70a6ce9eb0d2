import { describe, expect, it } from 'vitest';
import { copyInto, formatBytes, parseSize } from '../../src/util/bytes.js';

describe('copyInto', () => {
  it('copies a Buffer or a plain Uint8Array view into a SharedArrayBuffer view at an offset, touching nothing else', () => {
    const target = new Uint8Array(new SharedArrayBuffer(16)).fill(0xee);
    copyInto(target, Buffer.from([1, 2, 3]), 2);
    const backing = new Uint8Array([9, 9, 4, 5, 9]);
    copyInto(target, backing.subarray(2, 4), 10);
    expect([...target]).toEqual([0xee, 0xee, 1, 2, 3, 0xee, 0xee, 0xee, 0xee, 0xee, 4, 5, 0xee, 0xee, 0xee, 0xee]);
  });

  it('copies into a subarray view relative to the view, not to its buffer', () => {
    const whole = new Uint8Array(new SharedArrayBuffer(8));
    copyInto(whole.subarray(4), Buffer.from([7, 8]), 1);
    expect([...whole]).toEqual([0, 0, 0, 0, 0, 7, 8, 0]);
  });
});

describe('sizes', () => {
  it('parses binary units and formats them back', () => {
    expect(parseSize('16M', 'size')).toBe(16 * 1024 * 1024);
    expect(formatBytes(1536)).toBe('1.50 KiB');
  });
});
