/**
 * The archive the hostile-target suite attacks, and the attacks (issue 15). The archive is
 * built ONCE per test file with the real CLI into a local template directory, then copied
 * (`cp -a`) for every case, to a local target or into the SFTP server's directory:
 *
 *   pool/fs      a (full, 2 chunks, Jan 1) → b (incr, Jan 2);  c (full, 2 chunks, Jan 10)
 *   pool/other   o (full)
 *   pool/resume  an interrupted upload of r: journal.json + chunk 0, no manifest
 *
 * and a canary directory beside the target holding copies of all of it (so a followed link
 * finds valid-looking data and would act on it), a valid marker, an expired lease and plain
 * files. Each layout plants one hostile thing; `breaks` names what it may legitimately make
 * unusable — every command on anything else must work as on a clean archive.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { plantDevice, plantFifo, plantLink, plantRawLink, plantSocket, runTimed } from './hostile.js';
import { buildStream, type ContentRecord } from './synthetic-stream.js';

const day = (d: number) => Date.UTC(2026, 0, d, 2) / 1000;
const guid = (n: number) => 0x2000_0000_0000_0000n + BigInt(n);
const big = (blocks: number): ContentRecord[] => Array.from({ length: blocks }, (_, i) => ({ kind: 'write' as const, object: 2, offset: i * 131072, data: randomBytes(131072) }));
const stream = (toname: string, to: number, from: number, d: number, records?: ContentRecord[]) =>
  Buffer.from(buildStream({ substreams: [{ toname, toguid: guid(to), fromguid: from ? guid(from) : 0n, creationTime: day(d), ...(records ? { records } : {}) }] }).bytes);

export const GUIDS = { a: guid(1), b: guid(2), c: guid(3), d: guid(4), n: guid(5), o: guid(6), r: guid(7) };

/** The streams: a, b, c, o, r are in the template; n is `put` by each case, d is what `run` sends. */
export function hostileStreams() {
  return {
    a: stream('pool/fs@a', 1, 0, 1, big(10)),
    b: stream('pool/fs@b', 2, 1, 2),
    c: stream('pool/fs@c', 3, 0, 10, big(10)),
    d: stream('pool/fs@d', 4, 3, 15),
    n: stream('pool/fs@n', 5, 0, 20),
    o: stream('pool/other@o', 6, 0, 5),
    r: stream('pool/resume@r', 7, 0, 3, big(20)),
  };
}
export type HostileStreams = ReturnType<typeof hostileStreams>;

export interface Template {
  /** The archive. */
  dir: string;
  /** The canary's contents. */
  canary: string;
  streams: HostileStreams;
  /** Stream directory (relative to the target) of a, b, c, o and the interrupted r. */
  ids: Record<'a' | 'b' | 'c' | 'o' | 'r', string>;
  cleanup(): void;
}

const ok = (what: string, r: { code: number | null; stderr: string }, want = 0) => {
  if (r.code !== want) throw new Error(`template: ${what} exited ${r.code}: ${r.stderr}`);
};

export async function buildTemplate(): Promise<Template> {
  const root = mkdtempSync(join(tmpdir(), 'zo-hostile-template-'));
  const dir = join(root, 'archive');
  const env = { ZFS_OFFSITE_LOCK_DIR: join(root, 'locks') };
  const streams = hostileStreams();
  const put = (input: Buffer) => runTimed(['put', '--to', dir, '--chunk-size', '1M'], { env, input });
  ok('put a', await put(streams.a)); // first: creates the marker
  await Promise.all([
    (async () => {
      ok('put b', await put(streams.b));
      ok('put c', await put(streams.c));
    })(),
    put(streams.o).then((r) => ok('put o', r)),
    // Interrupted: chunk 0 stored, the journal left, no manifest.
    put(streams.r.subarray(0, 1024 * 1024 + 5000)).then((r) => ok('interrupted put r', r, 1)),
  ]);
  const only = (ds: string, match: (id: string) => boolean) => readdirSync(join(dir, ds)).find((n) => match(n) && n !== 'lease.json')!;
  const ids = {
    a: `pool/fs/${only('pool/fs', (n) => n.includes('-a-'))}`,
    b: `pool/fs/${only('pool/fs', (n) => n.includes('-b-'))}`,
    c: `pool/fs/${only('pool/fs', (n) => n.includes('-c-'))}`,
    o: `pool/other/${only('pool/other', () => true)}`,
    r: `pool/resume/${only('pool/resume', () => true)}`,
  };
  for (const [k, v] of Object.entries(ids)) if (v.endsWith('/undefined')) throw new Error(`template: no stream directory for ${k}`);

  const canary = join(root, 'canary');
  mkdirSync(join(canary, 'subdir'), { recursive: true });
  execFileSync('cp', ['-a', dir, join(canary, 'archive')]);
  execFileSync('cp', ['-a', join(dir, ids.r), join(canary, 'interrupted')]);
  writeFileSync(join(canary, 'marker.json'), readFileSync(join(dir, 'zfs-offsite.json')));
  // Plain files where a followed link would land (a followed delete of the directory takes them too).
  for (const where of ['.', 'interrupted', 'subdir', 'archive/pool/fs', join('archive', ids.a)]) writeFileSync(join(canary, where, 'precious.txt'), 'the canary: nothing may touch this file\n');
  writeFileSync(join(canary, 'subdir', '000000.zst'), readFileSync(join(dir, ids.a, '000000.zst')));
  const expired = '2020-01-01T00:00:00.000Z';
  writeFileSync(
    join(canary, 'lease.json'),
    JSON.stringify({ format: 'zfs-offsite-lease', dataset: 'pool/fs', host: 'elsewhere', pid: 1, runId: 'x', acquired: expired, refreshed: expired, expires: expired }),
  );
  return { dir, canary, streams, ids, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Where a layout plants, and what it may break (dataset names, or 'all' when the marker itself is hostile). */
export interface Layout {
  name: string;
  group: 'control' | 'link' | 'special' | 'escape';
  /** Relative key of the planted entry: `verify --json` must name it (kind `unsafe-entry` unless an escape). */
  planted: (ids: Template['ids']) => string;
  plant(target: string, canary: string, ids: Template['ids'], t: Template): void;
  breaks: 'all' | string[];
  /** The dataset `prune TARGET DATASET` is run on. */
  focus: string;
}

/** A copy of stream `id` as a (badly named) dataset directory at the top of the target. */
function escapeDir(name: string): Layout {
  return {
    name: `dataset directory ${name}`,
    group: 'escape',
    planted: () => name,
    plant(target, _canary, ids) {
      mkdirSync(join(target, name));
      execFileSync('cp', ['-a', join(target, ids.o), join(target, name, ids.o.split('/').pop()!)]);
    },
    breaks: [],
    focus: 'pool/fs',
  };
}

/** Nothing planted: every command must do what it does on a clean archive (checks the harness). */
export const CONTROL: Layout = { name: 'clean archive (control)', group: 'control', planted: () => '', plant: () => undefined, breaks: [], focus: 'pool/fs' };

type Key = (ids: Template['ids']) => string;
const FS = ['pool/fs'];
const RESUME = ['pool/resume'];

/** A link at `key` to `to` in the canary. */
function link(name: string, key: Key, to: (canary: string, ids: Template['ids']) => string, breaks: Layout['breaks'], focus = 'pool/fs'): Layout {
  return { name, group: 'link', planted: key, plant: (t, c, i) => plantLink(join(t, key(i)), to(c, i)), breaks, focus };
}

function special(name: string, key: Key, make: (path: string) => void, breaks: Layout['breaks'], focus = 'pool/fs'): Layout {
  return { name, group: 'special', planted: key, plant: (t, _c, i) => make(join(t, key(i))), breaks, focus };
}

export const LAYOUTS: Layout[] = [
  // Symbolic links to the canary at every level.
  link(
    'zfs-offsite.json → canary marker',
    () => 'zfs-offsite.json',
    (c) => join(c, 'marker.json'),
    'all',
  ),
  link(
    'datasets directory pool → canary archive',
    () => 'pool',
    (c) => join(c, 'archive/pool'),
    ['pool/fs', 'pool/other', 'pool/resume'],
  ),
  link(
    'dataset directory pool/fs → canary copy',
    () => 'pool/fs',
    (c) => join(c, 'archive/pool/fs'),
    FS,
  ),
  link(
    'stream directory (doomed a) → canary copy',
    (i) => i.a,
    (c, i) => join(c, 'archive', i.a),
    FS,
  ),
  link(
    'interrupted stream directory → canary (rerun of put, finding 1)',
    (i) => i.r,
    (c) => join(c, 'interrupted'),
    RESUME,
    'pool/resume',
  ),
  link(
    'chunk of doomed a → canary file',
    (i) => `${i.a}/000000.zst`,
    (c, i) => join(c, 'archive', i.a, '000000.zst'),
    FS,
  ),
  link(
    'chunk of kept c → canary file',
    (i) => `${i.c}/000001.zst`,
    (c, i) => join(c, 'archive', i.c, '000001.zst'),
    FS,
  ),
  {
    name: 'subfolder in stream a → canary dir, chunk key through it (finding 2)',
    group: 'link',
    planted: (i) => `${i.a}/evil`,
    plant(t, c, i) {
      plantLink(join(t, i.a, 'evil'), join(c, 'subdir'));
      const path = join(t, i.a, 'manifest.json');
      const m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
      (m.chunks[0] as { key: string }).key = 'evil/000000.zst';
      writeFileSync(path, JSON.stringify(m, null, 2));
      const sums = join(t, i.a, 'SHA256SUMS');
      writeFileSync(sums, readFileSync(sums, 'utf8').replace('  000000.zst', '  evil/000000.zst'));
    },
    breaks: FS,
    focus: 'pool/fs',
  },
  link(
    'manifest.json of c → canary copy',
    (i) => `${i.c}/manifest.json`,
    (c, i) => join(c, 'archive', i.c, 'manifest.json'),
    FS,
  ),
  link(
    'SHA256SUMS of a → canary copy',
    (i) => `${i.a}/SHA256SUMS`,
    (c, i) => join(c, 'archive', i.a, 'SHA256SUMS'),
    FS,
  ),
  link(
    'journal.json of the interrupted upload → canary copy',
    (i) => `${i.r}/journal.json`,
    (c) => join(c, 'interrupted/journal.json'),
    RESUME,
    'pool/resume',
  ),
  link(
    'pool/fs/lease.json → canary (expired lease)',
    () => 'pool/fs/lease.json',
    (c) => join(c, 'lease.json'),
    FS,
  ),
  link(
    'dangling pool/fs/lease.json → canary/not-there',
    () => 'pool/fs/lease.json',
    (c) => join(c, 'not-there.json'),
    FS,
  ),
  link(
    'dangling chunk 1 of the interrupted upload → canary/not-there',
    (i) => `${i.r}/000001.zst`,
    (c) => join(c, 'not-there.zst'),
    RESUME,
    'pool/resume',
  ),
  {
    name: 'link loop pool/loop-a ⇄ pool/loop-b',
    group: 'link',
    planted: () => 'pool/loop-a',
    plant(t) {
      plantRawLink(join(t, 'pool/loop-a'), 'loop-b');
      plantRawLink(join(t, 'pool/loop-b'), 'loop-a');
    },
    breaks: [],
    focus: 'pool/fs',
  },
  {
    name: 'link loop: chunk 1 of c → itself',
    group: 'link',
    planted: (i) => `${i.c}/000001.zst`,
    plant: (t, _c, i) => plantRawLink(join(t, i.c, '000001.zst'), '000001.zst'),
    breaks: FS,
    focus: 'pool/fs',
  },
  // Special files: never opened, so nothing hangs on a FIFO.
  special('FIFO at zfs-offsite.json', () => 'zfs-offsite.json', plantFifo, 'all'),
  special('FIFO at journal.json', (i) => `${i.r}/journal.json`, plantFifo, RESUME, 'pool/resume'),
  special('FIFO at pool/fs/lease.json', () => 'pool/fs/lease.json', plantFifo, FS),
  special('FIFO at manifest.json of c', (i) => `${i.c}/manifest.json`, plantFifo, FS),
  special('FIFO at chunk 0 of c', (i) => `${i.c}/000000.zst`, plantFifo, FS),
  special('character device (/dev/null) at chunk 1 of c', (i) => `${i.c}/000001.zst`, plantDevice, FS),
  special('character device (/dev/null) at manifest.json of a', (i) => `${i.a}/manifest.json`, plantDevice, FS),
  special('UNIX socket at SHA256SUMS of c', (i) => `${i.c}/SHA256SUMS`, plantSocket, FS),
  // Dataset directories whose names do not decode (another stream's copy inside).
  escapeDir('pool%ZZ'),
  escapeDir('pool%2Fx'),
];
