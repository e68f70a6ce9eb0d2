import { describe, expect, it } from 'vitest';
import { UploadShape } from '../../src/archive/pipeline/upload-shape.js';

const MiB = 1024 * 1024;

/**
 * Drives the chooser as the writer does, with a model link: `msPerChunk(parts)` is how long one
 * 16 MiB chunk takes to upload whole or in parts, two uploads in flight. Returns the shape of
 * every chunk, in order.
 */
function drive(chunks: number, msPerChunk: (parts: boolean) => number, probe = 3, keep = 48): boolean[] {
  const shape = new UploadShape(5 * MiB, probe, keep);
  const shapes: boolean[] = [];
  const slots = [0, 0];
  for (let i = 0; i < chunks; i++) {
    const { partBytes, done } = shape.next();
    const parts = partBytes !== undefined;
    shapes.push(parts);
    const slot = slots[0]! <= slots[1]! ? 0 : 1;
    const start = slots[slot]!;
    slots[slot] = start + msPerChunk(parts);
    done(16 * MiB, start, slots[slot]!);
  }
  return shapes;
}

describe('UploadShape: whole chunks or parallel parts, whichever is faster here', () => {
  it('without a part size (local, SFTP) every chunk goes whole', () => {
    const shape = new UploadShape(undefined);
    for (let i = 0; i < 10; i++) expect(shape.next().partBytes).toBeUndefined();
  });

  it('probes whole, then parts, and keeps parts where they are faster (a long link)', () => {
    const shapes = drive(60, (parts) => (parts ? 400 : 900));
    expect(shapes.slice(0, 6)).toEqual([false, false, false, true, true, true]);
    expect(shapes.slice(6, 54).every(Boolean)).toBe(true);
    // Then it probes again: a link that changes is followed.
    expect(shapes.slice(54, 57)).toEqual([false, false, false]);
  });

  it('keeps whole chunks where parts are slower (a near, busy server)', () => {
    const shapes = drive(60, (parts) => (parts ? 700 : 500));
    expect(shapes.slice(0, 6)).toEqual([false, false, false, true, true, true]);
    expect(shapes.slice(6, 54).some(Boolean)).toBe(false);
  });

  it('follows a link that becomes slow: the next probe switches to parts', () => {
    let slow = false;
    const shape = new UploadShape(5 * MiB, 3, 10);
    const chosen: boolean[] = [];
    let t = 0;
    for (let i = 0; i < 40; i++) {
      if (i === 16) slow = true;
      const { partBytes, done } = shape.next();
      const parts = partBytes !== undefined;
      chosen.push(parts);
      const ms = slow ? (parts ? 400 : 900) : parts ? 700 : 500;
      done(16 * MiB, t, t + ms);
      t += ms;
    }
    expect(chosen.slice(6, 16).some(Boolean)).toBe(false);
    expect(chosen.slice(38).every(Boolean)).toBe(true);
  });
});
