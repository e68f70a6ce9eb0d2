/**
 * Hostile targets, part 2 (issue 15): special files where the archive expects regular ones —
 * FIFOs at the marker, a journal, a lease, a manifest and a chunk (no command may hang on
 * one), a character device and a UNIX socket — and dataset directories whose names do not
 * decode (`pool%ZZ`, a bad escape) or are not canonical (`pool%2Fx`): the rest of the archive
 * must keep working and verify must name them (exit 3). Local directory AND SFTP server; what
 * is checked per command is in test/support/hostile-commands.ts. Part 1: hostile-target-links.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CASE_TIMEOUT_MS, hostileBackends } from '../support/hostile.js';
import { attack, commandsFor } from '../support/hostile-commands.js';
import { buildTemplate, LAYOUTS, type Template } from '../support/hostile-layouts.js';

const layouts = LAYOUTS.filter((l) => l.group === 'special' || l.group === 'escape');
const backends = hostileBackends();
let template: Template;
const runs = layouts.reduce((n, l) => n + commandsFor(l).length, 0);

beforeAll(async () => {
  template = await buildTemplate();
});
afterAll(() => {
  template?.cleanup();
  console.log(`hostile targets (special files, escapes): ${layouts.length} layouts × ${backends.length} backends, ${runs * backends.length} command runs (${runs} per backend)`);
});

describe.each(backends)('hostile special files and names on $name', (backend) => {
  it.concurrent.each(layouts.map((l) => [l.name, l] as const))(
    '%s: canary untouched, documented exits, no crash, no hang',
    async (_name, layout) => {
      const failures = await attack(backend, layout, template);
      expect(failures.join('\n\n')).toBe('');
    },
    CASE_TIMEOUT_MS,
  );
});
