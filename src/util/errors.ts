/**
 * Error classes shared by every layer. The CLI maps them to exit codes (cli/exit.ts):
 * UsageError → 2 (bad input, nothing changed), kind `no-archive` (archive/format/catalog.ts
 * NoArchiveError) → 4, everything else → 1.
 *
 * Code decides on an error's class and its `kind`, never on its message: the message is for
 * people and may be reworded at any time. What an error is about (dataset, snapshot, stream,
 * object) travels in `context` as fields. Errors cross worker threads as a `WireError`
 * (toWire in the worker, fromWire on the main thread), which keeps class, kind and context.
 */

/** What an error is about, as fields for logs and reports (the message says it in words). */
export interface ErrorContext {
  dataset?: string;
  snapshot?: string;
  /** Stream id (archive/format/keys.ts). */
  stream?: string;
  /** A stored object as `<target location>/<key>`. */
  object?: string;
}

export interface ErrorOptions {
  /** What kind of failure, for code to decide on; each subclass narrows it to its own union. */
  kind?: string;
  context?: ErrorContext;
  cause?: unknown;
}

/** Bad input from the user: unknown target, malformed URL, missing snapshot… Exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly kind: string;
  readonly context: ErrorContext;
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = options.kind ?? 'usage';
    this.context = options.context ?? {};
  }
}

/** An operation failed (network, storage, zfs). Exit 1. */
export class OperationalError extends Error {
  override name = 'OperationalError';
  readonly kind: string;
  readonly context: ErrorContext;
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = options.kind ?? 'operational';
    this.context = options.context ?? {};
  }
}

/**
 * What is wrong with a send stream: `truncated` — it ends early (an interrupted `zfs send` or
 * copy: what was stored is kept for a resume); `bad-magic` — its first bytes are not a ZFS
 * record at all; `corrupt` — anything else (bad checksum, malformed record, trailing data).
 */
export type StreamFormatKind = 'truncated' | 'bad-magic' | 'corrupt';

/** The input is not a complete, intact ZFS send stream. Exit 1, nothing committed. */
export class StreamFormatError extends OperationalError {
  override name = 'StreamFormatError';
  declare readonly kind: StreamFormatKind;
  constructor(
    kind: StreamFormatKind,
    /** What is wrong, without the offset. */
    readonly reason: string,
    /** Byte offset in the whole stream where the problem was found. */
    readonly offset: number,
    context?: ErrorContext,
  ) {
    super(`${reason} (at stream offset ${offset})`, { kind, ...(context ? { context } : {}) });
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** An error as it crosses a worker boundary (structured clone keeps neither class nor fields). */
export interface WireError {
  /** The class name (`err.name`): a receiver that knows a subclass rebuilds it from this. */
  name: string;
  /** Which base class it belongs to; 'other' for errors that are not ours. */
  base: 'usage' | 'operational' | 'other';
  message: string;
  kind?: string;
  context?: ErrorContext;
  /** StreamFormatError only. */
  reason?: string;
  offset?: number;
}

export function toWire(err: unknown): WireError {
  if (err instanceof StreamFormatError) {
    return { name: err.name, base: 'operational', message: err.message, kind: err.kind, context: err.context, reason: err.reason, offset: err.offset };
  }
  if (err instanceof UsageError || err instanceof OperationalError) {
    return { name: err.name, base: err instanceof UsageError ? 'usage' : 'operational', message: err.message, kind: err.kind, context: err.context };
  }
  return { name: err instanceof Error ? err.name : 'Error', base: 'other', message: errorMessage(err) };
}

/**
 * The error a WireError stands for: a StreamFormatError as such; any other error of ours as its
 * base class with its kind and context (a receiver rebuilds the subclasses it knows first).
 */
export function fromWire(w: WireError): Error {
  if (w.name === 'StreamFormatError' && w.reason !== undefined && w.offset !== undefined) {
    return new StreamFormatError(w.kind as StreamFormatKind, w.reason, w.offset, w.context);
  }
  const options = { ...(w.kind === undefined ? {} : { kind: w.kind }), ...(w.context ? { context: w.context } : {}) };
  if (w.base === 'usage') return new UsageError(w.message, options);
  if (w.base === 'operational') return new OperationalError(w.message, options);
  return new Error(w.message);
}
