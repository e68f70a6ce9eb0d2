import { OperationalError } from '../../util/errors.js';

/**
 * What is wrong with a stored manifest: 'manifest-unreadable' (empty, not JSON, not a manifest,
 * a newer major format) or 'manifest-invalid' (a field is missing, of the wrong type, or its
 * arithmetic disagrees with the rest). Readers turn it into a problem of that one stream.
 */
export type ManifestProblemKind = 'manifest-unreadable' | 'manifest-invalid';

export class ManifestError extends OperationalError {
  override name = 'ManifestError';
  /** The message without the object: what is wrong with it. */
  readonly detail: string;
  constructor(
    override readonly kind: ManifestProblemKind,
    /** Where the manifest is (`<target>/<key>`). */
    readonly object: string,
    /** The offending field as a path (`chunks[3].rawSize`), when one is to blame. */
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    const detail = field === undefined ? `manifest ${reason}` : `invalid manifest: ${field}: ${reason}`;
    super(`${object}: ${detail}`, { kind, context: { object } });
    this.detail = detail;
  }
}

/**
 * What was found in a field, short and safe: JSON for a string, number or boolean (cut at 60
 * characters), the shape for a list or object — whose JSON could be megabytes, or nested deeper
 * than JSON.stringify's stack allows (issue 15).
 */
export function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'an object';
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const ISO_TIME = /^([+-][0-9]{6}|[0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$/;

/** Field readers that name the field and what was found when a check fails. */
export class Fields {
  constructor(private readonly where: string) {}

  fail(field: string, reason: string): never {
    throw new ManifestError('manifest-invalid', this.where, field, reason);
  }

  private found(v: unknown): string {
    return describe(v);
  }

  object(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, `expected an object, found ${this.found(v)}`);
    return v as Record<string, unknown>;
  }

  array(v: unknown, field: string, minLength = 0): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `expected a list, found ${this.found(v)}`);
    if (v.length < minLength) this.fail(field, `expected at least ${minLength} entr${minLength === 1 ? 'y' : 'ies'}, found none`);
    return v;
  }

  string(v: unknown, field: string, nonEmpty = false): string {
    if (typeof v !== 'string' || (nonEmpty && v === '')) this.fail(field, `expected a${nonEmpty ? ' non-empty' : ''} string, found ${this.found(v)}`);
    return v;
  }

  boolean(v: unknown, field: string): boolean {
    if (typeof v !== 'boolean') this.fail(field, `expected true or false, found ${this.found(v)}`);
    return v;
  }

  /** A whole number in [min, max] that JSON and JavaScript hold exactly. */
  int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(field, `expected a whole number from ${min} to ${max}, found ${this.found(v)}`);
    }
    return v;
  }

  /** A 64-bit unsigned integer in decimal, as `zfs get -Hp guid` prints it (and createtxg). */
  decimal64(v: unknown, field: string, nonZero = false): string {
    if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v) || BigInt(v) > 0xffff_ffff_ffff_ffffn || (nonZero && v === '0')) {
      this.fail(field, `expected a${nonZero ? ' non-zero' : ''} 64-bit number in decimal as a string, found ${this.found(v)}`);
    }
    return v;
  }

  hex(v: unknown, field: string, digits: number): string {
    if (typeof v !== 'string' || v.length !== digits || !/^[0-9a-f]*$/.test(v)) this.fail(field, `expected ${digits} lowercase hex digits, found ${this.found(v)}`);
    return v;
  }

  /** What `Date.toISOString` writes (and other ISO 8601 offsets): not whatever Date.parse guesses at. */
  time(v: unknown, field: string): string {
    if (typeof v !== 'string' || !ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) this.fail(field, `expected an ISO date and time, found ${this.found(v)}`);
    return v;
  }

  /** A name printed by list, prune and restore: no control characters to rewrite the terminal. */
  name(v: unknown, field: string, nonEmpty = false): string {
    const s = this.string(v, field, nonEmpty);
    if ([...s].some((ch) => ch < ' ' || ch === '\u007f')) this.fail(field, `control character in ${this.found(v)}`);
    return s;
  }

  optional<T>(v: unknown, read: (v: unknown) => T): T | undefined {
    return v === undefined ? undefined : read(v);
  }
}
