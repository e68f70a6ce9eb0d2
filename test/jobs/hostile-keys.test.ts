/**
 * Stream directories whose key this program cannot have written (issue 15, finding 5), through
 * the built CLI on a local directory and the real SFTP server. A bad `%` escape used to fail
 * list, verify and prune of the WHOLE archive with `URI malformed` (exit 1); another spelling of a
 * name (`%41`, lower-case hex, `%2F` making a `/`, `..`) made a second directory of one dataset:
 * `pool%2Fgood` was listed, deep-verified and counted as a stream of `pool/good`.
 *
 * Now each such directory is one `key-invalid` problem of its own (verify exit 3, quick, deep and
 * sampled), passed over with a warning by list, restore and prune, which keep working for every
 * other stream, and never read nor deleted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/storage/backend.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes } from '../support/fixtures.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const STACK = '\n    at ';
const GOOD = { dataset: 'pool/good', input: fixtureBytes('zse-tiny-full.zfs') };

/** Where the good stream's objects are copied to, under a key no zfs-offsite writes, and why it is invalid. */
function hostileDirs(streamId: string): { dir: string; why: RegExp; inGood?: true }[] {
  const odd = streamId.replace('-full-base-', '-full-ba%73e-');
  return [
    { dir: `pool%ZZ/${streamId}`, why: /"%ZZ" is not a %XX escape/ },
    { dir: `pool%E0%A4/${streamId}`, why: /not valid UTF-8/ },
    { dir: `pool%/${streamId}`, why: /"%" is not a %XX escape/ },
    { dir: `po%41ol/good/${streamId}`, why: /not escaped the way zfs-offsite writes it \("poAol"\)/ },
    { dir: `pool/go%6fd/${streamId}`, why: /upper-case hex/ },
    { dir: `pool%2Fgood/${streamId}`, why: /decodes to "pool\/good", which would name another directory/ },
    { dir: `pool/%2E%2E/${streamId}`, why: /decodes to ".."/ },
    { dir: `pool/good/%2E%2E/${streamId}`, why: /decodes to ".."/ },
    { dir: `pool/a%0Ab/${streamId}`, why: /control character/ },
    // A newline in a name would forge an output line: shown as \x0a.
    { dir: `pool/x\nzfs-offsite: error: forged/${streamId}`, why: /"\\n" is not allowed in an archive key/ },
    { dir: `pool/good/${odd}`, why: /snapshot part "ba%73e" .*not escaped the way zfs-offsite writes it \("base"\)/, inGood: true },
  ];
}

const targets = testTargets().filter((t) => !t.name.startsWith('S3'));

describe.each(targets)('invalid archive keys on $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  let out: string;
  let streamId: string;
  let planted: { dir: string; why: RegExp; inGood?: true; object: string; keys: string[] }[];
  const outputs: string[] = [];
  const cli = async (args: string[], input?: Buffer) => {
    const r = await runCli(args, { input, env: { ...env, ZFS_OFFSITE_LOCK_DIR: join(out, 'locks') } });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('not a valid archive key'));

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
    out = mkdtempSync(join(tmpdir(), 'zfs-offsite-keys-'));
    const put = await cli(['put', '--to', url, '--dataset', GOOD.dataset], GOOD.input);
    expect(put.code, put.stderr).toBe(0);
    const keys: string[] = [];
    await backend.list(`${GOOD.dataset}/`, (o) => keys.push(o.key));
    streamId = keys
      .find((k) => k.endsWith('/manifest.json'))!
      .split('/')
      .at(-2)!;
    planted = [];
    for (const h of hostileDirs(streamId)) {
      const copied: string[] = [];
      for (const key of keys) {
        const name = key.slice(key.lastIndexOf('/') + 1);
        await backend.put(`${h.dir}/${name}`, await backend.getBuffer(key));
        copied.push(`${h.dir}/${name}`);
      }
      planted.push({ ...h, object: `${backend.location}/${h.dir.replaceAll('\n', '\\x0a')}/`, keys: copied });
    }
  }, 120_000);
  afterAll(async () => {
    await cleanup?.();
    rmSync(out, { recursive: true, force: true });
  });

  it('verify (quick, deep, sampled) reports each directory once as key-invalid (exit 3) and checks the good stream', async () => {
    for (const mode of [[], ['--deep'], ['--sample', '100%', '--seed', '1']]) {
      const r = await cli(['verify', url, ...mode, '--json']);
      expect(r.code, `${mode.join(' ')}: ${r.stderr}`).toBe(3);
      const report = JSON.parse(r.stdout) as {
        problems: { kind: string; object?: string; message: string }[];
        datasets: { dataset: string; streams: number; chunks: number; chunksChecked: number }[];
      };
      expect(report.problems.map((p) => p.object).sort()).toEqual(planted.map((p) => p.object).sort());
      for (const p of planted) {
        const problem = report.problems.find((x) => x.object === p.object)!;
        expect(problem.kind).toBe('key-invalid');
        expect(problem.message).toMatch(p.why);
      }
      // The aliases are not streams of pool/good: one stream, checked once.
      expect(report.datasets.map((d) => d.dataset)).toEqual([GOOD.dataset]);
      expect(report.datasets[0]!.streams).toBe(1);
      if (mode.length > 0) expect(report.datasets[0]!.chunksChecked).toBe(report.datasets[0]!.chunks);
    }
    // Verify of the dataset reports what lies in its own directory and its children's (issue 16.1).
    const one = await cli(['verify', url, GOOD.dataset, '--json']);
    expect(one.code).toBe(3);
    const below = planted.filter((p) => p.dir.startsWith(`${GOOD.dataset}/`));
    expect(below.length).toBeGreaterThan(1);
    expect((JSON.parse(one.stdout) as { problems: { object: string }[] }).problems.map((p) => p.object).sort()).toEqual(below.map((p) => p.object).sort());
    const human = await cli(['verify', url]);
    expect(human.code).toBe(3);
    expect(human.stdout).toContain(`PROBLEM key-invalid:  ${planted[0]!.object}: not a valid archive key (dataset path component "pool%ZZ": "%ZZ" is not a %XX escape with upper-case hex)`);
    expect(human.stdout).toContain('pool/x\\x0azfs-offsite: error: forged/');
    expect(human.stdout.split('\n').filter((l) => l.startsWith('zfs-offsite'))).toEqual([]);
  });

  it('list shows the good stream (exit 0) and warns once per directory', async () => {
    const r = await cli(['list', url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const listed = JSON.parse(r.stdout) as { dataset: string; streams: { streamId: string }[]; damaged: unknown[] }[];
    expect(listed.map((d) => [d.dataset, d.streams.map((s) => s.streamId), d.damaged])).toEqual([[GOOD.dataset, [streamId], []]]);
    expect(warnings(r.stderr)).toHaveLength(planted.length);
    for (const p of planted) expect(r.stderr).toContain(`zfs-offsite: warning: ${p.object}: not a valid archive key (`);
    // A dataset is listed with its children (issue 16.1): what lies below it is warned about.
    const one = await cli(['list', url, GOOD.dataset]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(streamId);
    expect(warnings(one.stderr)).toHaveLength(planted.filter((p) => p.dir.startsWith(`${GOOD.dataset}/`)).length);
  });

  it('restore of the good dataset gives its bytes, with a warning for the invalid directory inside it', async () => {
    const file = join(out, 'good.zfs');
    const r = await cli(['restore', '--from', url, GOOD.dataset, '--output', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(file).equals(GOOD.input)).toBe(true);
    expect(warnings(r.stderr)).toEqual([expect.stringContaining(planted.find((p) => p.inGood)!.object)]);
  });

  it('prune (whole archive, then the dataset) works and neither reads nor deletes an invalid directory', async () => {
    const all = await cli(['prune', url, '--keep-last', '1', '--stale-after', '1s']);
    expect(all.code, all.stderr).toBe(0);
    expect(warnings(all.stderr)).toHaveLength(planted.length);
    const one = await cli(['prune', url, GOOD.dataset, '--keep-last', '1', '--stale-after', '1s']);
    expect(one.code, one.stderr).toBe(0);
    expect(warnings(one.stderr)).toHaveLength(1);
    const left: string[] = [];
    await backend.list('', (o) => left.push(o.key));
    for (const p of planted) for (const key of p.keys) expect(left).toContain(key);
    expect(left).toContain(`${GOOD.dataset}/${streamId}/manifest.json`);
  });

  it('no output holds a stack trace', () => {
    expect(outputs.length).toBeGreaterThan(10);
    for (const text of outputs) expect(text).not.toContain(STACK);
  });
});
