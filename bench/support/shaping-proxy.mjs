#!/usr/bin/env node
/**
 * A shaping TCP proxy for `npm run bench`'s WAN mode (issue 17): every connection accepted on
 * the listen port is forwarded to the target, each direction through its own link that carries
 * at most `rate` bytes/s and delivers every byte `delay` ms after it left (one way: a 40 ms round
 * trip is 20 ms each way). What one TCP connection to a cloud bucket typically gets; the total is
 * not capped, so clients that open more connections get more.
 *
 * Semantics a client must not be able to tell from a slow server:
 * - bytes are delivered strictly in order, none dropped or duplicated;
 * - a half-close (FIN) is passed on only after every byte queued before it was delivered (a
 *   proxy that drops them looks like a server hanging up mid-response);
 * - an error or reset on one side resets the other at once (as TCP does: a RST overtakes data).
 *
 * Backpressure: a link holds at most its bandwidth-delay product plus 1 MiB; beyond that the
 * sending socket is paused, and a receiver that does not read pauses the link.
 *
 * As a module: `startShapingProxy({ target: { host, port }, rttMs, rate })` (types in
 * shaping-proxy.d.mts). Standalone:
 *
 *   node bench/support/shaping-proxy.mjs --listen 7481 --to 127.0.0.1:7480 --rtt-ms 40 --rate 20MiB [--stats-file F]
 *
 * prints `listening 127.0.0.1:PORT` and, with --stats-file, rewrites F (JSON: connections opened,
 * open now, bytes each way) whenever a connection opens or closes: the bench reads it around
 * every measurement, its commands run synchronously while this proxy runs in its own process.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Slices put on the link: small enough that a paced link looks smooth, big enough to be cheap. */
const SLICE = 16 * 1024;
const MiB = 1024 * 1024;

/** "20MiB", "20M", "2.5MB", "1000000" → bytes per second (binary units for K/M/G with or without "iB"). */
export function parseRate(text) {
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)?(i?b)?(?:\/s)?$/i.exec(String(text).trim());
  if (!m) throw new Error(`rate: expected bytes/s like 20MiB, 500KiB or 1048576, got ${JSON.stringify(text)}`);
  const unit = { k: 1024, m: MiB, g: 1024 * MiB }[(m[2] ?? '').toLowerCase()] ?? 1;
  const bytes = Number(m[1]) * unit;
  if (!(bytes > 0)) throw new Error(`rate: must be above 0, got ${JSON.stringify(text)}`);
  return bytes;
}

/**
 * One direction of one connection: bytes from `from` are queued with the time they are due at
 * `to` (serialised at `rate`, then `delay` later) and written in order when due.
 */
class Link {
  constructor(from, to, rate, delayMs, onBytes) {
    this.from = from;
    this.to = to;
    this.rate = rate;
    this.delayMs = delayMs;
    this.onBytes = onBytes;
    /** FIFO of { due, data } or { due, end: true }. */
    this.queue = [];
    this.head = 0;
    this.queued = 0;
    /** When the link is free to serialise the next byte (ms, performance.now()). */
    this.free = 0;
    this.timer = undefined;
    this.limit = (rate * (delayMs + 50)) / 1000 + MiB;
    this.waitingDrain = false;
    this.done = false;
    from.on('data', (data) => this.take(data));
    from.on('end', () => this.push({ end: true }, 0));
    to.on('drain', () => {
      this.waitingDrain = false;
      this.pump();
    });
  }

  take(data) {
    for (let off = 0; off < data.length; off += SLICE) this.push({ data: data.subarray(off, off + SLICE) }, Math.min(SLICE, data.length - off));
    if (this.queued > this.limit) this.from.pause();
  }

  push(item, bytes) {
    const now = performance.now();
    const start = Math.max(now, this.free);
    this.free = start + (bytes * 1000) / this.rate;
    item.due = this.free + this.delayMs;
    this.queue.push(item);
    this.queued += bytes;
    this.pump();
  }

  pump() {
    if (this.timer !== undefined || this.waitingDrain || this.done) return;
    while (this.head < this.queue.length) {
      const item = this.queue[this.head];
      const wait = item.due - performance.now();
      if (wait > 0.5) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, Math.ceil(wait));
        return;
      }
      this.head++;
      if (item.end) {
        this.done = true;
        this.to.end();
        return;
      }
      this.queued -= item.data.length;
      this.onBytes(item.data.length);
      const more = this.to.write(item.data);
      if (this.queued <= this.limit / 2 && this.from.isPaused()) this.from.resume();
      if (this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (!more) {
        this.waitingDrain = true;
        return;
      }
    }
  }

  stop() {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.head = 0;
    this.queued = 0;
  }
}

/**
 * Starts the proxy. Options: `target` { host, port }; `rttMs` (round trip added, split evenly
 * between the two directions; default 0); `rate` (bytes/s per connection and direction, number
 * or text like "20MiB"; default unlimited); `listen` { host = 127.0.0.1, port = 0 };
 * `onStats(stats)` called whenever a connection opens or closes.
 */
export async function startShapingProxy(options) {
  const { target } = options;
  const delayMs = (options.rttMs ?? 0) / 2;
  const rate = options.rate === undefined ? Number.POSITIVE_INFINITY : typeof options.rate === 'number' ? options.rate : parseRate(options.rate);
  const stats = { connections: 0, open: 0, bytesUp: 0, bytesDown: 0 };
  const report = () => options.onStats?.({ ...stats });
  const sockets = new Set();
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    stats.connections++;
    stats.open++;
    report();
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const up = new Link(client, upstream, rate, delayMs, (n) => (stats.bytesUp += n));
    const down = new Link(upstream, client, rate, delayMs, (n) => (stats.bytesDown += n));
    upstream.on('connect', () => client.resume());
    let closed = 0;
    const onClose = (socket, other) => (hadError) => {
      sockets.delete(socket);
      if (hadError && !other.destroyed) {
        // A reset or error on one side: reset the other at once, dropping what is queued.
        up.stop();
        down.stop();
        if (typeof other.resetAndDestroy === 'function') other.resetAndDestroy();
        else other.destroy();
      }
      if (++closed === 2) {
        stats.open--;
        report();
      }
    };
    // Both ended cleanly: a socket closes when both of its halves are done.
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', onClose(client, upstream));
    upstream.on('close', onClose(upstream, client));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen?.port ?? 0, options.listen?.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    host: address.address,
    port: address.port,
    stats: () => ({ ...stats }),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    if (flag === '--listen') {
      const m = /^(?:(.+):)?(\d+)$/.exec(value);
      if (!m) throw new Error(`--listen: expected [HOST:]PORT, got ${value}`);
      out.listen = { host: m[1] ?? '127.0.0.1', port: Number(m[2]) };
    } else if (flag === '--to') {
      const m = /^(.+):(\d+)$/.exec(value);
      if (!m) throw new Error(`--to: expected HOST:PORT, got ${value}`);
      out.target = { host: m[1], port: Number(m[2]) };
    } else if (flag === '--rtt-ms') out.rttMs = Number(value);
    else if (flag === '--rate') out.rate = parseRate(value);
    else if (flag === '--stats-file') out.statsFile = value;
    else throw new Error(`unknown option ${flag}`);
  }
  if (!out.target) throw new Error('--to HOST:PORT is required');
  if (out.rttMs !== undefined && !(out.rttMs >= 0)) throw new Error('--rtt-ms: expected a number of milliseconds ≥ 0');
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(
      `shaping-proxy: ${err.message}\nusage: shaping-proxy.mjs --to HOST:PORT [--listen [HOST:]PORT] [--rtt-ms 40] [--rate 20MiB] [--stats-file FILE]\n`,
    );
    process.exit(2);
  }
  // Written aside and renamed: a reader never sees a half-written file.
  const write = args.statsFile
    ? (s) => {
        writeFileSync(`${args.statsFile}.tmp`, `${JSON.stringify(s)}\n`);
        renameSync(`${args.statsFile}.tmp`, args.statsFile);
      }
    : undefined;
  const proxy = await startShapingProxy({ ...args, onStats: write });
  write?.(proxy.stats());
  process.stdout.write(`listening ${proxy.host}:${proxy.port}\n`);
  const stop = async () => {
    await proxy.close();
    write?.(proxy.stats());
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
