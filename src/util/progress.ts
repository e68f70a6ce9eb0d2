import { formatBytes, formatRatio } from './bytes.js';

export interface ProgressState {
  rawBytes: number;
  storedBytes: number;
  /** Known total, for an ETA (restore knows it; a send usually does not). */
  totalBytes?: number;
  label?: string;
}

/**
 * One status line on a terminal (stderr), redrawn at most a few times a second;
 * silent when stderr is not a TTY (cron, systemd, pipes) or when disabled.
 */
export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly enabled = Boolean(process.stderr.isTTY)) {}

  update(state: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 250) return;
    this.lastDraw = now;
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = state.rawBytes / seconds;
    let line = `${state.label ? `${state.label} ` : ''}${formatBytes(state.rawBytes)}`;
    if (state.totalBytes) {
      const eta = rate > 0 ? Math.max(0, (state.totalBytes - state.rawBytes) / rate) : 0;
      line += ` / ${formatBytes(state.totalBytes)} (${((state.rawBytes / state.totalBytes) * 100).toFixed(0)}%, ETA ${Math.round(eta)}s)`;
    }
    line += ` at ${formatBytes(rate)}/s, stored ${formatBytes(state.storedBytes)} (${formatRatio(state.storedBytes, state.rawBytes)})`;
    process.stderr.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
  }
}
