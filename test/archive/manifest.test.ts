/**
 * parseManifest: the one validation every reader relies on (issue 13, finding 5). Seeded
 * mutation fuzzing of real manifests (written by the built CLI): whatever the edit — types,
 * sizes, keys, duplicates, orders, huge numbers, null or strings where lists belong, truncated
 * text — parsing either throws a ManifestError or returns a manifest whose arithmetic holds:
 * chunks 0..n-1 in order, sizes summing to rawBytes and storedBytes, substreams tiling the stream.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkName } from '../../src/archive/format/keys.js';
import { type Manifest, ManifestError, parseManifest } from '../../src/archive/format/manifest.js';
import { seededRandom } from '../../src/util/random.js';
import { runCli } from '../support/cli.js';
import { buildStream, type ContentRecord, FULL, INCR_AB, INCR_BC, RAW_FEATURES } from '../support/synthetic-stream.js';

const write = (i: number): ContentRecord => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 });
const STREAMS = [
  // 4 chunks of 1 MiB (the last one short)
  Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/fz@a', features: RAW_FEATURES, records: Array.from({ length: 24 }, (_, i) => write(i)) }] }).bytes),
  // a -I stream: compound header, two substreams, conclusion END
  Buffer.from(
    buildStream({
      compound: { toname: 'pool/fz@c' },
      substreams: [
        { ...INCR_AB, toname: 'pool/fz@b', features: RAW_FEATURES, records: [write(0)] },
        { ...INCR_BC, toname: 'pool/fz@c', features: RAW_FEATURES, records: [write(1)] },
      ],
    }).bytes,
  ),
];

const WHERE = 'file:///archive/pool/fz/x/manifest.json';
const ODD_VALUES: unknown[] = [
  null,
  '',
  'x',
  '12',
  '-1',
  '0',
  0,
  -1,
  1,
  1.5,
  1e15,
  -1e15,
  1e308,
  2 ** 53,
  2 ** 53 + 2,
  true,
  false,
  [],
  {},
  [null],
  [1, 2],
  { index: 0 },
  '18446744073709551616',
  'ABCDEF',
  'f'.repeat(64),
  'F'.repeat(64),
  '000000.zst',
  '000001.zst',
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in the tree (not the root). */
function paths(v: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (Array.isArray(v)) for (const [i, x] of v.entries()) out.push([...at, i]), paths(x, [...at, i], out);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push([...at, k]), paths(x, [...at, k], out);
  return out;
}

function parentOf(root: Json, path: (string | number)[]): { parent: Json[] | { [k: string]: Json }; key: string | number } {
  let v = root as Json;
  for (const k of path.slice(0, -1)) v = (v as Record<string | number, Json>)[k]!;
  return { parent: v as Json[] | { [k: string]: Json }, key: path.at(-1)! };
}

/** One random edit of the tree; returns what it did (for a failing case's message). */
function mutate(root: Json, random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  // Half the edits go where the arithmetic is: chunks, sizes, substreams.
  const all = paths(root);
  const hot = all.filter((p) => ['chunks', 'rawBytes', 'storedBytes', 'chunkSize', 'substreams'].includes(String(p[0])));
  const path = random() < 0.5 && hot.length > 0 ? pick(hot) : pick(all);
  const { parent, key } = parentOf(root, path);
  const value = (parent as Record<string | number, Json>)[key]!;
  const op = Math.floor(random() * 8);
  const name = path.join('.');
  if (op === 0) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    return `delete ${name}`;
  }
  if (op === 1 && typeof value === 'number') {
    const next = pick([value + 1, value - 1, value * 2, 0, -value, value + 0.5, value * 1e9]);
    (parent as Record<string | number, Json>)[key] = next;
    return `${name} = ${next}`;
  }
  if (op === 2 && Array.isArray(value) && value.length > 0) {
    const i = Math.floor(random() * value.length);
    const j = Math.floor(random() * value.length);
    const how = pick(['swap', 'duplicate', 'reverse', 'truncate', 'empty']);
    if (how === 'swap') [value[i], value[j]] = [value[j]!, value[i]!];
    if (how === 'duplicate') value.splice(j, 0, structuredClone(value[i]!));
    if (how === 'reverse') value.reverse();
    if (how === 'truncate') value.length = i;
    if (how === 'empty') value.length = 0;
    return `${how} ${name} [${i}, ${j}]`;
  }
  if (op === 3 && typeof value === 'string' && value.length > 0) {
    const i = Math.floor(random() * value.length);
    const next = value.slice(0, i) + pick(['0', 'f', 'G', '-', ' ', '9']) + value.slice(i + 1);
    (parent as Record<string | number, Json>)[key] = next;
    return `${name} = ${JSON.stringify(next)}`;
  }
  if (op === 4 && path[0] === 'chunks' && typeof value === 'number') {
    // A "consistent" edit: the same change to a chunk size and the total.
    const delta = pick([1, -1, 100, -100, 1e6]);
    (parent as Record<string | number, Json>)[key] = value + delta;
    const total = key === 'rawSize' ? 'rawBytes' : key === 'storedSize' ? 'storedBytes' : undefined;
    const totals = root as Record<string, number>;
    if (total) totals[total] = totals[total]! + delta;
    return `${name} and ${total} += ${delta}`;
  }
  const next = pick(ODD_VALUES) as Json;
  (parent as Record<string | number, Json>)[key] = structuredClone(next);
  return `${name} = ${JSON.stringify(next)}`;
}

/** The arithmetic every reader computes with, checked independently of parseManifest. */
function assertSound(m: Manifest): void {
  const safe = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n);
  expect(Array.isArray(m.chunks) && m.chunks.length > 0).toBe(true);
  expect(safe(m.chunkSize) && m.chunkSize > 0).toBe(true);
  m.chunks.forEach((c, i) => {
    expect(c.index).toBe(i);
    expect(c.key).toBe(chunkName(i));
    expect(safe(c.rawSize) && c.rawSize > 0 && c.rawSize <= m.chunkSize).toBe(true);
    expect(safe(c.storedSize) && c.storedSize > 0).toBe(true);
    expect(c.rawSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(c.storedSha256).toMatch(/^[0-9a-f]{64}$/);
  });
  expect(m.chunks.reduce((n, c) => n + c.rawSize, 0)).toBe(m.rawBytes);
  expect(m.chunks.reduce((n, c) => n + c.storedSize, 0)).toBe(m.storedBytes);
  expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
  const subs = m.substreams;
  expect(subs.length).toBeGreaterThan(0);
  for (const s of subs) {
    expect(s.toguid).toMatch(/^[1-9][0-9]*$/);
    expect(s.fromguid).toMatch(/^(0|[1-9][0-9]*)$/);
    expect(safe(s.offset) && safe(s.bytes)).toBe(true);
  }
  if (!m.compound) expect([subs.length, subs[0]!.offset, subs[0]!.bytes]).toEqual([1, 0, m.rawBytes]);
  else {
    for (let i = 1; i < subs.length; i++) expect(subs[i]!.offset).toBe(subs[i - 1]!.offset + subs[i - 1]!.bytes);
    expect(subs.at(-1)!.offset + subs.at(-1)!.bytes + 312).toBe(m.rawBytes);
  }
}

describe('parseManifest', () => {
  let dir: string;
  const originals: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-manifest-'));
    for (const input of STREAMS) expect((await runCli(['put', '--to', dir, '--chunk-size', '1M'], { input })).code).toBe(0);
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (name === 'manifest.json') originals.push(readFileSync(p, 'utf8'));
      }
    };
    walk(dir);
    expect(originals).toHaveLength(2);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts the manifests the writer commits, and checks them against their directory', () => {
    for (const text of originals) {
      const m = parseManifest(text, WHERE);
      assertSound(m);
      expect(parseManifest(text, WHERE, { dataset: m.dataset, streamId: m.streamId })).toEqual(m);
      expect(() => parseManifest(text, WHERE, { dataset: 'pool/other', streamId: m.streamId })).toThrow(/invalid manifest: dataset: expected "pool\/other"/);
    }
  });

  it('names an empty, non-JSON, foreign or newer manifest as unreadable', () => {
    const kinds = ['', '   \n', '{', 'null', '[]', '{"format":"other"}', JSON.stringify({ ...JSON.parse(originals[0]!), formatVersion: '2.0' })].map((text) => {
      try {
        parseManifest(text, WHERE);
        return 'accepted';
      } catch (err) {
        return err instanceof ManifestError ? err.kind : `other: ${String(err)}`;
      }
    });
    expect(kinds).toEqual(Array(7).fill('manifest-unreadable'));
    expect(() => parseManifest('', WHERE)).toThrow(`${WHERE}: manifest is empty (0 bytes)`);
  });

  it('names the field of odd values that used to pass or throw other errors (issue 15)', () => {
    const m = JSON.parse(originals[0]!) as Record<string, unknown> & Manifest;
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const cases: [string, (m: Manifest & Record<string, unknown>) => void, string | RegExp, string?][] = [
      ['a chunk nested 100000 lists deep', (x) => void (x.chunks = '@@DEEP@@' as never), 'chunks[0]', 'expected an object, found a list of 1'],
      ['a list of 200000 zeros for toname', (x) => void (x.substreams[0]!.toname = Array(200_000).fill(0) as never), 'substreams[0].toname', 'found a list of 200000'],
      ['formatVersion 1e0', (x) => void (x.formatVersion = '1e0'), 'formatVersion'],
      ['formatVersion 1.0.0', (x) => void (x.formatVersion = '1.0.0'), 'formatVersion'],
      ['a creation Date.parse guesses at', (x) => void (x.substreams[0]!.creation = '1'), 'substreams[0].creation'],
      ['compression.level 1e15', (x) => void (x.compression.level = 1e15), 'compression.level'],
      ['compression.checksum false', (x) => void ((x.compression as { checksum: unknown }).checksum = false), 'compression.checksum'],
      ['more records than 312-byte headers fit', (x) => void (x.substreams[0]!.records = x.substreams[0]!.bytes), 'substreams[0].records'],
      ['a terminal escape in a name', (x) => void (x.to.name = 'a\u001b[2Jb'), 'to.name', 'control character'],
      ['a dataset with a ".." component', (x) => void (x.dataset = 'pool/../x'), 'dataset'],
      [
        'a stream id with a non-canonical escape',
        (x) => void (x.streamId = x.streamId.replace(/-full-(.)/, (_, c: string) => `-full-%${c.charCodeAt(0).toString(16).toUpperCase()}`)),
        'streamId',
        'not escaped the way',
      ],
    ];
    for (const [what, edit, field, detail] of cases) {
      const copy = structuredClone(m);
      edit(copy);
      const text = JSON.stringify(copy).replace('"@@DEEP@@"', deep(100_000));
      let thrown: unknown;
      try {
        parseManifest(text, WHERE);
      } catch (err) {
        thrown = err;
      }
      expect(thrown instanceof ManifestError ? [thrown.kind, thrown.field] : String(thrown), what).toEqual(['manifest-invalid', field]);
      if (detail) expect((thrown as ManifestError).detail, what).toContain(detail);
    }
  });

  it('fuzz: 1000 seeded mutations are each rejected with a ManifestError or sound', () => {
    const started = performance.now();
    const counts = { mutations: 0, rejected: 0, accepted: 0, textMutations: 0 };
    const byField = new Map<string, number>();
    for (const [n, text] of originals.entries()) {
      const random = seededRandom(1300 + n);
      for (let trial = 0; trial < 500; trial++) {
        let edited: string;
        let what: string;
        if (trial % 10 === 9) {
          // Raw text damage: a truncation, or a byte overwritten.
          const at = Math.floor(random() * text.length);
          edited = random() < 0.5 ? text.slice(0, at) : text.slice(0, at) + String.fromCharCode(32 + Math.floor(random() * 95)) + text.slice(at + 1);
          what = `text edit at ${at}`;
          counts.textMutations++;
        } else {
          const tree = JSON.parse(text) as Json;
          const edits = 1 + Math.floor(random() * 3);
          what = Array.from({ length: edits }, () => mutate(tree, random)).join('; ');
          edited = JSON.stringify(tree);
        }
        counts.mutations++;
        let parsed: Manifest | undefined;
        try {
          parsed = parseManifest(edited, WHERE);
        } catch (err) {
          if (!(err instanceof ManifestError)) throw new Error(`${what}: threw ${String(err)}`);
          expect(['manifest-unreadable', 'manifest-invalid']).toContain(err.kind);
          expect(err.message.startsWith(`${WHERE}: `)).toBe(true);
          counts.rejected++;
          const field = err.field?.replace(/\[\d+\]/g, '[]') ?? '(unreadable)';
          byField.set(field, (byField.get(field) ?? 0) + 1);
          continue;
        }
        counts.accepted++;
        try {
          assertSound(parsed);
        } catch (err) {
          throw new Error(`accepted an unsound manifest after: ${what}: ${(err as Error).message}`);
        }
      }
    }
    const ms = Math.round(performance.now() - started);
    console.info(`manifest fuzz: ${JSON.stringify(counts)} in ${ms} ms; rejected by field: ${JSON.stringify(Object.fromEntries([...byField].sort((a, b) => b[1] - a[1])))}`);
    expect(counts.mutations).toBe(1000);
    expect(counts.rejected).toBeGreaterThan(counts.mutations / 2);
  });
});
