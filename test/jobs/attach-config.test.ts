/**
 * The config's `attach:` (issue 19): a command's output kept with each stream `run` sends of the
 * entry's dataset; a failing command fails that dataset (step `attach`) before anything is
 * uploaded; bad entries are refused naming file, line and key.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { listFiles, readJson } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { FIXTURE_DIR, firstBeginGuids, fixtureBytes } from '../support/fixtures.js';

const STAND_IN = fileURLToPath(new URL('../support/zfs-stand-in.mjs', import.meta.url));
const DS = 'labpool/zfs-send-tiny';
const base = firstBeginGuids(fixtureBytes('zse-tiny-full.zfs')).toguid.toString();

let dir: string;
const statePath = () => join(dir, 'state.json');
const run = (...args: string[]) =>
  runCli(['run', ...args], { env: { ZFS_OFFSITE_ZFS_CMD: `${process.execPath} ${STAND_IN}`, ZFS_STAND_IN_STATE: statePath(), ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks') } });

function config(attach: string): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `datasets:
  - name: ${DS}
    target: ${join(dir, 'archive')}
    snapshot: { mode: pick, pattern: "base" }
    attach:
${attach}
`,
  );
  return file;
}

/** A command of the config: node running `script` (written to a file, so YAML quoting stays simple). */
function node(script: string): string {
  const file = join(dir, `cmd-${Math.random().toString(36).slice(2)}.js`);
  writeFileSync(file, script);
  return `${process.execPath} ${file}`;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-attach-run-'));
  writeFileSync(
    statePath(),
    JSON.stringify({
      log: join(dir, 'zfs.log'),
      datasets: { [DS]: { encryption: 'off', snapshots: [{ name: 'base', guid: base, createtxg: 100, creation: 1786111636 }] } },
      streams: { [`0:${base}`]: join(FIXTURE_DIR, 'zse-tiny-full.zfs') },
    }),
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('run --config with attach:', () => {
  it("keeps the command's output with the stream; restore --attachments writes it out", async () => {
    const r = await run('--config', config(`      - name: vmadm.json\n        command: '${node("process.stdout.write(JSON.stringify({uuid: 'zone-1', argv: process.argv.slice(2)}))")} a1 "b 2"'`));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const manifests = listFiles(join(dir, 'archive'))
      .filter((f) => f.endsWith('manifest.json'))
      .map((f) => readJson<Manifest>(join(dir, 'archive', f)));
    expect(manifests).toHaveLength(1);
    expect(manifests[0]!.attachments!.map((a) => a.name)).toEqual(['vmadm.json']);
    const out = join(dir, 'restored');
    const restored = await runCli(['restore', '--from', join(dir, 'archive'), DS, '--attachments', out, '--attachments-only']);
    expect(restored.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'vmadm.json'), 'utf8'))).toEqual({ uuid: 'zone-1', argv: ['a1', 'b 2'] });
  });

  it('a failing command fails the dataset at step attach, with nothing uploaded', async () => {
    const r = await run('--config', config(`      - name: vmadm.json\n        command: '${node("process.stderr.write('vmadm: no such zone\\n'); process.exit(3)")}'`), '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { results: { status: string; step?: string; message?: string }[] };
    expect(report.results[0]).toMatchObject({ status: 'failed', step: 'attach' });
    expect(report.results[0]!.message).toMatch(/^attachment vmadm\.json: command ".*" failed \(exit 3: vmadm: no such zone\); nothing was archived$/);
    expect(listFiles(join(dir, 'archive')).filter((f) => f.includes('/'))).toEqual([]);
  });

  it.each([
    ['not a list', '      name: x', /attach: expected a list of \{name, command\}/],
    ['a bad name', '      - name: ../x\n        command: true', /attach\[0\]\.name/],
    ['no command', '      - name: x', /attach\[0\]: expected name and command/],
    ['twice', '      - name: x\n        command: a\n      - name: x\n        command: b', /attach\[1\]\.name: x is given twice/],
  ])('refuses %s (exit 2)', async (_what, attach, message) => {
    const r = await run('--config', config(attach));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
