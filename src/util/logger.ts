import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pino, type Logger as PinoLogger } from 'pino';
import { openAppendOnly } from './exclusive-file.js';
import { redactDeep, redactText } from './redact.js';

export type Logger = PinoLogger;

export interface LoggerOptions {
  level?: string;
  /** JSON lines instead of short human lines on stderr. */
  json?: boolean;
  /** Also append JSON logs to this file (a regular file, never through a link: util/exclusive-file.ts). */
  file?: string;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/** Field names whose values never reach a log line, wherever they appear. */
const REDACT = ['*.secretAccessKey', '*.password', '*.passphrase', '*.sessionToken', 'secretAccessKey', 'password', 'passphrase'];

/** pino JSON → "zfs-offsite: info: message (key=value …)" for people reading a terminal. */
function humanStream(): Writable {
  return new Writable({
    write(line: Buffer, _enc, done) {
      try {
        const { level, msg, time: _t, pid: _p, hostname: _h, ...rest } = JSON.parse(line.toString()) as Record<string, unknown>;
        const fields = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        process.stderr.write(`zfs-offsite: ${LEVEL_NAMES[level as number] ?? level}: ${String(msg)}${fields ? ` (${fields})` : ''}\n`);
      } catch {
        process.stderr.write(line);
      }
      done();
    },
  });
}

/**
 * The log file, opened now (so a bad path is an error of the command, exit 2, before it does
 * anything): a regular file appended to, a missing one created 0600. A write that fails later
 * (disk full) is said once on stderr and stops the file, not the command.
 */
function logFileStream(file: string): Writable {
  const stream = createWriteStream(file, { fd: openAppendOnly(file, 'the log file') });
  stream.once('error', (err) => {
    process.stderr.write(redactText(`zfs-offsite: warning: cannot write the log file ${file}: ${err.message}; no more lines go there\n`));
    stream.on('error', () => undefined);
  });
  return stream;
}

/**
 * One JSON log line with the password of every URL in it masked (src/util/redact.ts): field by
 * field, so the line stays valid JSON for --log-json and --log-file. Applied once, before pino
 * hands the line to any stream (stderr, human or JSON, and the log file).
 */
export function redactLogLine(line: string): string {
  if (!line.includes('@')) return line;
  try {
    const end = line.endsWith('\n') ? '\n' : '';
    return `${JSON.stringify(redactDeep(JSON.parse(line)))}${end}`;
  } catch {
    return redactText(line);
  }
}

/** Throws a FileRefusedError (exit 2) when `options.file` cannot be used as a log file. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.ZFS_OFFSITE_LOG_LEVEL ?? 'warn';
  const console = options.json ? pino.destination({ fd: 2, sync: true }) : humanStream();
  const streams: pino.StreamEntry[] = [{ stream: console, level: level as pino.Level }];
  if (options.file) streams.push({ stream: logFileStream(options.file), level: 'debug' });
  const minLevel = options.file && pino.levels.values[level]! > 20 ? 'debug' : level;
  return pino({ level: minLevel, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid }, hooks: { streamWrite: redactLogLine } }, pino.multistream(streams));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
