import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/archive/format/manifest.js';
import type { Backend } from '../../src/storage/backend.js';
import { zstdDecompress } from '../support/archive-files.js';
import { runCli } from '../support/cli.js';
import { firstBeginGuids, fixtureBytes, fixtureNames } from '../support/fixtures.js';
import { type ContentRecord, buildStream, FULL, RAW_FEATURES } from '../support/synthetic-stream.js';
import { openTestTarget, type TestTarget, testTargets } from '../support/targets.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const KiB = 1024;

/** ~6 MiB over many 1 MiB chunks: incompressible (like raw encrypted blocks) then compressible. */
function multiChunkStream(flipLastPayload = false): Buffer {
  const records: ContentRecord[] = [];
  for (let i = 0; i < 48; i++) {
    const data = i < 24 ? randomBytes(128 * KiB) : Buffer.alloc(128 * KiB, i);
    records.push({ kind: 'write', object: 2, offset: i * 128 * KiB, data, compression: 2 });
  }
  const bytes = Buffer.from(buildStream({ substreams: [{ ...FULL, toname: 'pool/big@s1', features: RAW_FEATURES, records }] }).bytes);
  if (flipLastPayload) bytes[bytes.length - 312 - 1000]! ^= 0x20;
  return bytes;
}

interface StoredStream {
  manifest: Manifest;
  objects: string[];
  chunks: Buffer;
  sums: string;
}

/** Everything the archive holds for a dataset, read back through the storage contract. */
async function readArchive(backend: Backend, dataset?: string): Promise<StoredStream[]> {
  const keys: string[] = [];
  await backend.list('', (o) => keys.push(o.key));
  const manifests = keys.filter((k) => k.endsWith('/manifest.json'));
  const out: StoredStream[] = [];
  for (const key of manifests) {
    const manifest = JSON.parse((await backend.getBuffer(key)).toString()) as Manifest;
    if (dataset && manifest.dataset !== dataset) continue;
    const dir = key.slice(0, -'manifest.json'.length);
    const chunks = Buffer.concat(await Promise.all(manifest.chunks.map((c) => backend.getBuffer(dir + c.key))));
    out.push({ manifest, objects: keys.filter((k) => k.startsWith(dir)), chunks, sums: (await backend.getBuffer(`${dir}SHA256SUMS`)).toString() });
  }
  return out;
}

async function allKeys(backend: Backend): Promise<string[]> {
  const keys: string[] = [];
  await backend.list('', (o) => keys.push(o.key));
  return keys.sort();
}

describe.each(testTargets())('put to $name', (target: TestTarget) => {
  let url: string;
  let env: NodeJS.ProcessEnv;
  let backend: Backend;
  let cleanup: () => Promise<void>;
  const put = (args: string[], input: Buffer) => runCli(['put', '--to', url, ...args], { input, env });

  beforeAll(async () => {
    ({ url, env, backend, cleanup } = await openTestTarget(target));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it.each(fixtureNames())('archives %s so that zstd -d of the chunks gives back the exact stream', async (name) => {
    const stream = fixtureBytes(name);
    const dataset = `fixtures/${name.replace(/\W/g, '_')}`;
    const r = await put(['--dataset', dataset, '--chunk-size', '1M'], stream);
    // An incremental archived without its base is accepted with a warning (issue 16.5).
    const { fromguid } = firstBeginGuids(stream);
    expect(r.stderr).toEqual(
      fromguid === 0n
        ? ''
        : expect.stringMatching(new RegExp(`^zfs-offsite: warning: the base of this incremental stream \\(the snapshot with GUID ${fromguid}, .* is not in the archive of ${dataset}: [^\\n]*\\n$`)),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^archived .* → /);
    const [stored, ...more] = await readArchive(backend, dataset);
    expect(more).toHaveLength(0);
    const m = stored!.manifest;
    expect(zstdDecompress(stored!.chunks).equals(stream)).toBe(true);
    expect(m.sha256).toBe(sha256(stream));
    expect(m.rawBytes).toBe(stream.length);
    expect(m.chunks.length).toBe(Math.ceil(stream.length / (1024 * 1024)));
    const begin = firstBeginGuids(stream);
    expect(m.substreams[0]!.toguid).toBe(begin.toguid.toString());
    expect(m.substreams[0]!.fromguid).toBe(begin.fromguid.toString());
    expect(m.compound).toBe(begin.compound);
    expect(m.kind).toBe(begin.fromguid === 0n ? 'full' : 'incr');
    // The in-progress journal is gone once the manifest is committed.
    expect(stored!.objects.some((k) => k.endsWith('journal.json'))).toBe(false);
  });

  it('cuts a multi-chunk stream into independent frames, cheaply for incompressible chunks', async () => {
    const stream = multiChunkStream();
    const r = await put(['--chunk-size', '1M', '--parallel', '3'], stream);
    expect(r.code).toBe(0);
    const [stored] = await readArchive(backend, 'pool/big');
    const m = stored!.manifest;
    expect(m.chunks.map((c) => c.index)).toEqual([...Array(Math.ceil(stream.length / (1024 * KiB))).keys()]);
    expect(zstdDecompress(stored!.chunks).equals(stream)).toBe(true);
    // Each object alone is a complete zstd frame of exactly its raw bytes.
    for (const c of m.chunks) {
      const object = await backend.getBuffer(`pool/big/${m.streamId}/${c.key}`);
      expect(sha256(object)).toBe(c.storedSha256);
      const raw = zstdDecompress(object);
      expect(sha256(raw)).toBe(c.rawSha256);
      expect(raw.equals(stream.subarray(c.index * 1024 * KiB, c.index * 1024 * KiB + c.rawSize))).toBe(true);
    }
    const first = m.chunks[0]!;
    const last = m.chunks[m.chunks.length - 1]!;
    expect(first.level).toBe(-7);
    expect(first.storedSize).toBeLessThan(first.rawSize + 1024);
    expect(last.level).toBe(3);
    expect(last.storedSize).toBeLessThan(last.rawSize / 50);
    expect(m.raw).toBe(true);
  });

  it('removes every uploaded chunk when the stream turns out corrupt near its end', async () => {
    const r = await put(['--chunk-size', '1M', '--dataset', 'corrupt/late'], multiChunkStream(true));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/checksum/);
    expect((await allKeys(backend)).filter((k) => k.startsWith('corrupt/late/'))).toEqual([]);
  });

  it('writes SHA256SUMS that coreutils sha256sum -c accepts', async () => {
    const stream = fixtureBytes('zse-tiny-full.zfs');
    expect((await put(['--dataset', 'sums/check', '--chunk-size', '1M'], stream)).code).toBe(0);
    const [stored] = await readArchive(backend, 'sums/check');
    const dir = mkdtempSync(join(tmpdir(), 'zo-sums-'));
    try {
      const prefix = `sums/check/${stored!.manifest.streamId}/`;
      for (const c of stored!.manifest.chunks) writeFileSync(join(dir, c.key), await backend.getBuffer(prefix + c.key));
      writeFileSync(join(dir, 'SHA256SUMS'), stored!.sums);
      expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir }).toString()).toMatch(/000000\.zst: OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the dataset and snapshots from the BEGIN records, and links an incremental to its base', async () => {
    const full = fixtureBytes('zse-tiny-full.zfs');
    const incr = fixtureBytes('zse-tiny-incremental.zfs');
    expect((await put([], full)).code).toBe(0);
    const r = await put([], incr);
    expect(r.code).toBe(0);
    const toname = full
      .subarray(56, 56 + 256)
      .toString('latin1')
      .replace(/\0.*$/s, '');
    const dataset = toname.split('@')[0]!;
    const streams = await readArchive(backend, dataset);
    expect(streams.map((s) => s.manifest.kind).sort()).toEqual(['full', 'incr']);
    const incrManifest = streams.find((s) => s.manifest.kind === 'incr')!.manifest;
    expect(incrManifest.from).toEqual({ name: toname.split('@')[1], guid: firstBeginGuids(full).toguid.toString() });
    const list = await runCli(['list', url, dataset, '--json'], { env });
    expect(list.code).toBe(0);
    const [listed] = JSON.parse(list.stdout) as { chains: { streams: string[] }[]; broken: string[] }[];
    expect(listed!.chains).toHaveLength(1);
    expect(listed!.chains[0]!.streams).toHaveLength(2);
    expect(listed!.broken).toEqual([]);
    const human = await runCli(['list', url], { env });
    expect(human.stdout).toContain(dataset);
    expect(human.stdout).toMatch(/chain 1: .+ → .+ \(2 streams\)/);
  });

  it('does not archive the same stream twice', async () => {
    const stream = fixtureBytes('zse-encrypted-raw-s1.zfs');
    expect((await put(['--dataset', 'twice/ds'], stream)).code).toBe(0);
    const before = await allKeys(backend);
    const again = await put(['--dataset', 'twice/ds'], stream);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^already archived/);
    expect(await allKeys(backend)).toEqual(before);
  });

  it('commits nothing for a stream with one flipped byte', async () => {
    const stream = Buffer.from(fixtureBytes('zse-tiny-full.zfs'));
    stream[Math.floor(stream.length / 2)]! ^= 0x01;
    const r = await put(['--dataset', 'corrupt/flipped', '--chunk-size', '1M'], stream);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^zfs-offsite: error: .*checksum.*\n$/);
    expect((await allKeys(backend)).filter((k) => k.startsWith('corrupt/flipped/'))).toEqual([]);
  });

  it('commits nothing for a truncated stream, keeps what it stored, and a rerun resumes from it', async () => {
    const stream = multiChunkStream();
    const cut = stream.subarray(0, 3 * 1024 * KiB + 5000);
    const r = await put(['--dataset', 'resume/truncated', '--chunk-size', '1M'], cut);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/truncated/);
    const left = (await allKeys(backend)).filter((k) => k.startsWith('resume/truncated/'));
    expect(left.some((k) => k.endsWith('manifest.json'))).toBe(false);
    expect(left.filter((k) => k.endsWith('journal.json'))).toHaveLength(1);
    const again = await put(['--dataset', 'resume/truncated', '--chunk-size', '1M', '--json'], stream);
    expect(again.code).toBe(0);
    const result = JSON.parse(again.stdout) as { chunksReused: number; uploadedBytes: number; manifest: Manifest };
    expect(result.chunksReused).toBe(3);
    expect(result.uploadedBytes).toBeLessThan(result.manifest.storedBytes);
    const [stored] = await readArchive(backend, 'resume/truncated');
    expect(zstdDecompress(stored!.chunks).equals(stream)).toBe(true);
    expect(stored!.objects.filter((k) => !/\/(\d{6}\.zst|manifest\.json|SHA256SUMS)$/.test(k))).toEqual([]);
  });

  it('discards an interrupted upload of a different stream under the same name from the first differing chunk', async () => {
    const first = multiChunkStream();
    expect((await put(['--dataset', 'resume/diverged', '--chunk-size', '1M'], first.subarray(0, 4 * 1024 * KiB + 10))).code).toBe(1);
    const other = multiChunkStream(); // same names and GUIDs, other random payload
    const r = await put(['--dataset', 'resume/diverged', '--chunk-size', '1M', '--json'], other);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/differs from the interrupted upload at chunk 0/);
    const result = JSON.parse(r.stdout) as { chunksReused: number };
    expect(result.chunksReused).toBe(0);
    const [stored] = await readArchive(backend, 'resume/diverged');
    expect(zstdDecompress(stored!.chunks).equals(other)).toBe(true);
  });

  it('refuses empty and non-ZFS input with exit 2 and writes nothing', async () => {
    const before = await allKeys(backend);
    const empty = await put(['--dataset', 'bad/empty'], Buffer.alloc(0));
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^zfs-offsite: error: no input/);
    const text = await put(['--dataset', 'bad/text'], Buffer.from('this is not a zfs stream\n'.repeat(100)));
    expect(text.code).toBe(2);
    expect(text.stderr).toMatch(/^zfs-offsite: error: input is not a ZFS send stream/);
    expect(text.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(await allKeys(backend)).toEqual(before);
  });
});

describe('put: bad targets and options', () => {
  const input = fixtureBytes('zse-tiny-full.zfs');
  it.each([
    ['ftp://host/path', /unsupported|unknown/i],
    ['s3://', /bucket/i],
    ['file://relative/path', /absolute|file:/i],
  ])('refuses target %s with exit 2', async (to, message) => {
    const r = await runCli(['put', '--to', to], { input });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a bad chunk size with exit 2', async () => {
    const r = await runCli(['put', '--to', '/tmp/never-written', '--chunk-size', '12 apples'], { input });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--chunk-size/);
  });

  // Names restore could not address, or that would climb out of the dataset's directory.
  it.each(['pool/x@evil', 'pool/x#bm', '../../up', 'pool/../up', 'pool/./x', 'pool/a\nb', '/abs', 'pool//x', ''])('refuses --dataset %j with exit 2 and writes nothing', async (dataset) => {
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-badname-'));
    try {
      const r = await runCli(['put', '--to', dir, '--dataset', dataset], { input });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^zfs-offsite: error: invalid ZFS --dataset name: /);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(execFileSync('find', [dir, '-mindepth', '1']).toString()).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('put --bwlimit', () => {
  it('holds the average upload rate', async () => {
    const stream = multiChunkStream(); // ~6 MiB, mostly incompressible
    const dir = mkdtempSync(join(tmpdir(), 'zfs-offsite-bw-'));
    try {
      const started = Date.now();
      const r = await runCli(['put', '--to', dir, '--chunk-size', '1M', '--bwlimit', '1M', '--json'], { input: stream });
      const seconds = (Date.now() - started) / 1000;
      expect(r.code).toBe(0);
      const stored = (JSON.parse(r.stdout) as { uploadedBytes: number }).uploadedBytes;
      // All but the first chunk wait for their share: at least (stored - 1 chunk) / rate.
      expect(seconds).toBeGreaterThanOrEqual((stored - 1024 * KiB) / (1024 * KiB) - 0.5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
