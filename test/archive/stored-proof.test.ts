import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { proveStored } from '../../src/archive/format/stored-proof.js';
import { LocalBackend } from '../../src/storage/local.js';

const root = mkdtempSync(join(tmpdir(), 'zo-proof-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('proving a stored chunk before a resume reuses it', () => {
  const backend = new LocalBackend(root);
  const frame = randomBytes(10_000);
  const stored = { storedSize: frame.length, storedSha256: sha256(frame) };

  it('re-reads when no ETag is at hand: intact is proven, one flipped byte is not', async () => {
    await backend.put('c/ok', frame);
    const listed = await backend.head('c/ok');
    expect(await proveStored(backend, 'c/ok', stored, listed)).toEqual({ proven: true, by: 'sha256' });
    const damaged = Buffer.from(frame);
    damaged[5000]! ^= 1;
    await backend.put('c/bad', damaged);
    expect(await proveStored(backend, 'c/bad', stored, await backend.head('c/bad'))).toEqual({ proven: false, why: `its SHA-256 is ${sha256(damaged)}, ${stored.storedSha256} was stored` });
  });

  it('missing or of another size is never proven, without reading', async () => {
    expect(await proveStored(backend, 'c/none', stored, undefined)).toEqual({ proven: false, why: 'the object is missing' });
    expect(await proveStored(backend, 'c/ok', stored, { key: 'c/ok', size: 9_999 })).toEqual({ proven: false, why: 'it has 9999 bytes, 10000 were stored' });
    // Listed, then gone before it is read back.
    expect(await proveStored(backend, 'c/gone', stored, { key: 'c/gone', size: frame.length })).toEqual({ proven: false, why: 'the object is missing' });
  });

  it('trusts the server ETag only when it is the one recorded at upload', async () => {
    // The bytes are not read when both ETags are known: a wrong ETag fails even over intact bytes.
    expect(await proveStored(backend, 'c/ok', { ...stored, etag: 'abc' }, { key: 'c/ok', size: frame.length, etag: 'abc' })).toEqual({ proven: true, by: 'etag' });
    expect(await proveStored(backend, 'c/ok', { ...stored, etag: 'abc' }, { key: 'c/ok', size: frame.length, etag: 'abd' })).toEqual({
      proven: false,
      why: "the server's ETag is abd, it was abc after the upload",
    });
    // A journal without an ETag (older version) is proven by reading, even if the server has one.
    expect(await proveStored(backend, 'c/ok', stored, { key: 'c/ok', size: frame.length, etag: 'abd' })).toEqual({ proven: true, by: 'sha256' });
  });
});
