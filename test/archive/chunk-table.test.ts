/**
 * The compact chunk list (issue 17): ChunkTable against the plain objects it replaces, the
 * manifest text written from it, and the streaming reader (manifest-scan.ts) against the whole-text
 * parser it replaces (test/support/manifest-reference.ts), over seeded random manifests and
 * seeded mutations of their text, fed in random pieces. Counts are printed (`chunk table: …`).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkTable } from '../../src/archive/format/chunk-table.js';
import { chunkName } from '../../src/archive/format/keys.js';
import { type Manifest, type ManifestChunk, ManifestError, ManifestReader, parseManifest, serializeManifest, sha256sums } from '../../src/archive/format/manifest.js';
import { seededRandom } from '../../src/util/random.js';
import * as reference from '../support/manifest-reference.js';

const hex = (seed: string) => createHash('sha256').update(seed).digest('hex');
const DATASET = 'pool/ct';
const STREAM = '20260101T020000Z-full-ct-5ca1e000';
const WHERE = 'test:/manifest.json';

function randomChunks(random: () => number, count: number, chunkSize: number): ManifestChunk[] {
  return Array.from({ length: count }, (_, i) => {
    const rawSize = i === count - 1 ? 1 + Math.floor(random() * chunkSize) : chunkSize;
    return {
      index: i,
      key: chunkName(i),
      rawSize,
      storedSize: 1 + Math.floor(random() * rawSize),
      rawSha256: hex(`r${random()}`),
      storedSha256: hex(`s${random()}`),
      level: Math.floor(random() * 30) - 7,
    };
  });
}

/** A manifest parseManifest accepts, with `count` chunks. */
function manifestOf(chunks: ManifestChunk[], chunkSize: number): Manifest {
  const rawBytes = chunks.reduce((n, c) => n + c.rawSize, 0);
  const time = '2026-01-01T02:00:00.000Z';
  const toguid = (0x5ca1e000n << 32n) | 0xabn;
  return {
    format: 'zfs-offsite-manifest',
    formatVersion: '1.0',
    toolVersion: 'test',
    streamId: STREAM,
    dataset: DATASET,
    kind: 'full',
    to: { name: 'ct', guid: toguid.toString(), creation: time },
    from: null,
    raw: false,
    compound: false,
    substreams: [
      {
        toname: `${DATASET}@ct`,
        toguid: toguid.toString(),
        fromguid: '0',
        creation: time,
        objsetType: 'filesystem',
        features: [],
        featureFlags: 4,
        beginFlags: 12,
        raw: false,
        clone: false,
        offset: 0,
        bytes: rawBytes,
        records: 2,
        endChecksum: ['0', '0', '0', '0'].map((z) => z.repeat(16)),
      },
    ],
    sendArgs: null,
    zfsVersion: null,
    host: 'h',
    startedAt: time,
    finishedAt: time,
    rawBytes,
    storedBytes: chunks.reduce((n, c) => n + c.storedSize, 0),
    sha256: hex('all'),
    compression: { algorithm: 'zstd', level: 3, checksum: true },
    chunkSize,
    chunks,
  };
}

/** The manifest as plain JSON values (views turned into their entries). */
const plain = (m: unknown) => JSON.parse(JSON.stringify(m)) as Manifest;

/** Only the seven fields of a chunk entry: the reference keeps unknown ones, the table does not. */
function comparable(m: Manifest): unknown {
  const p = plain(m);
  return { ...p, chunks: p.chunks.map((c) => ({ index: c.index, key: c.key, rawSize: c.rawSize, storedSize: c.storedSize, rawSha256: c.rawSha256, storedSha256: c.storedSha256, level: c.level })) };
}

type Outcome = { ok: unknown } | { kind: string; field: string | undefined; syntax: boolean };

function outcome(parse: () => Manifest): Outcome {
  try {
    return { ok: comparable(parse()) };
  } catch (err) {
    if (!(err instanceof ManifestError) && !(err instanceof reference.ManifestError)) throw err;
    const e = err as ManifestError;
    // JSON.parse names positions in the text it was given: the same error, other words.
    return { kind: e.kind, field: e.field, syntax: e.detail.startsWith('manifest is not valid JSON') };
  }
}

/** The streaming reader fed `text` in random pieces (1 byte to the whole). */
function streamed(text: Buffer, random: () => number): Manifest {
  const reader = new ManifestReader(WHERE, { dataset: DATASET, streamId: STREAM });
  for (let at = 0; at < text.length; ) {
    const n = 1 + Math.floor(random() ** 3 * (text.length - at));
    reader.push(text.subarray(at, at + n));
    at += n;
  }
  return reader.finish();
}

/** Seeded text mutations aimed at what the scanner follows: strings, escapes, nesting, the chunks key. */
function mutate(text: string, random: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const at = Math.floor(random() * text.length);
  const chunksAt = text.indexOf('"chunks"');
  switch (Math.floor(random() * 12)) {
    case 0:
      return text.slice(0, at) + pick(['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', 'x', '0', 'ü']) + text.slice(at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 40));
    case 2:
      return text.slice(0, at) + pick(['{', '}', '[', ']', ',', '"', '\\', '1']) + text.slice(at + 1);
    case 3:
      return text.replace('"chunks"', pick(['"ch\\u0075nks"', '"chunks" ', '"chunks\\"', '"Chunks"', '"chunks", "chunks"']));
    case 4: {
      // A second chunks list (JSON.parse keeps the last), before or after the real one.
      const other = pick(['[]', '[1]', '{}', 'null', '"x"', `[${JSON.stringify(randomChunks(random, 1, 1024)[0])}]`]);
      return random() < 0.5 ? text.replace('{', `{"chunks": ${other},`) : text.replace(/\}\s*$/, `, "chunks": ${other}}\n`);
    }
    case 5:
      // The chunks value replaced.
      return `${text.slice(0, chunksAt)}"chunks": ${pick(['[]', '[ ]', 'null', '{}', '[[[[]]]]', '[1,]', '[,1]', '[1 2]', '[{"index":0}', '["]"]', '[{"a":"}"}]', '"[]"'])}\n}\n`;
    case 6:
      // Trailing comma, missing comma, stray bracket between chunk entries.
      return text.replace(/\},\n {4}\{/, pick(['},,\n    {', '}\n    {', '}],\n    [{', '} ] [ {', '}, \n\t {']));
    case 7:
      return text.slice(0, text.lastIndexOf(']')) + pick([',', ', {}', ' ']) + text.slice(text.lastIndexOf(']'));
    case 8:
      return text.slice(0, at);
    case 9:
      // A string value holding structural characters and escapes.
      return text.replace('"host": "h"', pick(['"host": "[{\\"chunks\\": ]}"', '"host": "\\\\"', '"host": "\\u005b"', '"chunks": "h"']));
    case 10: {
      // A chunk field changed: index, size, hash, key.
      const edits: [RegExp, string][] = [
        [/"index": 1,/, '"index": 2,'],
        [/"rawSize": \d+/, '"rawSize": 0'],
        [/"storedSize": \d+/, '"storedSize": 1e400'],
        [/"rawSha256": "[0-9a-f]/, '"rawSha256": "G'],
        [/"key": "000000.zst"/, '"key": "../000000.zst"'],
        [/"level": -?\d+/, '"level": 99'],
        [/"rawSize": \d+/, '"rawSize": 7'],
      ];
      const [re, to] = pick(edits);
      return text.replace(re, to);
    }
    default:
      return text.replace('"chunkSize"', pick(['"chunkSize": 1, "x"', '"chunkSizeX"']));
  }
}

describe('ChunkTable', () => {
  it('holds what plain chunk objects hold: seeded round trips, any order of setting, growth', () => {
    const random = seededRandom(17);
    let chunks = 0;
    for (let round = 0; round < 50; round++) {
      const list = randomChunks(random, 1 + Math.floor(random() * 300), 1 + Math.floor(random() * 2 ** 30));
      const t = new ChunkTable(1 + Math.floor(random() * 4));
      for (const i of [...list.keys()].sort(() => random() - 0.5)) t.set(i, list[i]!);
      expect(t.length).toBe(list.length);
      expect(plain(t.views())).toEqual(list);
      expect(list.map((_, i) => t.chunk(i))).toEqual(list);
      expect(t.views().map((c) => [c.index, c.key, c.rawSize, c.storedSize, c.rawSha256, c.storedSha256, c.level])).toEqual(list.map((c) => Object.values(c)));
      expect(t.totals()).toEqual({ rawBytes: list.reduce((n, c) => n + c.rawSize, 0), storedBytes: list.reduce((n, c) => n + c.storedSize, 0) });
      expect(plain(ChunkTable.from(list).views())).toEqual(list);
      chunks += list.length;
    }
    console.log(`chunk table: ${chunks} chunks in 50 seeded round trips`);
  });

  it('the manifest text and SHA256SUMS written from it are those of the plain objects, byte for byte', () => {
    const random = seededRandom(1717);
    for (let round = 0; round < 30; round++) {
      const list = randomChunks(random, 1 + Math.floor(random() * 50), 1 + Math.floor(random() * 2 ** 20));
      const m = manifestOf(list, Math.max(...list.map((c) => c.rawSize)));
      const expected = Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
      const viaTable = { ...m, chunks: ChunkTable.from(list).views() };
      expect(serializeManifest(m).equals(expected)).toBe(true);
      expect(serializeManifest(viaTable).equals(expected)).toBe(true);
      expect(serializeManifest({ ...m, chunks: [] }).toString()).toBe(`${JSON.stringify({ ...m, chunks: [] }, null, 2)}\n`);
      const sums = Buffer.from(list.map((c) => `${c.storedSha256}  ${c.key}\n`).join(''));
      expect(sha256sums(list).equals(sums) && sha256sums(viaTable.chunks).equals(sums)).toBe(true);
    }
  });
});

describe('the streaming manifest reader', () => {
  it('gives what the whole-text parser gives (manifest, or error kind and field) for 3,000 seeded mutations fed in random pieces', () => {
    const random = seededRandom(4242);
    const counts = { mutations: 0, accepted: 0, rejected: 0, unreadable: 0 };
    for (let base = 0; base < 30; base++) {
      const chunkSize = 1 + Math.floor(random() * 4096);
      const list = randomChunks(random, 1 + Math.floor(random() * 6), chunkSize);
      const text = serializeManifest(manifestOf(list, chunkSize)).toString();
      expect(outcome(() => streamed(Buffer.from(text), random))).toEqual(outcome(() => reference.parseManifest(text, WHERE, { dataset: DATASET, streamId: STREAM })));
      for (let k = 0; k < 100; k++) {
        let edited = mutate(text, random);
        if (random() < 0.3) edited = mutate(edited, random);
        const want = outcome(() => reference.parseManifest(edited, WHERE, { dataset: DATASET, streamId: STREAM }));
        const got = outcome(() => streamed(Buffer.from(edited), random));
        expect(got, `mutation ${base}/${k}: ${edited.slice(0, 2000)}`).toEqual(want);
        expect(outcome(() => parseManifest(edited, WHERE, { dataset: DATASET, streamId: STREAM }))).toEqual(want);
        counts.mutations++;
        if ('ok' in want) counts.accepted++;
        else if (want.kind === 'manifest-unreadable') counts.unreadable++;
        else counts.rejected++;
      }
    }
    console.log(`chunk table: streaming reader ${JSON.stringify(counts)}`);
    expect(counts.accepted).toBeGreaterThan(100);
    expect(counts.rejected).toBeGreaterThan(300);
    expect(counts.unreadable).toBeGreaterThan(300);
  });

  it('reads a manifest of 50,000 chunks fed in 64 KiB pieces (what Backend.load gives)', () => {
    const chunkSize = 1024 * 1024;
    const count = 50_000;
    const list = randomChunks(seededRandom(5), count, chunkSize);
    const text = serializeManifest(manifestOf(list, chunkSize));
    const reader = new ManifestReader(WHERE, { dataset: DATASET, streamId: STREAM });
    for (let at = 0; at < text.length; at += 64 * 1024) reader.push(text.subarray(at, at + 64 * 1024));
    const m = reader.finish();
    expect(m.chunks.length).toBe(count);
    expect(plain(m.chunks)).toEqual(list);
  });
});
