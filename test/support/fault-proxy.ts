import { createServer, type Server, type Socket, connect } from 'node:net';

export interface FaultProxyOptions {
  /** Where connections go (e.g. Ceph RGW on 127.0.0.1:7480). */
  targetPort: number;
  /**
   * Faults by connection number, repeating: e.g. ['reset', 'none', 'stall', 'none'] resets the
   * 1st, 5th, 9th… connection and stalls the 3rd, 7th… (clients reuse connections, so a
   * pattern rather than a dice roll guarantees the faults happen).
   */
  pattern: ('reset' | 'stall' | 'none')[];
  /** Bytes forwarded before a fault strikes: random up to this. */
  maxBytesBeforeFault: number;
  random: () => number;
  /** The proxy closes itself after this long, whatever happens (bounded test traffic). */
  lifetimeMs: number;
}

export interface FaultProxy {
  port: number;
  stats: { connections: number; resets: number; stalls: number };
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that breaks some of the connections it forwards: a reset (RST)
 * part-way, or a stall (bytes stop flowing, the socket stays open). Only loopback.
 */
export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const stats = { connections: 0, resets: 0, stalls: 0 };
  const server: Server = createServer((client) => {
    stats.connections++;
    const upstream = connect(o.targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const fault = o.pattern[(stats.connections - 1) % o.pattern.length]!;
    let budget = fault === 'none' ? Infinity : Math.floor(o.random() * o.maxBytesBeforeFault);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (data: Buffer) => {
        if (budget <= 0) return;
        budget -= data.length;
        if (budget > 0) return void to.write(data);
        if (fault === 'reset') {
          stats.resets++;
          client.resetAndDestroy();
          upstream.destroy();
        } else {
          stats.stalls++; // keep both sockets open, forward nothing more
        }
      });
    forward(client, upstream);
    forward(upstream, client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const timer = setTimeout(() => void proxy.close(), o.lifetimeMs);
  timer.unref();
  const proxy: FaultProxy = {
    port: (server.address() as { port: number }).port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(timer);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
