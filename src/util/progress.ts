import { formatBytes, formatRatio } from './bytes.js';

export interface ProgressState {
  rawBytes: number;
  /** Bytes stored after compression (put, send, run); omitted where it says nothing new (restore, verify). */
  storedBytes?: number;
  /**
   * The size when known, for percent and ETA: restore and verify know it, `put --input FILE` has
   * the file's size, `send` the estimate of `zfs send -nvP` (which the stream may exceed).
   */
  totalBytes?: number;
  /** `totalBytes` is an estimate: shown as `~SIZE`. */
  estimate?: boolean;
  label?: string;
}

/** One field of the line, and how much it matters: the least important go first when it is too long. */
interface Field {
  text: string;
  rank: number;
}

/**
 * The status line for `state` after `seconds`, at most `width` characters (never wrapped:
 * a wrapped line cannot be redrawn with `\r` and leaves garbage on the terminal). Fields in order
 * of importance: label and bytes (with the total), percent, ETA, rate, stored size and ratio;
 * the least important are dropped until it fits, and what still does not fit is cut.
 * Percent stays below 100 and the ETA is left out while the stream is larger than its estimate.
 */
export function progressLine(state: ProgressState, seconds: number, width: number): string {
  const elapsed = Math.max(seconds, 0.001);
  const rate = state.rawBytes / elapsed;
  const total = state.totalBytes !== undefined && state.totalBytes > 0 ? state.totalBytes : undefined;
  const fields: Field[] = [];
  if (state.label) fields.push({ text: state.label, rank: 0 });
  fields.push({ text: total !== undefined ? `${formatBytes(state.rawBytes)} / ${state.estimate ? '~' : ''}${formatBytes(total)}` : formatBytes(state.rawBytes), rank: 0 });
  if (total !== undefined) {
    const beyond = state.rawBytes >= total;
    // An estimate the stream outgrows (zfs send -nvP is one) is not a reason to show 100 % or more.
    const percent = beyond ? 99 : Math.min(99, Math.floor((state.rawBytes / total) * 100));
    fields.push({ text: `${state.rawBytes === total && !state.estimate ? 100 : percent}%`, rank: 1 });
    if (!beyond && rate > 0 && state.rawBytes > 0) fields.push({ text: `ETA ${formatEta((total - state.rawBytes) / rate)}`, rank: 2 });
  }
  fields.push({ text: `${formatBytes(rate)}/s`, rank: 3 });
  if (state.storedBytes !== undefined) fields.push({ text: `stored ${formatBytes(state.storedBytes)} (${formatRatio(state.storedBytes, state.rawBytes)})`, rank: 4 });
  return fitLine(fields, width);
}

/** Drops the least important fields (highest rank) until the line fits, then cuts it. */
function fitLine(fields: Field[], width: number): string {
  const room = Math.max(1, width);
  let kept = fields;
  let line = join(kept);
  for (let rank = 4; line.length > room && rank > 0; rank--) {
    kept = kept.filter((f) => f.rank < rank);
    line = join(kept);
  }
  return line.length > room ? `${line.slice(0, Math.max(0, room - 1))}…` : line;
}

function join(fields: Field[]): string {
  return fields.map((f) => f.text).join('  ');
}

/** 42s, 3:07, 1:02:03 */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${String(rest).padStart(2, '0')}`;
  if (m > 0) return `${m}:${String(rest).padStart(2, '0')}`;
  return `${rest}s`;
}

/**
 * One status line on a terminal (stderr), redrawn at most a few times a second and fitted to
 * the terminal's width; silent when stderr is not a TTY (cron, systemd, pipes) or when disabled.
 * The one progress display of every command (put, send, run, restore, verify).
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
    // One column less than the terminal: writing its last column makes some terminals wrap.
    const width = (process.stderr.columns || 80) - 1;
    process.stderr.write(`\r\x1b[K${progressLine(state, (now - this.started) / 1000, width)}`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
  }
}
