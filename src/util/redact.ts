/**
 * The one redaction of credentials typed into URLs (issue 15): every message, log line and JSON
 * output passes through `redactText` on its way out (src/cli/exit.ts, src/cli/output/print.ts,
 * src/cli/output/json.ts, src/util/logger.ts), and the URL parsers show a URL only through
 * `redactUrl`.
 *
 * The rule, for one URL-like token:
 *   - a URL starts at a scheme (`[A-Za-z][A-Za-z0-9+.-]*:`, not glued to a preceding scheme
 *     character) followed by at least one `/` (`sftp://`, `sftp:/`, `file:///`); for the schemes
 *     this program knows or that carry log-ins (KNOWN below) no slash is needed (`sftp:u:pw@h`),
 *     and a dataset name such as `pool/a:b:c@snap` is not taken for one; `redactUrl` also takes
 *     any scheme at the very start of its argument without a slash;
 *   - its credentials run from after the slashes to the LAST `@` of the token: a password may
 *     hold `/`, `@`, `:` and `%`, so no earlier `@` or `/` can be trusted to end it;
 *   - the user name ends at the first `:` (or `%3A`) of the credentials (RFC 3986: a `:` in a
 *     user name must be written `%3A`). Everything after it, up to that last `@`, is masked:
 *     `sftp://u:p@ss@h/x` → `sftp://u:***@h/x`. The user name stays visible, because messages
 *     about an SFTP log-in need it and it is not a secret; credentials without a `:` are a user
 *     name only (`sftp://u@h/x`, `file:///path@x`) and stay as they are.
 *
 * The end of a token: whitespace or the end of the string, nothing else. Quotes, commas,
 * brackets and `:` do not end it, because a password may contain them (a JSON-quoted URL, a URL
 * followed by `: reason`, `"url",` in a list all stay inside one token). The price is
 * over-masking on the safe side: when one token holds a URL and, further on, another `@` (two
 * URLs glued by a comma, a path with both `:` and `@`), everything up to the last `@` is masked.
 * A password holding whitespace cannot be told apart from the words around it in free text; the
 * URL parsers (src/storage/open.ts, s3-url.ts, sftp-config.ts) refuse any URL with a password
 * and show it only through `redactUrl`, which treats its whole argument as one token.
 */

export const MASK = '***';

/** Schemes recognised even without a slash after the colon, and glued to any non-alphanumeric. */
const KNOWN = ['s3', 'sftp', 'file', 'https', 'http', 'ftps', 'ftp', 'ssh', 'scp', 'smb', 'webdav', 'davs', 'dav', 'rsync'];

/**
 * Where a URL starts: a scheme, its colon and at least one slash (the look-behind keeps `ab:/`
 * from being read as `b:/`), or a KNOWN scheme and its colon with any slashes.
 */
const URL_START = new RegExp(`(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:/+|(?<![A-Za-z0-9])(?:${KNOWN.join('|')}):/*`, 'gi');
/** Any scheme at the start of a string (`redactUrl`). */
const LEADING_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/*/;

/** Where the user/password separator ends, within `userinfo`, or -1 without a password. */
function passwordStart(userinfo: string): number {
  const colon = userinfo.indexOf(':');
  const encoded = userinfo.search(/%3a/i);
  if (colon < 0 && encoded < 0) return -1;
  if (encoded < 0 || (colon >= 0 && colon < encoded)) return colon + 1;
  return encoded + 3;
}

/** Masks the password of the first URL in one token (see the rule above). */
function redactToken(token: string, anySchemeAtStart: boolean): string {
  const at = token.lastIndexOf('@');
  if (at < 0) return token;
  // Only the first URL counts: every later one ends at the same last '@', so its credentials are
  // a suffix of the first one's and masked with them.
  URL_START.lastIndex = 0;
  const first = (anySchemeAtStart ? LEADING_SCHEME.exec(token) : null) ?? URL_START.exec(token);
  if (first === null) return token;
  const start = first.index + first[0].length;
  if (start > at) return token;
  const from = passwordStart(token.slice(start, at));
  if (from < 0) return token;
  return `${token.slice(0, start + from)}${MASK}${token.slice(at)}`;
}

/** `text` with the password of every URL in it masked; everything else unchanged. */
export function redactText(text: string): string {
  if (!text.includes('@')) return text;
  return text.replace(/\S+/g, (token) => redactToken(token, false));
}

/** One URL (a target, an endpoint) for a message: the whole argument is one token. */
export function redactUrl(url: string): string {
  return redactToken(url, true);
}

/**
 * A target for a label or a hook's environment: no password and no user name either
 * (`sftp://u123@box/zfs` → `sftp://box/zfs`); a path without a scheme is left as it is.
 */
export function withoutCredentials(url: string): string {
  return redactUrl(url).replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^@/]*@/, '$1');
}

/** Whether `url` carries a password (what `redactUrl` would mask). */
export function hasPassword(url: string): boolean {
  return redactUrl(url) !== url;
}

/**
 * Every string of a JSON-like value (object keys too) passed through `redactText`; other values
 * as they are. Used on JSON outputs and log records, so the structure survives the masking.
 */
export function redactDeep(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[redactText(k)] = redactDeep(v);
    return out;
  }
  return value;
}
