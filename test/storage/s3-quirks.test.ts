/**
 * The provider quirks table (src/storage/s3-quirks.ts) against the two real S3 implementations
 * of the suite, and the headers each delete switch puts on the wire (a local HTTP server that
 * records them, for providers we cannot run here, such as Backblaze B2).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/settings/table.js';
import { S3Backend } from '../../src/storage/s3.js';
import { S3_PROVIDERS, S3_QUIRKS, type S3Quirks, s3Quirks } from '../../src/storage/s3-quirks.js';
import { createTestBucket, type TestBucket } from '../support/rgw.js';
import { s3TestServers } from '../support/s3-servers.js';

describe('the quirks table', () => {
  it('--s3-provider accepts exactly the rows of the table, and the default row is `other`', () => {
    const pattern = SETTINGS.s3Provider.pattern.re;
    for (const p of S3_PROVIDERS) expect(pattern.test(p), p).toBe(true);
    for (const p of ['', 'minio', 'AWS', 'swift ', 'other|aws']) expect(pattern.test(p), p).toBe(false);
    expect(SETTINGS.s3Provider.pattern.what).toBe(`one of ${S3_PROVIDERS.join(', ')}`);
    expect(SETTINGS.s3Provider.default).toBe('other');
    expect(Object.keys(S3_QUIRKS).sort()).toEqual([...S3_PROVIDERS].sort());
  });

  it('the default row is the one that works everywhere: Content-MD5 on deletes, no CRC32, no claim about key IDs', () => {
    expect(s3Quirks()).toEqual({ deleteChecksum: 'content-md5', multiDelete: true, unknownKeyLooksLikeWrongSecret: true });
    expect(s3Quirks('swift').deleteChecksum).toBe('content-md5');
    expect(s3Quirks('b2').deleteChecksum).toBe('content-md5');
    expect(s3Quirks('other', { multiDelete: false }).multiDelete).toBe(false);
  });

  it('refuses an unknown provider', () => {
    expect(() => new S3Backend({ bucket: 'b', prefix: '', provider: 'minio', endpoint: 'http://127.0.0.1:1' })).toThrow(/unknown S3 provider "minio"/);
  });
});

describe('what each delete switch sends (recording HTTP server)', () => {
  const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>');
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  let endpoint: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function deleteWith(provider: string, quirks: Partial<S3Quirks> = {}) {
    seen.length = 0;
    const backend = new S3Backend({
      bucket: 'b',
      prefix: 'p',
      endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
      provider,
      quirks,
    });
    try {
      await backend.delete(['a', 'b/c']);
    } finally {
      await backend.close();
    }
    return [...seen];
  }

  it.each(['other', 'swift', 'b2'])('%s: one DeleteObjects with Content-MD5 (signed) and no SDK checksum headers', async (provider) => {
    const [req, ...more] = await deleteWith(provider);
    expect(more).toEqual([]);
    expect(req).toMatchObject({ method: 'POST', url: '/b/?delete=' });
    expect(req!.headers['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(Object.keys(req!.headers).filter((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
    expect(req!.headers.authorization).toMatch(/SignedHeaders=[^,]*content-md5/);
  });

  it.each(['aws', 'ceph'])('%s: the SDK default, a CRC32 checksum', async (provider) => {
    const [req] = await deleteWith(provider);
    expect(req!.headers['x-amz-checksum-crc32']).toBeDefined();
    expect(req!.headers['content-md5']).toBeUndefined();
  });

  it('multiDelete false: one DeleteObject per key', async () => {
    const reqs = await deleteWith('other', { multiDelete: false });
    expect(reqs.map((r) => `${r.method} ${r.url.replace(/\?.*$/, '')}`).sort()).toEqual(['DELETE /b/p/a', 'DELETE /b/p/b/c']);
  });
});

describe.each(s3TestServers())('the quirks rows on $name', ({ name, settings, hint, provider }) => {
  if (!settings) {
    it.skip(`skipped: ${name} is not running; ${hint}`, () => undefined);
    return;
  }
  let bucket: TestBucket;
  beforeAll(async () => {
    bucket = await createTestBucket(settings);
  });
  afterAll(async () => bucket?.cleanup());

  const backendWith = (providerName: string, quirks: Partial<S3Quirks> = {}, prefix = randomBytes(4).toString('hex')) =>
    new S3Backend({
      bucket: bucket.name,
      prefix,
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: true,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      provider: providerName,
      quirks,
    });

  async function deletesAll(backend: S3Backend): Promise<void> {
    const keys = ['x/1', 'x/2', 'y'];
    for (const key of keys) await backend.put(key, Buffer.from(key));
    await backend.delete([...keys, 'absent']);
    const left: string[] = [];
    await backend.list('', (o) => left.push(o.key));
    expect(left).toEqual([]);
  }

  it.each([
    ['other (the default)', 'other', {}],
    ['its own row', provider, {}],
    ['single deletes (multiDelete false)', 'other', { multiDelete: false }],
  ] as const)('%s deletes every key, an absent one included', async (_label, row, quirks) => {
    const backend = backendWith(row, quirks);
    try {
      await deletesAll(backend);
    } finally {
      await backend.close();
    }
  });

  // Only Swift refuses it: on other servers the test is not defined at all (not a skip).
  if (provider === 'swift') {
    it('the SDK default CRC32 on DeleteObjects is refused for lack of Content-MD5 (why the switch exists)', async () => {
      const backend = backendWith('ceph');
      try {
        await backend.put('kept', Buffer.from('k'));
        const err = await backend.delete(['kept']).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ permanent: true });
        expect(String((err as Error).message)).toMatch(/InvalidRequest, HTTP 400.*Content-MD5/);
        expect((await backend.head('kept')).size).toBe(1);
      } finally {
        await backend.close();
      }
    });
  }
});
