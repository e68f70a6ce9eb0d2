/** Types of shaping-proxy.mjs (a plain .mjs so that it also runs standalone with `node`). */
export interface ShapingStats {
  /** Connections accepted since the start. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Bytes delivered client → target and target → client. */
  bytesUp: number;
  bytesDown: number;
}

export interface ShapingOptions {
  target: { host: string; port: number };
  /** Round trip added, half each way; default 0. */
  rttMs?: number;
  /** Bytes/s per connection and direction (or text like "20MiB"); default unlimited. */
  rate?: number | string;
  listen?: { host?: string; port?: number };
  onStats?: (stats: ShapingStats) => void;
}

export interface ShapingProxy {
  host: string;
  port: number;
  stats(): ShapingStats;
  close(): Promise<void>;
}

export function parseRate(text: string): number;
export function startShapingProxy(options: ShapingOptions): Promise<ShapingProxy>;
