import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type ByteSource, fileSource, readableSource } from '../../src/util/byte-source.js';
import { readChunks, StalledInputError } from '../../src/archive/pipeline/chunker.js';
import { SharedBufferPool } from '../../src/archive/pipeline/shared-buffer-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'zo-bytesource-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const data = randomBytes(3 * 1024 * 1024 + 12345);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Every chunk readChunks yields, copied out, with the buffers' sizes. */
async function chunksOf(source: ByteSource, chunkSize: number, stallMs = 0): Promise<Buffer[]> {
  const pool = new SharedBufferPool(chunkSize, 2);
  const out: Buffer[] = [];
  for await (const c of readChunks(source, pool, chunkSize, stallMs)) {
    out.push(Buffer.from(new Uint8Array(c.buffer, 0, c.length)));
    pool.release(c.buffer);
  }
  return out;
}

function oddPieces(bytes: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0, k = 1; at < bytes.length; k++) {
    const n = ((k * 7919) % 200_000) + 1;
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return Readable.from(pieces);
}

describe('byte sources fill chunk buffers with exactly the input', () => {
  it('a Readable in odd pieces: full chunks, a short last one, nothing after', async () => {
    const chunks = await chunksOf(readableSource(oddPieces(data)), 1024 * 1024);
    expect(chunks.map((c) => c.length)).toEqual([1048576, 1048576, 1048576, 12345]);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('a file, also when its size is a multiple of the chunk size and when it is empty', async () => {
    const path = join(dir, 'stream');
    writeFileSync(path, data);
    expect(Buffer.concat(await chunksOf(fileSource(path), 1024 * 1024)).equals(data)).toBe(true);
    writeFileSync(path, data.subarray(0, 2 * 1024 * 1024));
    expect((await chunksOf(fileSource(path), 1024 * 1024)).map((c) => c.length)).toEqual([1048576, 1048576]);
    writeFileSync(path, '');
    expect(await chunksOf(fileSource(path), 1024 * 1024)).toEqual([]);
  });

  it('stdin as a shell pipe, a socket and a redirected file: straight into the buffers, bytes identical', () => {
    const path = join(dir, 'stdin');
    writeFileSync(path, data);
    const module = fileURLToPath(new URL('../../dist/util/byte-source.js', import.meta.url));
    // Reads stdin through stdinSource() in 1 MiB + 1 byte fills and prints SHA-256 and size.
    const script = `import { createHash } from 'node:crypto';
      const { stdinSource } = await import(${JSON.stringify(module)});
      const source = stdinSource(); const hash = createHash('sha256'); let total = 0;
      const view = new Uint8Array(new SharedArrayBuffer(1048577));
      for (;;) { const n = await source.fill(view); hash.update(view.subarray(0, n)); total += n; if (n < view.length) break; }
      console.log(hash.digest('hex'), total);`;
    const node = (stdin: 'pipe' | 'ignore' | number, input?: Buffer) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { input, stdio: [stdin, 'pipe', 'pipe'], encoding: 'utf8' });
    const expected = `${sha(data)} ${data.length}`;
    const fifo = spawnSync('bash', ['-c', `cat "$1" | "$2" --input-type=module -e "$3"`, 'bash', path, process.execPath, script], { encoding: 'utf8' });
    expect(fifo.stderr).toBe('');
    expect(fifo.stdout.trim()).toBe(expected);
    expect(node('pipe', data).stdout.trim()).toBe(expected); // Node's 'pipe' is a socket pair
    const redirected = spawnSync('bash', ['-c', `"$2" --input-type=module -e "$3" < "$1"`, 'bash', path, process.execPath, script], { encoding: 'utf8' });
    expect(redirected.stdout.trim()).toBe(expected);
  });

  it('no input for the stall time is a StalledInputError; slow but steady input is not', async () => {
    const silent = new PassThrough();
    silent.write(Buffer.alloc(10));
    await expect(chunksOf(readableSource(silent), 1024, 150)).rejects.toBeInstanceOf(StalledInputError);
    // Slow but steady input (a piece every 50 ms) is not a stall at 150 ms.
    const steady = new PassThrough();
    let sent = 0;
    const timer = setInterval(() => (++sent <= 6 ? steady.write(Buffer.alloc(400)) : (clearInterval(timer), steady.end())), 50);
    expect((await chunksOf(readableSource(steady), 1024, 150)).reduce((n, c) => n + c.length, 0)).toBe(2400);
  });
});
