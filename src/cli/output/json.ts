import { redactText } from '../../util/redact.js';

/** A plain object whose keys need masking, rebuilt with masked keys (values are masked one by one). */
function maskedKeys(v: object): object {
  if (Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return v;
  const keys = Object.keys(v);
  if (!keys.some((k) => redactText(k) !== k)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [redactText(k), x]));
}

/**
 * JSON as every command prints it: indented by 2, bigints as decimal strings, and every string
 * (key or value) without the password of a URL (src/util/redact.ts), masked value by value so the
 * JSON stays valid.
 */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'string') return redactText(v);
      if (v !== null && typeof v === 'object') return maskedKeys(v);
      return v;
    },
    2,
  )}\n`;
}

export function printJson(value: unknown, to: NodeJS.WritableStream = process.stdout): void {
  to.write(jsonText(value));
}
