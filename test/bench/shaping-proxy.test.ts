/**
 * The bench's shaping proxy (bench/support/shaping-proxy.mjs, issue 17): what it must get right
 * for a WAN measurement to mean anything. Bytes arrive whole and in order both ways, a FIN is
 * passed on only after the bytes queued before it, a reset is passed on, and a round trip takes
 * at least the configured RTT. Rates are not asserted (timing thresholds flake on a shared
 * machine); only lower bounds that shaping guarantees.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRate, type ShapingProxy, startShapingProxy } from '../../bench/support/shaping-proxy.mjs';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}

async function proxyTo(port: number, rttMs: number, rate?: number | string): Promise<ShapingProxy> {
  const proxy = await startShapingProxy({ target: { host: '127.0.0.1', port }, rttMs, rate });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** Everything a socket receives until its peer's FIN; rejects on a reset. */
function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

async function dial(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

describe('shaping proxy', () => {
  it('carries bytes identical and in order both ways, and passes each FIN on after the queued bytes', async () => {
    // Echo server: sends back exactly what it got, once the client has half-closed.
    const { port } = await listen((s) => {
      readAll(s).then(
        (got) => s.end(got),
        () => s.destroy(),
      );
    });
    // A slow link (4 MiB/s): most of the 3 MiB is still queued in the proxy when the client's FIN arrives.
    const proxy = await proxyTo(port, 10, 4 * 1024 * 1024);
    const payload = randomBytes(3 * 1024 * 1024);
    const client = await dial(proxy.port);
    const back = readAll(client);
    for (let off = 0; off < payload.length; off += 100_003) client.write(payload.subarray(off, off + 100_003));
    client.end();
    const got = await back;
    expect(got.length).toBe(payload.length);
    expect(got.equals(payload)).toBe(true);
    expect(proxy.stats()).toMatchObject({ connections: 1, bytesUp: payload.length, bytesDown: payload.length });
  });

  it('delivers a server response queued before the server closes (no truncated reply)', async () => {
    const reply = randomBytes(512 * 1024);
    const { port } = await listen((s) => {
      s.once('data', () => s.end(reply)); // answer and close at once: the FIN is right behind the data
    });
    const proxy = await proxyTo(port, 20, '1MiB');
    const client = await dial(proxy.port);
    const back = readAll(client);
    client.write('GET');
    const got = await back;
    expect(got.equals(reply)).toBe(true);
  });

  it('a round trip takes at least the configured RTT', async () => {
    const { port } = await listen((s) => s.on('data', (d: Buffer) => s.write(d)));
    const proxy = await proxyTo(port, 80);
    const client = await dial(proxy.port);
    cleanups.push(async () => void client.destroy());
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      client.write('ping');
      await once(client, 'data');
      expect(performance.now() - started).toBeGreaterThanOrEqual(79);
    }
  });

  it('a reset by the server reaches the client as an error, not as a clean end', async () => {
    const { port } = await listen((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const proxy = await proxyTo(port, 10, '10MiB');
    const client = await dial(proxy.port);
    const back = readAll(client);
    client.write('hello');
    await expect(back).rejects.toThrow(/ECONNRESET/);
  });

  it('a refused target resets the client; connections are counted', async () => {
    const { server, port } = await listen(() => {});
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const proxy = await proxyTo(port, 0);
    for (let i = 0; i < 2; i++) {
      const client = await dial(proxy.port);
      await expect(readAll(client)).rejects.toThrow(/ECONNRESET/);
    }
    expect(proxy.stats().connections).toBe(2);
  });

  it('parses rates', () => {
    expect(parseRate('20MiB')).toBe(20 * 1024 * 1024);
    expect(parseRate('20M')).toBe(20 * 1024 * 1024);
    expect(parseRate('512KiB/s')).toBe(512 * 1024);
    expect(parseRate('1000')).toBe(1000);
    expect(() => parseRate('fast')).toThrow(/rate/);
  });
});
