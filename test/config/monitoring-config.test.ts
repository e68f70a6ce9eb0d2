/**
 * Issue 20: the monitoring keys of the run config — healthcheck_url (top level: the run; an
 * entry: its datasets; never a default), on_success, max_age — read and checked like every key.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { UsageError } from '../../src/util/errors.js';

const FILE = '/etc/zfs-offsite/config.yaml';
const parse = (text: string) => parseConfig(text, FILE);

function problem(text: string): string {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
}

describe('config: healthcheck_url, on_success, max_age', () => {
  it('healthchecks.io form: URL/start, URL, URL/fail; a mapping names each URL', () => {
    const config = parse(`healthcheck_url: https://hc-ping.com/5bf66975-d4c7
defaults:
  target: /srv/archive
  max_age: 30h
  on_success: echo ok
datasets:
  - name: tank/home
    healthcheck_url: { success: "https://kuma.example.test/api/push/Ab12?status=up&msg=OK", failure: "https://kuma.example.test/api/push/Ab12?status=down" }
  - name: tank/vm
    max_age: 8d
    healthcheck_url: https://hc-ping.com/x/?a=1
`);
    expect(config.healthcheck).toEqual({ start: 'https://hc-ping.com/5bf66975-d4c7/start', success: 'https://hc-ping.com/5bf66975-d4c7', failure: 'https://hc-ping.com/5bf66975-d4c7/fail' });
    const [home, vm] = config.datasets;
    expect(home).toMatchObject({
      maxAgeMs: 30 * 3_600_000,
      onSuccess: ['/bin/sh', '-c', 'echo ok'],
      healthcheck: { success: 'https://kuma.example.test/api/push/Ab12?status=up&msg=OK', failure: 'https://kuma.example.test/api/push/Ab12?status=down' },
    });
    expect(home!.healthcheck!.start).toBeUndefined();
    expect(vm).toMatchObject({ maxAgeMs: 8 * 86_400_000, healthcheck: { start: 'https://hc-ping.com/x/start?a=1', success: 'https://hc-ping.com/x/?a=1', failure: 'https://hc-ping.com/x/fail?a=1' } });
  });

  it('refuses a healthcheck_url under defaults, a non-http URL, a password in it, a mapping without success; a bad max_age', () => {
    expect(problem('defaults:\n  target: /a\n  healthcheck_url: https://hc-ping.com/x\ndatasets:\n  - name: tank\n')).toMatch(
      /config\.yaml:3: defaults\.healthcheck_url: not a default: put it at the top level/,
    );
    expect(problem('healthcheck_url: ftp://x/y\ndatasets:\n  - name: tank\n    target: /a\n')).toMatch(/healthcheck_url: expected an http:\/\/ or https:\/\/ URL/);
    const withPassword = problem('healthcheck_url: https://u:hunter2@hc.example/x\ndatasets:\n  - name: tank\n    target: /a\n');
    expect(withPassword).toMatch(/credentials do not belong in the URL/);
    expect(withPassword).not.toContain('hunter2');
    expect(problem('datasets:\n  - name: tank\n    target: /a\n    healthcheck_url: { start: "https://x/y" }\n')).toMatch(/datasets\[0\]\.healthcheck_url\.success: missing/);
    expect(problem('datasets:\n  - name: tank\n    target: /a\n    max_age: 26\n')).toMatch(/datasets\[0\]\.max_age: expected a duration/);
  });
});
