import { isAbsolute, resolve } from 'node:path';
import type { SettingSpec } from '../settings/table.js';
import { formatLimit } from '../settings/values.js';
import { parseSize } from '../util/bytes.js';
import { parseDuration } from '../util/duration.js';
import type { UsageError } from '../util/errors.js';
import { type ConfigSource, describeValue, didYouMean } from './yaml-source.js';

/** Keys that would hold a secret: never accepted in the file (docs/config.md: credentials by reference only). */
const SECRET_KEYS: Record<string, string> = {
  secret_access_key: 'secret_access_key_env (an environment variable name) or credentials_file',
  access_key_id: 'access_key_id_env (an environment variable name) or credentials_file',
  session_token: 'credentials_file or the environment (AWS_SESSION_TOKEN)',
  password: 'password_env (an environment variable name)',
  passphrase: 'passphrase_env (an environment variable name)',
};

/** Typed reads of config values; each failure names the key path, the line and what was expected. */
export class ConfigChecker {
  constructor(
    readonly src: ConfigSource,
    /** Relative file names in the config are relative to the config file's directory. */
    readonly baseDir: string,
  ) {}

  fail(path: string, why: string): UsageError {
    return this.src.error(path, why);
  }

  private expected(path: string, what: string, value: unknown): UsageError {
    return this.fail(path, `expected ${what}, got ${describeValue(value)}`);
  }

  /** A mapping with only the allowed keys (unknown ones refused, with a "did you mean"). */
  mapping(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw this.expected(path, 'a mapping of keys', value);
    const map = value as Record<string, unknown>;
    for (const key of Object.keys(map)) {
      if (allowed.includes(key)) continue;
      const at = path === '' ? key : `${path}.${key}`;
      const secret = SECRET_KEYS[key];
      if (secret) throw this.fail(at, `secrets are not accepted in the config file; use ${secret}`);
      const hint = didYouMean(key, allowed);
      throw this.fail(at, `unknown key${hint ? ` (did you mean "${hint}"?)` : `; allowed here: ${allowed.join(', ')}`}`);
    }
    return map;
  }

  string(value: unknown, path: string, pattern?: { re: RegExp; what: string }): string {
    if (typeof value !== 'string' || value.trim() === '') throw this.expected(path, pattern?.what ?? 'a non-empty string', value);
    if (pattern && !pattern.re.test(value)) throw this.expected(path, pattern.what, value);
    return value;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') throw this.expected(path, 'true or false', value);
    return value;
  }

  wholeNumber(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw this.expected(path, max === Number.MAX_SAFE_INTEGER ? `a whole number ≥ ${min}` : `a whole number from ${min} to ${max}`, value);
    }
    return value;
  }

  /** "30d", "12h", "2w" → milliseconds; bare numbers are refused (days? seconds?); 0 only when allowed. */
  duration(value: unknown, path: string, allowZero = false): number {
    const what = 'a duration such as 30d, 12h or 2w';
    if (typeof value !== 'string') throw this.expected(path, what, value);
    let ms: number;
    try {
      ms = parseDuration(value, path);
    } catch {
      throw this.expected(path, what, value);
    }
    if (ms < 0 || (ms === 0 && !allowZero)) throw this.expected(path, `${what} (more than 0)`, value);
    return ms;
  }

  /** "64M", "1G" or a number of bytes → bytes, within [min, max]. */
  size(value: unknown, path: string, min: number, max: number, what = 'a size such as 64M or 1G'): number {
    let bytes: number;
    if (typeof value === 'number' && Number.isInteger(value)) bytes = value;
    else if (typeof value === 'string') {
      try {
        bytes = parseSize(value, path);
      } catch {
        throw this.expected(path, what, value);
      }
    } else throw this.expected(path, what, value);
    if (bytes < min || bytes > max) throw this.fail(path, `${describeValue(value)} is out of range (${formatLimit(min)} to ${formatLimit(max)})`);
    return bytes;
  }

  /** A value of a setting of src/settings/table.ts, read by its type and range. */
  setting(spec: SettingSpec, value: unknown, path: string): unknown {
    switch (spec.type) {
      case 'size':
        return this.size(value, path, spec.min ?? 0, spec.max ?? Number.MAX_SAFE_INTEGER, spec.what);
      case 'duration':
        return this.duration(value, path, spec.min === 0);
      case 'count':
        return this.wholeNumber(value, path, spec.min ?? 0, spec.max);
      case 'bool':
        return this.boolean(value, path);
      case 'file':
        return this.file(value, path);
      case 'env-name':
        return this.envName(value, path);
      case 'string':
        return this.string(value, path, spec.pattern);
    }
  }

  envName(value: unknown, path: string): string {
    return this.string(value, path, { re: /^[A-Za-z_][A-Za-z0-9_]*$/, what: 'the NAME of an environment variable (letters, digits, _)' });
  }

  /** A file name; relative ones are taken from the config file's directory (cron has another cwd). */
  file(value: unknown, path: string): string {
    const name = this.string(value, path, { re: /^[^\0]+$/, what: 'a file name' });
    const expanded = name.startsWith('~/') && process.env.HOME ? `${process.env.HOME}${name.slice(1)}` : name;
    return isAbsolute(expanded) ? expanded : resolve(this.baseDir, expanded);
  }
}
