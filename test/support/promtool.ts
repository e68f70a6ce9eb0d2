import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * `promtool check metrics` (Debian's prometheus package; scripts/test.sh extracts the binary and
 * sets PROMTOOL): the Prometheus project's own parser and linter of the text format, run on the
 * metrics files the CLI writes.
 */
export const PROMTOOL_HINT = 'promtool is needed: run `npm test` (scripts/test.sh fetches it), or set PROMTOOL to a promtool binary';

export function promtoolPath(): string | undefined {
  if (process.env.PROMTOOL && existsSync(process.env.PROMTOOL)) return process.env.PROMTOOL;
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  const extracted = join(tmpdir(), 'zfs-offsite-promtool', 'usr', 'bin', 'promtool');
  return existsSync(extracted) ? extracted : undefined;
}

/** promtool's verdict on a metrics text: exit status and what it printed (problems, lint findings). */
export function checkMetrics(text: string): { status: number | null; output: string } {
  const tool = promtoolPath();
  if (!tool) throw new Error(PROMTOOL_HINT);
  const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** `promtool check rules` on a rules file's text (the README's alert example). */
export function checkRules(yaml: string, dir: string): { status: number | null; output: string } {
  const tool = promtoolPath();
  if (!tool) throw new Error(PROMTOOL_HINT);
  const file = join(dir, 'rules.yml');
  writeFileSync(file, yaml);
  const r = spawnSync(tool, ['check', 'rules', file], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
