import { describe, expect, it } from 'vitest';
import { Interrupts } from '../../src/cli/interrupt.js';
import { InterruptedError } from '../../src/util/interrupted.js';

describe('the interrupted line', () => {
  it('offers a resume to writers, with the chunks their journal lists', () => {
    const interrupts = new Interrupts();
    interrupts.takeOver();
    expect(interrupts.line(new InterruptedError('SIGINT', 3))).toBe('zfs-offsite: interrupted: 3 chunks stored; rerun the same command to resume');
    expect(interrupts.line(new InterruptedError('SIGTERM', 1))).toBe('zfs-offsite: interrupted: 1 chunk stored; rerun the same command to resume');
    expect(interrupts.line(new Error('whatever failed on the way out'))).toBe('zfs-offsite: interrupted; rerun the same command to resume');
  });

  it('says what a command that cleans up instead (drill) wants said, never a resume it cannot do', () => {
    const interrupts = new Interrupts();
    interrupts.takeOver('nothing to resume (a drill removes its scratch dataset on the way out)');
    expect(interrupts.line(new InterruptedError('SIGINT'))).toBe('zfs-offsite: interrupted; nothing to resume (a drill removes its scratch dataset on the way out)');
  });
});
