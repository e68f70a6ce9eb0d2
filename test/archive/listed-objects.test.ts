/**
 * The compact listing of a stream directory (issue 17): ListedObjects against the list of
 * ObjectInfos and the Map of names it replaces, and the quick audit's per-stream findings against
 * the code it replaces (kept below as the oracle), over seeded random listings with gaps, strays,
 * keys beyond the chunk count, non-canonical chunk-like names, repeated sizes, repeated keys,
 * any order and missing times. Counts are printed (`listed objects: …`).
 */
import { describe, expect, it } from 'vitest';
import { chunkName, JOURNAL_NAME, MANIFEST_NAME, SUMS_NAME } from '../../src/archive/format/keys.js';
import { chunkIndexOfName, ListedObjects } from '../../src/archive/format/listed-objects.js';
import { ChunkSums } from '../../src/archive/format/chunk-sums.js';
import type { Manifest } from '../../src/archive/format/manifest.js';
import { chunkDigest } from '../../src/archive/format/stream-index.js';
import { groupByStream, type Problem, quickAudit, formatAge } from '../../src/archive/plan/audit.js';
import type { ObjectInfo } from '../../src/storage/backend.js';
import { seededRandom } from '../../src/util/random.js';

/**
 * The oracle (the code before ListedObjects): the digest `chunkDigest` gives for the chunk objects a stream directory's listing shows, when
 * it shows exactly `count` of them (`000000.zst` …) with their sizes; undefined when one is missing.
 */
function listedChunkDigest(prefix: string, objects: readonly ObjectInfo[], count: number): string | undefined {
  const byKey = new Map(objects.map((o) => [o.key, o.size]));
  const chunks: { key: string; storedSize: number }[] = [];
  for (let i = 0; i < count; i++) {
    const size = byKey.get(prefix + chunkName(i));
    if (size === undefined) return undefined;
    chunks.push({ key: chunkName(i), storedSize: size });
  }
  return chunkDigest(chunks);
}

const DATASET = 'pool/lo';
const STREAM = '20260101T020000Z-full-lo-5ca1e000';
const PREFIX = `${DATASET}/${STREAM}/`;
const NOW = new Date('2026-06-01T00:00:00Z');

interface Case {
  count: number;
  objects: ObjectInfo[];
  attachments: { name: string; key: string; size: number }[];
}

/** A random listing of one stream directory whose manifest has `count` chunks. */
function randomCase(random: () => number): Case {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const count = 1 + Math.floor(random() * 40);
  const sizes = [7, 7, 100, 4096, 1 + Math.floor(random() * 1e6)]; // sizes repeat
  const timeOf = () => (random() < 0.1 ? {} : { modified: new Date(NOW.getTime() - Math.floor(random() * 1e9)) });
  const objects: ObjectInfo[] = [];
  const add = (name: string) => objects.push({ key: PREFIX + name, size: pick(sizes), ...timeOf() });
  for (let i = 0; i < count; i++) if (random() > 0.1) add(chunkName(i)); // gaps
  const strays = [
    () => chunkName(count + Math.floor(random() * 5)), // beyond the count
    () => chunkName(1_000_000 + Math.floor(random() * 10)), // seven digits
    () => chunkName(99_999_999_999), // beyond a Uint32 index
    () => `0${chunkName(Math.floor(random() * count))}`, // non-canonical: a leading zero too many
    () => `${Math.floor(random() * count)}.zst`, // too few digits
    () => `${chunkName(Math.floor(random() * count))}.tmp`,
    () => 'abcdef.zst',
    () => 'stray',
    () => JOURNAL_NAME,
    () => MANIFEST_NAME,
    () => SUMS_NAME,
    () => 'attachment.a',
    () => 'attachment.b',
  ];
  const extra = Math.floor(random() * 6);
  for (let k = 0; k < extra; k++) add(pick(strays)());
  // The same key listed twice (a listing that repeats itself), with another size.
  if (objects.length > 0 && random() < 0.3) for (let k = 0; k < 3; k++) add(pick(objects).key.slice(PREFIX.length));
  if (random() < 0.5) {
    for (let i = objects.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [objects[i], objects[j]] = [objects[j]!, objects[i]!];
    }
  }
  const attachments = random() < 0.5 ? [{ name: 'a', key: 'attachment.a', size: 7 }] : [];
  return { count, objects, attachments };
}

/** SHA256SUMS as it was looked up from its text (the oracle): the last line for a name wins. */
function oracleSums(text: string, count: number): (index: number) => string | undefined {
  const found = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) found.set(m[2]!, m[1]!);
  }
  return (index) => (index < count ? found.get(chunkName(index)) : undefined);
}

/** A random SHA256SUMS text: good lines, repeated names, bad digests, CR, `*`, other names, no final newline. */
function randomSums(random: () => number, count: number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const hex = () => Array.from({ length: 64 }, () => '0123456789abcdef'[Math.floor(random() * 16)]).join('');
  const lines: string[] = [];
  const n = Math.floor(random() * (count + 10));
  for (let k = 0; k < n; k++) {
    const name = pick([() => chunkName(Math.floor(random() * (count + 3))), () => `0${chunkName(0)}`, () => 'attachment.a', () => 'ü.zst', () => chunkName(4_294_967_294)])();
    const digest = pick([hex, hex, hex, () => hex().toUpperCase(), () => hex().slice(1), () => `${hex().slice(0, 63)}g`]);
    lines.push(`${digest()}${pick([' ', ' *', '  ', '\t '])}${name}${pick(['', '', '', '\r', ' '])}`);
  }
  if (random() < 0.2) lines.push('garbage', '');
  return lines.join('\n') + pick(['\n', '', '\n\n']);
}

function listedOf(objects: readonly ObjectInfo[]): ListedObjects {
  const l = new ListedObjects(PREFIX);
  for (const o of objects) l.add(o);
  return l;
}

/** The per-stream findings of the quick audit as they were made from the list of ObjectInfos (the oracle). */
function oracleProblems(c: Case, m: Manifest): Problem[] {
  const problems: Problem[] = [];
  const where = (key: string) => `loc/${key}`;
  const names = new Map(c.objects.map((o) => [o.key.slice(PREFIX.length), o]));
  const base = { dataset: DATASET, stream: STREAM };
  const isChunk = (name: string) => {
    if (!/^[0-9]{6,}\.zst$/.test(name)) return false;
    const i = Number(name.slice(0, -4));
    return i < c.count && chunkName(i) === name;
  };
  const attached = new Set(c.attachments.map((a) => a.key));
  for (const a of c.attachments) {
    const o = names.get(a.key);
    const at = { ...base, object: where(PREFIX + a.key) };
    if (!o) problems.push({ ...at, kind: 'attachment-missing', message: `attachment ${a.name} is missing` });
    else if (o.size !== a.size)
      problems.push({ ...at, kind: 'attachment-size', expected: String(a.size), found: String(o.size), message: `attachment ${a.name} has ${o.size} bytes, the manifest says ${a.size}` });
  }
  for (const ch of m.chunks) {
    const o = names.get(ch.key);
    if (!o) problems.push({ ...base, kind: 'chunk-missing', object: where(PREFIX + ch.key), message: 'chunk object is missing' });
    else if (o.size !== ch.storedSize)
      problems.push({
        ...base,
        kind: 'chunk-size',
        object: where(PREFIX + ch.key),
        expected: String(ch.storedSize),
        found: String(o.size),
        message: `chunk object has ${o.size} bytes, the manifest says ${ch.storedSize}`,
      });
  }
  problems.push({ ...base, kind: 'sums-missing', object: where(PREFIX + SUMS_NAME), message: 'SHA256SUMS is missing' });
  for (const [name, o] of names)
    if (name !== MANIFEST_NAME && name !== SUMS_NAME && !isChunk(name) && name !== JOURNAL_NAME && !attached.has(name))
      problems.push({ ...base, kind: 'orphan-object', object: where(o.key), message: 'object not listed in the manifest' });
  return problems;
}

/** The findings for a directory without a manifest, as they were made (the oracle). */
function oracleStale(c: Case, staleAfterMs: number): Problem[] {
  const newest = Math.max(...c.objects.map((o) => o.modified?.getTime() ?? NOW.getTime()));
  const age = NOW.getTime() - newest;
  if (age < staleAfterMs) return [];
  const journal = c.objects.some((o) => o.key === PREFIX + JOURNAL_NAME);
  const what = journal ? 'in-progress stream (journal, no manifest)' : 'objects without a manifest';
  return [
    {
      dataset: DATASET,
      stream: STREAM,
      kind: journal ? 'stale-in-progress' : 'orphan-object',
      object: `loc/${PREFIX}`,
      found: `${Math.round(age / 1000)} s old`,
      message: `${what}, ${formatAge(age)} old: an interrupted upload (rerun it, or prune it)`,
    },
  ];
}

function manifestOf(c: Case, random: () => number): Manifest {
  const chunks = Array.from({ length: c.count }, (_, i) => ({ index: i, key: chunkName(i), storedSize: [7, 100, 4096][Math.floor(random() * 3)]!, storedSha256: '0'.repeat(64) }));
  const guid = '12345';
  const snap = { name: 'lo', guid, creation: NOW.toISOString() };
  return {
    dataset: DATASET,
    streamId: STREAM,
    kind: 'full',
    to: snap,
    from: null,
    chunks,
    attachments: c.attachments.map((a) => ({ ...a, sha256: '0'.repeat(64) })),
    substreams: [{ toname: `${DATASET}@lo`, toguid: guid, fromguid: '0', creation: NOW.toISOString() }],
  } as unknown as Manifest;
}

describe('ListedObjects (issue 17: a stream directory listed in ≈ 24 bytes a chunk)', () => {
  it('tells chunk names from every other name exactly as chunkName writes them', () => {
    expect(chunkIndexOfName('000000.zst')).toBe(0);
    expect(chunkIndexOfName('123456.zst')).toBe(123456);
    expect(chunkIndexOfName('1234567.zst')).toBe(1234567);
    for (const name of ['0000001.zst', '1.zst', '00000a.zst', '000001.zst.tmp', '-00001.zst', ' 00001.zst', '000001.ZST', '99999999999.zst', 'manifest.json'])
      expect(chunkIndexOfName(name), name).toBeUndefined();
  });

  it('answers as the list of ObjectInfos and the Map of names it replaces, over random listings', () => {
    const random = seededRandom(17);
    let cases = 0;
    let lookups = 0;
    for (; cases < 3000; cases++) {
      const c = randomCase(random);
      const l = listedOf(c.objects);
      const map = new Map(c.objects.map((o) => [o.key.slice(PREFIX.length), o]));
      const probe = [...map.keys(), chunkName(c.count), chunkName(c.count + 7), 'absent', MANIFEST_NAME, SUMS_NAME, JOURNAL_NAME, 'attachment.a'];
      for (const name of probe) {
        const o = map.get(name);
        expect(l.has(name), name).toBe(o !== undefined);
        expect(l.sizeOf(name), name).toBe(o?.size);
        if (chunkIndexOfName(name) === undefined) expect(l.info(name)).toBe(o);
        lookups++;
      }
      expect(l.names()).toEqual([...map.keys()]);
      for (const below of [0, c.count, c.count + 2]) expect(l.namesBeyond(below)).toEqual([...map.keys()].filter((n) => !(chunkIndexOfName(n) !== undefined && chunkIndexOfName(n)! < below)));
      for (const n of [c.count, c.count - 1, c.count + 1]) expect(l.chunkDigest(n)).toBe(listedChunkDigest(PREFIX, c.objects, n));
      expect(l.count).toBe(c.objects.length);
      expect(l.bytes).toBe(c.objects.reduce((n, o) => n + o.size, 0));
      const times = c.objects.flatMap((o) => (o.modified ? [o.modified.getTime()] : []));
      expect(l.newest).toBe(times.length ? Math.max(...times) : undefined);
      expect(l.someTimeUnknown).toBe(c.objects.some((o) => !o.modified));
    }
    console.log(`listed objects: ${cases} random listings, ${lookups} names looked up against the Map`);
  });

  it('gives the quick audit the findings the list of ObjectInfos gave, over random listings', () => {
    const random = seededRandom(1717);
    let cases = 0;
    let findings = 0;
    for (; cases < 800; cases++) {
      const c = randomCase(random);
      if (c.objects.length === 0) continue;
      const grouped = groupByStream(c.objects);
      const dir = grouped.streams.get(PREFIX)!;
      const withManifest = random() < 0.7;
      const m = manifestOf(c, random);
      if (withManifest) dir.manifest = m;
      const staleAfterMs = Math.floor(random() * 2e9);
      const found = quickAudit({ streams: [dir], loose: [], now: NOW, staleAfterMs, location: 'loc' }).filter((p) => p.kind !== 'chain-broken');
      const expected = withManifest ? oracleProblems(c, m) : oracleStale(c, staleAfterMs);
      expect(found).toEqual(expected);
      findings += found.length;
    }
    console.log(`listed objects: ${cases} random stream directories audited, ${findings} findings the same as before`);
  });

  it('reads SHA256SUMS piece by piece as its text was read, over random texts and pieces', () => {
    const random = seededRandom(171717);
    let texts = 0;
    let lookups = 0;
    for (; texts < 2000; texts++) {
      const count = 1 + Math.floor(random() * 30);
      const text = randomSums(random, count);
      const bytes = Buffer.from(text);
      const sums = new ChunkSums(count);
      for (let at = 0; at < bytes.length; ) {
        const next = Math.min(bytes.length, at + 1 + Math.floor(random() * 90));
        sums.push(bytes.subarray(at, next));
        at = next;
      }
      sums.finish();
      const whole = ChunkSums.parse(text, count);
      const oracle = oracleSums(text, count);
      for (let i = 0; i < count; i++) {
        expect(sums.digest(i), `${i} of ${JSON.stringify(text)}`).toBe(oracle(i));
        expect(whole.digest(i)).toBe(oracle(i));
        lookups++;
      }
    }
    console.log(`listed objects: ${texts} random SHA256SUMS texts in random pieces, ${lookups} chunk digests the same as from the text`);
  });

  it('dates an interrupted upload of 300,000 chunk objects (the times were spread into Math.max: RangeError)', () => {
    const when = new Date(NOW.getTime() - 3 * 86_400_000);
    const objects: ObjectInfo[] = [];
    for (let i = 0; i < 300_000; i++) objects.push({ key: PREFIX + chunkName(i), size: 7, modified: when });
    objects.push({ key: PREFIX + JOURNAL_NAME, size: 9, modified: new Date(when.getTime() - 1000) });
    const { streams } = groupByStream(objects);
    const found = quickAudit({ streams: streams.values(), loose: [], now: NOW, staleAfterMs: 86_400_000, location: 'loc' });
    expect(found.map((p) => [p.kind, p.object, p.found])).toEqual([['stale-in-progress', `loc/${PREFIX}`, `${3 * 86_400} s old`]]);
  });

  it('holds 500,000 chunks in well under 50 bytes each', () => {
    const before = process.memoryUsage();
    const l = new ListedObjects(PREFIX);
    const when = new Date(NOW);
    for (let i = 0; i < 500_000; i++) l.add({ key: PREFIX + chunkName(i), size: 40 + (i % 97), modified: when });
    const after = process.memoryUsage();
    expect(l.chunkSize(499_999)).toBe(40 + (499_999 % 97));
    expect(l.namesBeyond(500_000)).toEqual([]);
    // Typed arrays are outside the V8 heap (arrayBuffers): 24 B a chunk of capacity (2¹⁹ here),
    // plus the arrays outgrown and not yet collected. A list of ObjectInfos took 150–200 B a chunk.
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(500_000 * 50);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(10 * 1024 * 1024);
  });
});
