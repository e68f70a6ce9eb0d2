/**
 * Manifest fuzzer (issue 15, finding 5): hundreds of seeded mutations of REAL manifests — the
 * ones the built CLI commits for the real `zfs send` fixtures of test/fixtures/streams and for a
 * multi-chunk synthetic stream — through parseManifest, then a sample of them through the CLI.
 *
 *   - parseManifest either accepts a mutation, and then every invariant list, verify, restore and
 *     prune compute with holds, or throws ManifestError (`manifest-invalid` naming a field, or
 *     `manifest-unreadable`); never any other exception (a RangeError, a TypeError, a stack).
 *   - 40 rejected mutations planted in a local archive next to a good stream: verify (quick and
 *     deep) exits 3 naming each object and field, list still shows the good stream (exit 0),
 *     restore of the good stream gives its bytes, prune of it works; no output holds a stack trace.
 *
 * Counts are printed (`manifest fuzz: …`). The seed is fixed: a failure names the mutation.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachmentKey, chunkName, isArchivableDataset, parseStreamId } from '../../src/archive/format/keys.js';
import { type Manifest, ManifestError, type ManifestLocation, parseManifest } from '../../src/archive/format/manifest.js';
import { seededRandom } from '../../src/util/random.js';
import { runCli } from '../support/cli.js';
import { fixtureBytes, fixtureNames } from '../support/fixtures.js';
import { buildStream, type ContentRecord, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';

/** 24 × 128 KiB of incompressible data: 4 chunks of 1 MiB, the last one short. */
const BIG = Buffer.from(
  buildStream({
    substreams: [
      {
        ...FULL,
        toname: 'pool/fz@a',
        features: RAW_FEATURES,
        records: Array.from({ length: 24 }, (_, i): ContentRecord => ({ kind: 'write', object: 2, offset: i * 131072, data: randomBytes(131072), compression: 2 })),
      },
    ],
  }).bytes,
);

const STACK = '\n    at ';
const MUTATIONS_PER_MANIFEST = 100;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

/** A value placed in the tree as raw JSON text (JSON.stringify cannot write these). */
const RAW_TOKENS = ['1e400', '-1e400', '1E15', '-0', '0.0', '1.0', '9007199254740993', `${'['.repeat(20_000)}${']'.repeat(20_000)}`, `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`];

const ODD_VALUES: Json[] = [
  null,
  true,
  false,
  '',
  ' ',
  '0',
  '1',
  '-1',
  '1e15',
  'NaN',
  'null',
  'ü',
  '\u202e\u0000\u001b[2J',
  '😀'.repeat(3),
  'x'.repeat(20_000),
  0,
  -1,
  1,
  0.5,
  -0.5,
  1e15,
  -1e15,
  1e308,
  2 ** 53,
  2 ** 53 - 1,
  2 ** 31,
  2 ** 32,
  [],
  {},
  [null],
  ['x'],
  [1, 2, 3],
  { index: 0, key: '000000.zst' },
  Array.from({ length: 20_000 }, () => 0),
  '18446744073709551615',
  '18446744073709551616',
  '-18446744073709551615',
  '0x1f',
  ' 1',
  '01',
  'f'.repeat(64),
  'F'.repeat(64),
  'f'.repeat(63),
  '000000.zst',
  '000001.zst',
  '../000000.zst',
  '../../etc/passwd',
  '/etc/passwd',
  '000000.zst/../../x',
  'sub/000000.zst',
  '000000.ZST',
  '%2E%2E/000000.zst',
  'C:\\000000.zst',
  '1970-01-01T00:00:00Z',
  '+275760-09-13T00:00:00.000Z',
  '2026-13-45T99:99:99Z',
  'full',
  'incr',
  'zstd',
];

/** Every path to a value in the tree (not the root). */
function paths(v: Json, at: Path = [], out: Path[] = []): Path[] {
  if (Array.isArray(v)) for (const [i, x] of v.entries()) out.push([...at, i]), paths(x, [...at, i], out);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push([...at, k]), paths(x, [...at, k], out);
  return out;
}

function parentOf(root: Json, path: Path): { parent: Record<string | number, Json>; key: string | number } {
  let v = root;
  for (const k of path.slice(0, -1)) v = (v as Record<string | number, Json>)[k]!;
  return { parent: v as Record<string | number, Json>, key: path.at(-1)! };
}

/** Edits the tree in place (or asks for a raw token under `@@RAW@@`); returns what it did. */
function mutate(root: Json, random: () => number, raw: { token?: string }): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const all = paths(root);
  // Half the edits go where readers compute: chunks, sizes, substreams, GUIDs, the id.
  const hot = all.filter((p) => ['chunks', 'rawBytes', 'storedBytes', 'chunkSize', 'substreams', 'to', 'from', 'streamId', 'formatVersion', 'attachments'].includes(String(p[0])));
  const path = random() < 0.5 && hot.length > 0 ? pick(hot) : pick(all);
  const { parent, key } = parentOf(root, path);
  const value = parent[key]!;
  const name = path.join('.');
  const m = root as Record<string, Json>;
  const isObject = (v: Json | undefined): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const chunks = Array.isArray(m.chunks) ? m.chunks.filter(isObject) : [];
  switch (Math.floor(random() * 11)) {
    case 0:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return `delete ${name}`;
    case 1:
      if (typeof value === 'number') {
        const next = pick([value + 1, value - 1, value * 2, 0, -value, value + 0.5, value * 1e9, 1e15, Number.MAX_SAFE_INTEGER]);
        parent[key] = next;
        return `${name} = ${next}`;
      }
      break;
    case 2:
      if (Array.isArray(value) && value.length > 0) {
        const i = Math.floor(random() * value.length);
        const j = Math.floor(random() * value.length);
        const how = pick(['swap', 'duplicate', 'reverse', 'truncate', 'empty', 'append junk', 'append copy']);
        if (how === 'swap') [value[i], value[j]] = [value[j]!, value[i]!];
        if (how === 'duplicate') value.splice(j, 0, structuredClone(value[i]!));
        if (how === 'reverse') value.reverse();
        if (how === 'truncate') value.length = i;
        if (how === 'empty') value.length = 0;
        if (how === 'append junk') value.push(structuredClone(pick(ODD_VALUES)));
        if (how === 'append copy') value.push(structuredClone(value[value.length - 1]!));
        return `${how} ${name} [${i}, ${j}]`;
      }
      break;
    case 3:
      if (typeof value === 'string') {
        const i = Math.floor(random() * (value.length + 1));
        const next = value.slice(0, i) + pick(['0', 'f', 'G', '-', ' ', '/', '..', '%', 'ü', '\u0000', '\n', 'A']) + value.slice(i + 1);
        parent[key] = next;
        return `${name} = ${JSON.stringify(next)}`;
      }
      break;
    case 4: {
      // A "consistent" edit: one chunk size changed and the total with it.
      const c = pick<Record<string, Json>>(chunks.length > 0 ? chunks : [{}]);
      const field = pick(['rawSize', 'storedSize']);
      const delta = pick([1, -1, 100, -100, 1e6, 1e15, 0.5]);
      if (typeof c[field] !== 'number') break;
      c[field] = (c[field] as number) + delta;
      const total = field === 'rawSize' ? 'rawBytes' : 'storedBytes';
      if (typeof m[total] === 'number') m[total] = (m[total] as number) + delta;
      return `chunk ${field} and ${total} += ${delta}`;
    }
    case 5: {
      // An extra chunk that adds up: a copy of the last one, next index and key, totals raised.
      const last = chunks[chunks.length - 1];
      if (!last || !Array.isArray(m.chunks)) break;
      const copy = structuredClone(last);
      copy.index = m.chunks.length;
      copy.key = pick([chunkName(m.chunks.length), chunkName(0), `../${chunkName(m.chunks.length)}`]);
      m.chunks.push(copy);
      if (typeof m.rawBytes === 'number' && typeof copy.rawSize === 'number') m.rawBytes += copy.rawSize;
      if (typeof m.storedBytes === 'number' && typeof copy.storedSize === 'number') m.storedBytes += copy.storedSize;
      return `extra chunk ${copy.key}`;
    }
    case 6: {
      // A chunk key elsewhere: another stream, a parent, a subfolder, another chunk.
      const c = pick<Record<string, Json>>(chunks.length > 0 ? chunks : [{}]);
      c.key = pick(['../other/000000.zst', '/etc/passwd', 'sub/000000.zst', '000000.zst/', '.', '..', chunkName(7), '', '000000.zst\u0000', 'ü.zst']);
      return `chunk key = ${JSON.stringify(c.key)}`;
    }
    case 7:
      // An unknown field: ignored, or a known one in the wrong place.
      parent[typeof key === 'number' ? key : `${key}Extra`] = structuredClone(pick(ODD_VALUES));
      return `add beside ${name}`;
    case 8:
      raw.token = pick(RAW_TOKENS);
      parent[key] = '@@RAW@@';
      return `${name} = ${raw.token.slice(0, 20)}${raw.token.length > 20 ? '…' : ''}`;
    case 9: {
      const field = pick(['formatVersion', 'format', 'kind', 'compound', 'raw', 'from', 'sendArgs', 'zfsVersion']);
      const next = pick<Json>(['1.1', '1.999', '2.0', '0.9', '1', 'v1.0', '1.0 ', '1.0.0', 1, null, 'full', 'incr', true, 'zfs-offsite-archive', []]);
      m[field] = next;
      return `${field} = ${JSON.stringify(next)}`;
    }
    default:
      break;
  }
  const next = structuredClone(pick(ODD_VALUES));
  parent[key] = next;
  return `${name} = ${JSON.stringify(next)?.slice(0, 40)}`;
}

/** What every reader computes with, checked independently of parseManifest. */
function assertSound(m: Manifest, location: ManifestLocation): void {
  const safe = (n: unknown, min = 0) => typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
  const iso = (t: unknown) => typeof t === 'string' && /^([+-]\d{6}|\d{4})-\d\d-\d\dT/.test(t) && !Number.isNaN(Date.parse(t));
  const printable = (t: unknown) => typeof t === 'string' && ![...t].some((ch) => ch < ' ' || ch === '\u007f');
  expect([m.dataset, m.streamId]).toEqual([location.dataset, location.streamId]);
  expect(isArchivableDataset(m.dataset) && printable(m.dataset)).toBe(true);
  const id = parseStreamId(m.streamId);
  expect(id && !('invalid' in id) && id.kind === m.kind).toBe(true);
  expect(m.formatVersion).toMatch(/^1\.\d+$/);
  expect(safe(m.chunkSize, 1) && m.chunkSize <= 1024 ** 3).toBe(true);
  expect(m.chunks.length).toBeGreaterThan(0);
  m.chunks.forEach((c, i) => {
    expect(c.index).toBe(i);
    expect(c.key).toBe(chunkName(i));
    expect(safe(c.rawSize, 1) && c.rawSize <= m.chunkSize).toBe(true);
    if (i < m.chunks.length - 1) expect(c.rawSize).toBe(m.chunkSize);
    expect(safe(c.storedSize, 1) && c.storedSize <= c.rawSize + (c.rawSize >>> 8) + 64 * 1024).toBe(true);
    expect(`${c.rawSha256} ${c.storedSha256}`).toMatch(/^[0-9a-f]{64} [0-9a-f]{64}$/);
    expect(Number.isSafeInteger(c.level)).toBe(true);
  });
  expect(m.chunks.reduce((n, c) => n + c.rawSize, 0)).toBe(m.rawBytes);
  expect(m.chunks.reduce((n, c) => n + c.storedSize, 0)).toBe(m.storedBytes);
  expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(m.compression.algorithm).toBe('zstd');
  expect(m.compression.checksum).toBe(true);
  expect(iso(m.startedAt) && iso(m.finishedAt)).toBe(true);
  expect(m.to.guid).toMatch(/^[1-9]\d*$/);
  expect(BigInt(m.to.guid) < 2n ** 64n && printable(m.to.name)).toBe(true);
  if (m.from !== null) expect(BigInt(m.from.guid) < 2n ** 64n && printable(m.from.name)).toBe(true);
  expect(m.from === null).toBe(m.kind === 'full');
  const subs = m.substreams;
  expect(subs.length).toBeGreaterThan(0);
  expect(subs.at(-1)!.toguid).toBe(m.to.guid);
  for (const s of subs) {
    expect(BigInt(s.toguid) > 0n && BigInt(s.toguid) < 2n ** 64n && BigInt(s.fromguid) < 2n ** 64n).toBe(true);
    expect(safe(s.offset) && safe(s.bytes, 624) && safe(s.records, 2) && s.records * 312 <= s.bytes).toBe(true);
    expect(s.endChecksum.length === 4 && s.endChecksum.every((w) => /^[0-9a-f]{16}$/.test(w))).toBe(true);
    expect(printable(s.toname) && iso(s.creation) && Array.isArray(s.features) && s.features.every((f) => typeof f === 'string')).toBe(true);
  }
  // Attachments (format 1.1): optional; each a safe name, its fixed key, a size, a SHA-256; names unique.
  if (m.attachments !== undefined) {
    expect(Array.isArray(m.attachments)).toBe(true);
    for (const a of m.attachments) {
      expect(a.name).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
      expect(a.key).toBe(attachmentKey(a.name));
      expect(safe(a.size) && a.size <= 64 * 1024 * 1024).toBe(true);
      expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(new Set(m.attachments.map((a) => a.name)).size).toBe(m.attachments.length);
  }
  if (!m.compound) expect([subs.length, subs[0]!.offset, subs[0]!.bytes]).toEqual([1, 0, m.rawBytes]);
  else {
    for (let i = 1; i < subs.length; i++) expect(subs[i]!.offset).toBe(subs[i - 1]!.offset + subs[i - 1]!.bytes);
    expect(subs.at(-1)!.offset + subs.at(-1)!.bytes + 312).toBe(m.rawBytes);
  }
}

interface Original {
  text: string;
  location: ManifestLocation;
  /** The stream directory, relative to the archive root. */
  dir: string;
}

interface Mutation {
  what: string;
  text: string;
  base: Original;
  outcome: { accepted: Manifest } | { kind: string; field?: string; message: string };
}

/** One seeded mutation of `base`: 1–3 tree edits, or damage to the text itself. */
function mutation(base: Original, random: () => number, trial: number): { what: string; text: string } {
  if (trial % 10 === 9) {
    const at = Math.floor(random() * base.text.length);
    const how = Math.floor(random() * 4);
    if (how === 0) return { what: `truncated at ${at}`, text: base.text.slice(0, at) };
    if (how === 1) return { what: `byte ${at} overwritten`, text: base.text.slice(0, at) + String.fromCharCode(Math.floor(random() * 256)) + base.text.slice(at + 1) };
    if (how === 2) return { what: 'a BOM, then trailing junk', text: `\ufeff${base.text}}` };
    // A duplicate key in the text: JSON.parse keeps the last one.
    return { what: 'duplicate "chunks" key', text: base.text.replace(/\n}\s*$/, ',\n"chunks": "x"\n}\n') };
  }
  const tree = JSON.parse(base.text) as Json;
  const raw: { token?: string } = {};
  const edits = 1 + Math.floor(random() * 3);
  const what: string[] = [];
  for (let k = 0; k < edits; k++) {
    what.push(mutate(tree, random, raw));
    if (raw.token) break; // one raw token per mutation: the marker is replaced once
  }
  const text = JSON.stringify(tree, null, 2);
  return { what: what.join('; '), text: raw.token ? text.replace('"@@RAW@@"', raw.token) : text };
}

function judge(base: Original, what: string, text: string): Mutation {
  const where = `file:///archive/${base.dir}/manifest.json`;
  try {
    return { what, text, base, outcome: { accepted: parseManifest(text, where, base.location) } };
  } catch (err) {
    if (!(err instanceof ManifestError)) throw new Error(`after "${what}": threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a ManifestError`);
    expect(['manifest-unreadable', 'manifest-invalid'], what).toContain(err.kind);
    expect(err.message.startsWith(`${where}: `), what).toBe(true);
    if (err.kind === 'manifest-invalid') {
      expect(err.field, what).toMatch(/^[A-Za-z][A-Za-z0-9]*(\[\d+\])?(\.[A-Za-z][A-Za-z0-9]*(\[\d+\])?)*$/);
      expect(err.detail.startsWith(`invalid manifest: ${err.field}: `), what).toBe(true);
    } else expect(err.field, what).toBeUndefined();
    expect(err.message.length, what).toBeLessThan(600);
    return { what, text, base, outcome: { kind: err.kind, ...(err.field === undefined ? {} : { field: err.field }), message: err.detail } };
  }
}

describe('manifest fuzz', () => {
  let root: string;
  let url: string;
  const originals: Original[] = [];
  const mutations: Mutation[] = [];
  const env = () => ({ ZFS_OFFSITE_LOCK_DIR: join(root, 'locks') });

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'zfs-offsite-fuzz-'));
    url = `file://${join(root, 'archive')}`;
    const inputs: [string, Buffer][] = [['fz/big', BIG], ...fixtureNames().map((name): [string, Buffer] => [`fz/${name.replace(/\..*$/, '')}`, fixtureBytes(name)])];
    // One stream with attachments (format 1.1, issue 19), so mutations reach that list too.
    writeFileSync(join(root, 'vmadm.json'), '{"uuid":"fuzz"}\n');
    writeFileSync(join(root, 'layout.txt'), 'pool layout\n');
    const attach = ['--attach', `vmadm.json=${join(root, 'vmadm.json')}`, '--attach', `layout.txt=${join(root, 'layout.txt')}`];
    for (const [dataset, input] of inputs) {
      const r = await runCli(['put', '--to', url, '--dataset', dataset, '--chunk-size', '1M', ...(dataset === 'fz/big' ? attach : [])], { input, env: env() });
      expect(r.code, `${dataset}: ${r.stderr}`).toBe(0);
    }
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (name === 'manifest.json') {
          const text = readFileSync(p, 'utf8');
          const m = JSON.parse(text) as Manifest;
          originals.push({ text, location: { dataset: m.dataset, streamId: m.streamId }, dir: `${m.dataset}/${m.streamId}` });
        }
      }
    };
    walk(join(root, 'archive'));
    originals.sort((a, b) => a.dir.localeCompare(b.dir));
  }, 180_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('accepts every manifest the writer commits (single, multi-chunk, compound, raw, encrypted)', () => {
    expect(originals.length).toBe(1 + fixtureNames().length);
    expect(originals.some((o) => (JSON.parse(o.text) as Manifest).compound)).toBe(true);
    expect(originals.some((o) => (JSON.parse(o.text) as Manifest).chunks.length >= 4)).toBe(true);
    expect(originals.some((o) => (JSON.parse(o.text) as Manifest).attachments?.length === 2 && JSON.parse(o.text).formatVersion === '1.1')).toBe(true);
    for (const o of originals) assertSound(parseManifest(o.text, o.dir, o.location), o.location);
  });

  it(`parseManifest: ${MUTATIONS_PER_MANIFEST} seeded mutations of each real manifest are each sound or a ManifestError naming the field`, () => {
    const started = performance.now();
    const byField = new Map<string, number>();
    for (const [n, base] of originals.entries()) {
      const random = seededRandom(1500 + n);
      for (let trial = 0; trial < MUTATIONS_PER_MANIFEST; trial++) {
        const { what, text } = mutation(base, random, trial);
        const judged = judge(base, what, text);
        mutations.push(judged);
        if ('accepted' in judged.outcome) {
          try {
            assertSound(judged.outcome.accepted, base.location);
          } catch (err) {
            throw new Error(`accepted an unsound manifest after "${what}": ${(err as Error).message}`);
          }
        } else {
          const field = judged.outcome.field?.replace(/\[\d+\]/g, '[]') ?? `(${judged.outcome.kind})`;
          byField.set(field, (byField.get(field) ?? 0) + 1);
        }
      }
    }
    const accepted = mutations.filter((m) => 'accepted' in m.outcome).length;
    const unreadable = mutations.filter((m) => 'kind' in m.outcome && m.outcome.kind === 'manifest-unreadable').length;
    const counts = { manifests: originals.length, mutations: mutations.length, accepted, invalid: mutations.length - accepted - unreadable, unreadable };
    const top = [...byField].sort((a, b) => b[1] - a[1]);
    console.info(`manifest fuzz: ${JSON.stringify(counts)} in ${Math.round(performance.now() - started)} ms; ${byField.size} fields named: ${JSON.stringify(Object.fromEntries(top))}`);
    expect(mutations.length).toBeGreaterThanOrEqual(600);
    expect(counts.invalid).toBeGreaterThan(mutations.length / 2);
    expect(byField.size).toBeGreaterThan(25);
  }, 120_000);

  it('CLI: 40 rejected mutations beside a good stream: verify exits 3 naming each, list, restore and prune of the good stream work', async () => {
    const rejected = mutations.filter((m) => !('accepted' in m.outcome));
    expect(rejected.length, 'the parseManifest fuzz runs first').toBeGreaterThan(100);
    const random = seededRandom(15);
    const sample: Mutation[] = [];
    while (sample.length < 40) {
      const m = rejected[Math.floor(random() * rejected.length)]!;
      if (!sample.includes(m)) sample.push(m);
    }
    // Each mutation in a copy of its stream directory (chunks and SHA256SUMS as written) under a
    // dataset of its own; its "dataset" field follows it, so that it is the only edit.
    const archive = join(root, 'archive');
    const planted = sample.map((m, k) => {
      const dataset = `mut/m${String(k).padStart(2, '0')}`;
      const dir = `${dataset}/${m.base.location.streamId}`;
      cpSync(join(archive, m.base.dir), join(archive, dir), { recursive: true });
      const text = m.text.replace(JSON.stringify(m.base.location.dataset), JSON.stringify(dataset));
      const location = { dataset, streamId: m.base.location.streamId };
      const outcome = judge({ ...m.base, dir, location }, m.what, text).outcome;
      expect('accepted' in outcome, m.what).toBe(false);
      writeFileSync(join(archive, dir, 'manifest.json'), text);
      return { ...m, dataset, object: `${archive}/${dir}/manifest.json`, outcome: outcome as { kind: string; field?: string } };
    });
    const good = originals.find((o) => o.location.dataset === 'fz/big')!;
    const cli = (args: string[]) => runCli(args, { env: env() });
    const outputs: string[] = [];

    for (const mode of [[], ['--deep'], ['--sample', '50%', '--seed', '7']]) {
      const r = await cli(['verify', url, ...mode, '--json']);
      outputs.push(r.stdout, r.stderr);
      expect(r.code, `verify ${mode.join(' ')}: ${r.stderr}`).toBe(3);
      const report = JSON.parse(r.stdout) as {
        problems: { kind: string; object?: string; field?: string; dataset: string }[];
        datasets: { dataset: string; chunks: number; chunksChecked: number; problems: number }[];
      };
      for (const p of planted) {
        const named = report.problems.filter((x) => x.object === p.object);
        expect(named, `${p.what} (${mode.join(' ')})`).toEqual([{ ...named[0], kind: p.outcome.kind, field: p.outcome.field, dataset: p.dataset }]);
      }
      // The real streams are untouched (the lone incrementals' bases are not archived: chain-broken).
      expect(report.problems.filter((x) => x.dataset.startsWith('fz/') && x.kind !== 'chain-broken')).toEqual([]);
      const big = report.datasets.find((d) => d.dataset === 'fz/big')!;
      if (mode[0] === '--deep') expect(big.chunksChecked).toBe(big.chunks);
    }

    const list = await cli(['list', url, '--json']);
    outputs.push(list.stdout, list.stderr);
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as { dataset: string; streams: { streamId: string }[]; damaged: { object: string; field?: string }[] }[];
    expect(listed.find((d) => d.dataset === 'fz/big')!.streams.map((s) => s.streamId)).toEqual([good.location.streamId]);
    for (const p of planted)
      expect(
        listed.find((d) => d.dataset === p.dataset)?.damaged.map((d) => d.object),
        p.what,
      ).toEqual([p.object]);

    const out = join(root, 'restored.bin');
    const restore = await cli(['restore', '--from', url, 'fz/big', '--output', out]);
    outputs.push(restore.stdout, restore.stderr);
    expect(restore.code, restore.stderr).toBe(0);
    expect(readFileSync(out).equals(BIG)).toBe(true);

    // A whole-archive prune keeps every damaged dataset whole and says so (exit 1, one line);
    // pruning the good dataset alone works.
    const pruneAll = await cli(['prune', url, '--keep-last', '1']);
    outputs.push(pruneAll.stdout, pruneAll.stderr);
    expect(pruneAll.code).toBe(1);
    expect(
      pruneAll.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('zfs-offsite: error: ')),
    ).toHaveLength(1);
    for (const p of planted) expect(existsSync(join(archive, p.dataset, p.base.location.streamId, 'manifest.json'))).toBe(true);
    const prune = await cli(['prune', url, 'fz/big', '--keep-last', '1']);
    outputs.push(prune.stdout, prune.stderr);
    expect(prune.code, prune.stderr).toBe(0);
    expect(existsSync(join(archive, good.dir, 'manifest.json'))).toBe(true);

    for (const text of outputs) expect(text).not.toContain(STACK);
    const kinds = new Map<string, number>();
    for (const p of planted) kinds.set(p.outcome.field ?? p.outcome.kind, (kinds.get(p.outcome.field ?? p.outcome.kind) ?? 0) + 1);
    console.info(`manifest fuzz (CLI): ${planted.length} mutations planted, verify quick/deep/sampled exit 3 naming each; fields: ${JSON.stringify(Object.fromEntries(kinds))}`);
  }, 300_000);
});
