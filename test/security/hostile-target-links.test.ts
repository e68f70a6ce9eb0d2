/**
 * Hostile targets, part 1 (issue 15): symbolic links to a canary directory outside the target
 * at every level of the archive — marker, datasets directory, dataset, stream directory (also
 * the interrupted upload a rerun of `put` resumes), chunk, a subfolder a manifest points into,
 * manifest, SHA256SUMS, journal, lease — dangling links and link loops; plus a clean control.
 * Every command runs against each layout on a local directory AND the SFTP server; the canary
 * must stay untouched and every output be a documented exit code with no stack trace
 * (test/support/hostile-commands.ts). Part 2: hostile-target-special.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CASE_TIMEOUT_MS, hostileBackends } from '../support/hostile.js';
import { attack, commandsFor } from '../support/hostile-commands.js';
import { buildTemplate, CONTROL, LAYOUTS, type Template } from '../support/hostile-layouts.js';

const layouts = [CONTROL, ...LAYOUTS.filter((l) => l.group === 'link')];
const backends = hostileBackends();
let template: Template;
const runs = layouts.reduce((n, l) => n + commandsFor(l).length, 0);

beforeAll(async () => {
  template = await buildTemplate();
});
afterAll(() => {
  template?.cleanup();
  console.log(`hostile targets (links): ${layouts.length} layouts × ${backends.length} backends, ${runs * backends.length} command runs (${runs} per backend)`);
});

describe.each(backends)('hostile links on $name', (backend) => {
  it.concurrent.each(layouts.map((l) => [l.name, l] as const))(
    '%s: canary untouched, documented exits, no crash, no hang',
    async (_name, layout) => {
      const failures = await attack(backend, layout, template);
      expect(failures.join('\n\n')).toBe('');
    },
    CASE_TIMEOUT_MS,
  );
});
