import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from '../util/errors.js';

/**
 * OpenSSH known_hosts files: parsing, matching a server's host key, fingerprints, and adding a
 * key (`--sftp-accept-new`). Supports what `ssh` writes and reads: comma-separated host
 * patterns with `*`/`?` wildcards and `!` negation, `[host]:port` names for ports other than 22,
 * hashed names (`|1|salt|hmac`, HashKnownHosts), comments, and the `@revoked` marker.
 * `@cert-authority` lines are ignored (host certificates are not supported), so a host known only
 * through a CA is "unknown".
 */
export interface KnownHostEntry {
  file: string;
  /** 1-based line number, for messages. */
  line: number;
  marker?: '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { status: 'trusted' }
  | { status: 'unknown' }
  | { status: 'revoked'; entry: KnownHostEntry }
  /** Keys are recorded for this host, but not the one the server showed. */
  | { status: 'changed'; known: KnownHostEntry[] };

/** The name OpenSSH records a host under: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (e.g. `ssh-ed25519`). */
export function keyBlobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len > 64 || 4 + len > blob.length) return 'unknown';
  return blob.toString('latin1', 4, 4 + len);
}

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const trimmed = (lines[i] ?? '').trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fields = trimmed.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m !== '@revoked' && m !== '@cert-authority') continue; // unknown marker: ignore the line, as ssh does
      marker = m;
    }
    const [patterns, keyType, keyText] = fields;
    if (!patterns || !keyType || !keyText || !/^[A-Za-z0-9+/]+={0,2}$/.test(keyText)) continue;
    const key = Buffer.from(keyText, 'base64');
    if (keyBlobType(key) !== keyType) continue; // damaged line
    entries.push({ file, line: i + 1, ...(marker ? { marker } : {}), patterns, keyType, key });
  }
  return entries;
}

/** Reads known_hosts files; a missing file is simply empty. */
export async function loadKnownHosts(files: string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      throw new UsageError(`cannot read the known_hosts file ${file} (${code ?? String(err)})`);
    }
    all.push(...parseKnownHosts(text, file));
  }
  return all;
}

function wildcardToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Whether a known_hosts host field (patterns or a hashed name) names `name`. */
export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    const expected = Buffer.from(hash, 'base64');
    const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  let matched = false;
  for (const raw of patterns.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    if (pattern === '' || !wildcardToRegExp(pattern).test(name)) continue;
    if (negated) return false; // a negated match wins over everything
    matched = true;
  }
  return matched;
}

export function verifyHostKey(entries: KnownHostEntry[], name: string, blob: Buffer): HostKeyVerdict {
  const forHost = entries.filter((e) => e.marker !== '@cert-authority' && hostMatches(e.patterns, name));
  const revoked = forHost.find((e) => e.marker === '@revoked' && e.key.equals(blob));
  if (revoked) return { status: 'revoked', entry: revoked };
  const plain = forHost.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(blob))) return { status: 'trusted' };
  // A different key of the same type is a changed key. Keys of other types only: also refused as
  // changed (never silently added), since the server is offered the known types first and still
  // did not present one of them.
  return plain.length === 0 ? { status: 'unknown' } : { status: 'changed', known: plain };
}

/** ssh2's default host key algorithms (all supported by Node ≥ 20's crypto). */
const DEFAULT_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
const ALGORITHMS_FOR_KEY_TYPE: Record<string, string[]> = {
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/**
 * Host key algorithms to offer, those of the keys already known for `name` first (as OpenSSH
 * does), so a server with several host keys presents the one we can check.
 */
export function preferredHostKeyAlgorithms(entries: KnownHostEntry[], name: string): string[] {
  const known = entries
    .filter((e) => e.marker === undefined && hostMatches(e.patterns, name))
    .flatMap((e) => ALGORITHMS_FOR_KEY_TYPE[e.keyType] ?? [e.keyType])
    .filter((algo) => DEFAULT_HOST_KEY_ALGORITHMS.includes(algo));
  return [...new Set([...known, ...DEFAULT_HOST_KEY_ALGORITHMS])];
}

/** Appends `name type key` to a known_hosts file, creating it (0600) and its directory (0700). */
export async function addKnownHost(file: string, name: string, blob: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const st = await stat(file);
    if (st.size > 0) {
      const text = await readFile(file);
      if (text[text.length - 1] !== 0x0a) prefix = '\n';
    }
  } catch {
    // does not exist yet
  }
  await appendFile(file, `${prefix}${name} ${keyBlobType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}
