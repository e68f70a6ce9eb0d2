import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Backend, isNotFound, type LoadOptions, NotFoundError, type ObjectInfo } from '../../src/storage/backend.js';

/**
 * The ONE storage contract suite (restic-style): every backend runs exactly these tests,
 * unchanged, so they all behave alike for the layers above. Backend-specific behaviour (error
 * mapping of a particular server, temp files, …) is tested next to each backend instead.
 *
 * The large body is 5 MiB + 1 byte: with a 5 MiB part size an S3 backend must use a
 * two-part multipart upload for it.
 */
export interface BackendUnderTest {
  backend: Backend;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;
const SIZES = [0, 1, 5 * MiB + 1];
/** Generous per-test timeout: a real server under load is slower than a local disk. */
const SLOW = 120_000;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

/** Streams `data` in 64 KiB pieces, like a real producer (not one giant chunk). */
export function chunkedReadable(data: Buffer, piece = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
    })(),
  );
}

/** A producer that delivers `goodBytes` and then fails, like a `zfs send` dying midway. */
function failingReadable(goodBytes: number, error: Error): Readable {
  return Readable.from(
    (async function* () {
      yield* chunkedReadable(randomBytes(goodBytes));
      throw error;
    })(),
  );
}

async function listAll(backend: Backend, prefix: string): Promise<ObjectInfo[]> {
  const found: ObjectInfo[] = [];
  await backend.list(prefix, (info) => found.push(info));
  return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const keysOf = (infos: ObjectInfo[]) => infos.map((i) => i.key);

async function expectNotFound(promise: Promise<unknown>, key: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected NotFoundError for ${key}`).toBeInstanceOf(NotFoundError);
  expect(isNotFound(err)).toBe(true);
  expect((err as NotFoundError).key).toBe(key);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function parallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

export function runBackendContract(name: string, makeBackend: () => Promise<BackendUnderTest>): void {
  describe(`Backend contract: ${name}`, () => {
    let backend: Backend;
    let under: BackendUnderTest | undefined;

    beforeEach(async () => {
      under = undefined;
      under = await makeBackend();
      backend = under.backend;
    }, SLOW);

    afterEach(async () => {
      if (!under) return; // makeBackend failed: that failure is the one to report
      await backend.close();
      await under.cleanup();
    }, SLOW);

    it('describes itself and passes check()', async () => {
      expect(backend.location).toMatch(/\S/);
      expect(Number.isInteger(backend.connections) && backend.connections > 0).toBe(true);
      await backend.check();
    });

    for (const size of SIZES) {
      it(
        `stores and reads back a ${size}-byte Buffer body`,
        async () => {
          const data = randomBytes(size);
          await backend.put(`buf/${size}.bin`, data);
          expect(sha256(await backend.getBuffer(`buf/${size}.bin`))).toBe(sha256(data));
          expect(sha256(await readAll(await backend.get(`buf/${size}.bin`)))).toBe(sha256(data));
          const info = await backend.head(`buf/${size}.bin`);
          expect(info.key).toBe(`buf/${size}.bin`);
          expect(info.size).toBe(size);
          if (info.modified !== undefined) expect(info.modified).toBeInstanceOf(Date);
        },
        SLOW,
      );

      it(
        `stores and reads back a ${size}-byte Readable body, with and without a size`,
        async () => {
          const data = randomBytes(size);
          await backend.put(`stream/${size}.sized`, chunkedReadable(data), size);
          await backend.put(`stream/${size}.unsized`, chunkedReadable(data));
          for (const key of [`stream/${size}.sized`, `stream/${size}.unsized`]) {
            expect(sha256(await readAll(await backend.get(key)))).toBe(sha256(data));
            expect((await backend.head(key)).size).toBe(size);
          }
        },
        SLOW,
      );
    }

    it(
      'reads byte ranges: start, middle, to the end, empty, and clipped at the end',
      async () => {
        const data = randomBytes(MiB + 123);
        await backend.put('ranged', data);
        const read = async (offset: number, length?: number) => readAll(await backend.get('ranged', length === undefined ? { offset } : { offset, length }));
        expect((await read(0, 10)).equals(data.subarray(0, 10))).toBe(true);
        expect((await read(300_000, 70_001)).equals(data.subarray(300_000, 370_001))).toBe(true);
        expect((await read(data.length - 500)).equals(data.subarray(data.length - 500))).toBe(true);
        expect((await read(0)).equals(data)).toBe(true);
        expect((await read(data.length - 1, 1)).equals(data.subarray(data.length - 1))).toBe(true);
        expect((await read(1000, 0)).length).toBe(0);
        // A range reaching past the end returns what exists, like HTTP ranges do.
        expect((await read(data.length - 10, 1000)).equals(data.subarray(data.length - 10))).toBe(true);
        expect((await read(data.length)).length).toBe(0);
      },
      SLOW,
    );

    it(
      'loads an object whole, from an offset, and a range of it, piece by piece in order',
      async () => {
        const data = randomBytes(MiB + 123);
        await backend.put('loaded', data);
        const load = async (options?: LoadOptions): Promise<Buffer> => {
          const pieces: Buffer[] = [];
          await backend.load('loaded', (piece) => void pieces.push(Buffer.from(piece)), options);
          return Buffer.concat(pieces);
        };
        expect((await load()).equals(data)).toBe(true);
        expect((await load({ offset: 300_000 })).equals(data.subarray(300_000))).toBe(true);
        expect((await load({ offset: 1000, length: 70_001 })).equals(data.subarray(1000, 71_001))).toBe(true);
        expect((await load({ length: 10 })).equals(data.subarray(0, 10))).toBe(true);
        expect((await load({ offset: 5, length: 0 })).length).toBe(0);
        // A range reaching past the end yields the bytes that exist.
        expect((await load({ offset: data.length - 10, length: 1000 })).equals(data.subarray(data.length - 10))).toBe(true);
        expect((await load({ offset: data.length })).length).toBe(0);
        await expectNotFound(
          backend.load('absent', () => undefined),
          'absent',
        );
        await expectNotFound(
          backend.load('absent', () => undefined, { offset: 1, length: 2 }),
          'absent',
        );
      },
      SLOW,
    );

    it(
      'waits for an async consumer, and passes its exception through as-is',
      async () => {
        const data = randomBytes(3 * MiB);
        await backend.put('consumed', data);
        let inside = 0;
        let most = 0;
        const pieces: Buffer[] = [];
        await backend.load('consumed', async (piece) => {
          most = Math.max(most, ++inside);
          pieces.push(Buffer.from(piece));
          await new Promise((resolve) => setImmediate(resolve));
          inside--;
        });
        expect(most).toBe(1); // one piece at a time: the read holds while the consumer works
        expect(Buffer.concat(pieces).equals(data)).toBe(true);
        const mine = new Error('consumer refuses');
        await expect(
          backend.load('consumed', () => {
            throw mine;
          }),
        ).rejects.toBe(mine);
      },
      SLOW,
    );

    it(
      "stops a load when its signal aborts, with the signal's reason, before or during the read",
      async () => {
        const data = randomBytes(6 * MiB);
        await backend.put('aborted', data);
        const before = new AbortController();
        const early = new Error('cancelled before');
        before.abort(early);
        let got = 0;
        await expect(backend.load('aborted', (p) => void (got += p.length), { signal: before.signal })).rejects.toBe(early);
        expect(got).toBe(0);

        const during = new AbortController();
        const late = new Error('cancelled midway');
        await expect(
          backend.load(
            'aborted',
            (p) => {
              got += p.length;
              if (got > 0) during.abort(late);
            },
            { signal: during.signal },
          ),
        ).rejects.toBe(late);
        expect(got).toBeGreaterThan(0);
        expect(got).toBeLessThan(data.length);
        // The backend is still usable afterwards (the aborted read released what it held).
        expect((await backend.getBuffer('aborted')).equals(data)).toBe(true);
      },
      SLOW,
    );

    it(
      'lists 1200 objects under a prefix (several S3 pages), with sizes, and deletes them in one call',
      async () => {
        const keys = Array.from({ length: 1200 }, (_, i) => `many/${String(i).padStart(5, '0')}.obj`);
        await parallel(keys, 32, async (key) => void (await backend.put(key, Buffer.from(key))));
        await backend.put('many-not/x', Buffer.from('outside the prefix'));

        const listed = await listAll(backend, 'many/');
        expect(keysOf(listed)).toEqual(keys);
        expect(listed.every((info) => info.size === Buffer.byteLength(info.key))).toBe(true);
        expect(keysOf(await listAll(backend, 'many/001'))).toEqual(keys.slice(100, 200));

        await backend.delete([...keys, 'many/absent-1', 'never/was/here']);
        expect(await listAll(backend, 'many/')).toEqual([]);
        expect(keysOf(await listAll(backend, 'many'))).toEqual(['many-not/x']);
      },
      SLOW,
    );

    it(
      'lists nested prefixes as plain string prefixes',
      async () => {
        const all = ['a/b/c/d.bin', 'a/b/x.bin', 'a/bc.bin', 'a/other.bin', 'b.bin'];
        for (const key of all) await backend.put(key, Buffer.from(key));
        expect(keysOf(await listAll(backend, ''))).toEqual(all);
        expect(keysOf(await listAll(backend, 'a/b/'))).toEqual(['a/b/c/d.bin', 'a/b/x.bin']);
        expect(keysOf(await listAll(backend, 'a/b'))).toEqual(['a/b/c/d.bin', 'a/b/x.bin', 'a/bc.bin']);
        expect(keysOf(await listAll(backend, 'a/b/c/d.bin'))).toEqual(['a/b/c/d.bin']);
        expect(keysOf(await listAll(backend, 'a/b/c/'))).toEqual(['a/b/c/d.bin']);
        expect(keysOf(await listAll(backend, 'b'))).toEqual(['b.bin']);
      },
      SLOW,
    );

    it('lists nothing for a prefix that matches nothing', async () => {
      await backend.put('present/one', Buffer.from('1'));
      expect(await listAll(backend, 'absent/')).toEqual([]);
      expect(await listAll(backend, 'present/two')).toEqual([]);
      expect(await listAll(backend, 'presentx')).toEqual([]);
    });

    it('deletes many keys, absent ones included, and an empty batch', async () => {
      await backend.put('del/1', Buffer.from('1'));
      await backend.put('del/2', Buffer.from('2'));
      await backend.put('del/sub/3', Buffer.from('3'));
      await backend.put('keep/4', Buffer.from('4'));
      await backend.delete([]);
      await backend.delete(['del/1', 'del/absent', 'del/sub/3', 'nowhere/at/all']);
      expect(keysOf(await listAll(backend, ''))).toEqual(['del/2', 'keep/4']);
      await expectNotFound(backend.head('del/1'), 'del/1');
      await backend.delete(['del/1']); // deleting twice is fine
      // A key can be written again after its neighbours were deleted.
      await backend.put('del/sub/3', Buffer.from('again'));
      expect((await backend.getBuffer('del/sub/3')).toString()).toBe('again');
    });

    it('overwrites an existing object, longer and shorter', async () => {
      await backend.put('over', Buffer.from('first version'));
      await backend.put('over', Buffer.from('second, longer version'));
      expect((await backend.getBuffer('over')).toString()).toBe('second, longer version');
      await backend.put('over', chunkedReadable(Buffer.from('short')));
      expect((await backend.getBuffer('over')).toString()).toBe('short');
      expect((await backend.head('over')).size).toBe(5);
      expect(keysOf(await listAll(backend, 'over'))).toEqual(['over']);
    });

    it('tells an object overwritten in place with other bytes of the same size apart (etag where kept, else its bytes)', async () => {
      // What a resume relies on to reuse a stored chunk (archive/format/stored-proof.ts): either the
      // server's fingerprint changes with the content, or reading the object back shows the change.
      const first = randomBytes(64 * 1024);
      const second = Buffer.from(first);
      second[12_345]! ^= 0x01;
      const etags = async (): Promise<[string | undefined, string | undefined]> => {
        const listed = await listAll(backend, 'damaged/');
        expect(keysOf(listed)).toEqual(['damaged/chunk']);
        return [(await backend.head('damaged/chunk')).etag, listed[0]!.etag];
      };
      await backend.put('damaged/chunk', first, first.length, { sha256: sha256(first) });
      const [headBefore, listBefore] = await etags();
      expect(listBefore).toBe(headBefore); // head and list say the same
      await backend.put('damaged/chunk', second, second.length, { sha256: sha256(second) });
      const [headAfter, listAfter] = await etags();
      expect(listAfter).toBe(headAfter);
      expect((await backend.head('damaged/chunk')).size).toBe(first.length);
      expect(sha256(await readAll(await backend.get('damaged/chunk')))).toBe(sha256(second));
      if (headBefore !== undefined) {
        expect(headAfter).toMatch(/\S/);
        expect(headAfter).not.toBe(headBefore);
      } else {
        expect(headAfter).toBeUndefined(); // a backend keeps a fingerprint for every object or none
      }
    });

    it('throws NotFoundError for get, ranged get, getBuffer and head of a missing key', async () => {
      await backend.put('exists/file', Buffer.from('x'));
      for (const key of ['missing', 'exists/missing', 'exists', 'exists/file/below']) {
        await expectNotFound(backend.get(key), key);
        await expectNotFound(backend.get(key, { offset: 1, length: 2 }), key);
        await expectNotFound(backend.getBuffer(key), key);
        await expectNotFound(backend.head(key), key);
      }
    });

    it('handles keys with every character our keys use', async () => {
      const keys = [
        'ABCDEFGHIJKLMNOPQRSTUVWXYZ/abcdefghijklmnopqrstuvwxyz/0123456789',
        'pool%2Fdata/20261122T020000Z-incr-daily_2026-11-22-3fa9c1d2/000000.zst',
        'tilde~dir/.dot.file_name-x~y%41%25%',
        '%/~/_/-/.x/x',
      ];
      for (const key of keys) await backend.put(key, Buffer.from(key));
      expect(keysOf(await listAll(backend, ''))).toEqual([...keys].sort());
      expect(keysOf(await listAll(backend, 'pool%2Fdata/'))).toEqual([keys[1]]);
      for (const key of keys) {
        expect((await backend.getBuffer(key)).toString()).toBe(key);
        expect((await backend.head(key)).size).toBe(Buffer.byteLength(key));
      }
      await backend.delete(keys);
      expect(await listAll(backend, '')).toEqual([]);
    });

    for (const goodBytes of [100, 6 * MiB]) {
      it(
        `a Readable body failing after ${goodBytes} bytes stores nothing and keeps the previous version`,
        async () => {
          const failure = new Error('zfs send died');
          await expect(backend.put('fail/new', failingReadable(goodBytes, failure))).rejects.toThrow('zfs send died');
          await expectNotFound(backend.head('fail/new'), 'fail/new');
          expect(await listAll(backend, '')).toEqual([]);

          await backend.put('fail/old', Buffer.from('previous'));
          await expect(backend.put('fail/old', failingReadable(goodBytes, failure))).rejects.toThrow('zfs send died');
          expect((await backend.getBuffer('fail/old')).toString()).toBe('previous');
          expect(keysOf(await listAll(backend, ''))).toEqual(['fail/old']);
        },
        SLOW,
      );
    }

    it('a put whose body does not have the announced size fails and stores nothing', async () => {
      await expect(backend.put('size/buf', Buffer.from('12345'), 6)).rejects.toThrow();
      await expect(backend.put('size/stream', chunkedReadable(Buffer.from('12345')), 4)).rejects.toThrow();
      expect(await listAll(backend, 'size/')).toEqual([]);
    });
  });
}
