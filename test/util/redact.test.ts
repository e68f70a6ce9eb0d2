import { describe, expect, it } from 'vitest';
import { jsonText } from '../../src/cli/output/json.js';
import { redactLogLine } from '../../src/util/logger.js';
import { seededRandom } from '../../src/util/random.js';
import { hasPassword, MASK, redactDeep, redactText, redactUrl } from '../../src/util/redact.js';

// Issue 15.4: one redaction for any URL-like text (src/util/redact.ts documents the rule).

/** [input, expected output of redactText]. */
const TEXT_CASES: [string, string][] = [
  // the forms of the issue
  ['s3://AKIA:se/cr@t@host/bucket', 's3://AKIA:***@host/bucket'],
  ['sftp://u:p@ss@h/x', 'sftp://u:***@h/x'],
  ['sftp:/u:pw@h/x', 'sftp:/u:***@h/x'],
  ['sftp:u:pw@h/x', 'sftp:u:***@h/x'],
  ['https://user:pw@host:9000', 'https://user:***@host:9000'],
  ['http://AKIA:se/cr@t@127.0.0.1:1', 'http://AKIA:***@127.0.0.1:1'],
  ['sftp://u:pw@h:23//abs/path', 'sftp://u:***@h:23//abs/path'],
  ['SFTP://U:PW@H/X', 'SFTP://U:***@H/X'],
  // passwords holding '/', '@', ':', '%', quotes, brackets
  ['sftp://u:a:b:c@h/x', 'sftp://u:***@h/x'],
  ['sftp://u:a/b@c:d%e@h/x', 'sftp://u:***@h/x'],
  ['sftp://u:p%40ss@h/x', 'sftp://u:***@h/x'],
  ['sftp://u:ab:/cd@h/x', 'sftp://u:***@h/x'],
  ['sftp://u:"q\'[]()@h/x', 'sftp://u:***@h/x'],
  ['https://:pw@h/', 'https://:***@h/'],
  ['https://u:pw@[::1]:9000/', 'https://u:***@[::1]:9000/'],
  // a percent-encoded separator counts as one (safe side)
  ['sftp://u%3Apw@h/x', 'sftp://u%3A***@h/x'],
  // a user name holding '@' (an e-mail address) stays, the password goes
  ['https://me@example.com:pw@h/', 'https://me@example.com:***@h/'],
  // no password: the user name stays visible; no credentials at all: unchanged
  ['sftp://u@h/x', 'sftp://u@h/x'],
  ['sftp://u123@box.example:23/zfs', 'sftp://u123@box.example:23/zfs'],
  ['file:///path@x', 'file:///path@x'],
  ['file:///srv/a:b', 'file:///srv/a:b'],
  ['https://host:9000/x', 'https://host:9000/x'],
  ['s3://bucket/prefix', 's3://bucket/prefix'],
  // not URLs: dataset and snapshot names, config positions
  ['tank/data@snap', 'tank/data@snap'],
  ['pool/a:b:c@snap', 'pool/a:b:c@snap'],
  ['config.yaml:12: datasets[1].keep.daily: x@y', 'config.yaml:12: datasets[1].keep.daily: x@y'],
  // embedded in longer text, followed by ':' and text, quoted, glued to a key
  ['cannot open sftp://u:pw@h/x: connection refused', 'cannot open sftp://u:***@h/x: connection refused'],
  ['sftp://u:pw@h/x:', 'sftp://u:***@h/x:'],
  ['(write ./sftp:/u:pw@h/x for a directory)', '(write ./sftp:/u:***@h/x for a directory)'],
  ['target="sftp://u:pw@h/x"', 'target="sftp://u:***@h/x"'],
  ['{"target":"sftp://u:p\\"w@h/x","n":1}', '{"target":"sftp://u:***@h/x","n":1}'],
  ['key:sftp://u:pw@h', 'key:sftp://u:***@h'],
  ['x.sftp:u:pw@h', 'x.sftp:u:***@h'],
  // several URLs: each masked; glued into one token, masked up to the last '@' (safe side)
  ['from s3://a:b@c/d to sftp://e:f@g/h', 'from s3://a:***@c/d to sftp://e:***@g/h'],
  ['s3://a:b@c,sftp://e:f@g', 's3://a:***@g'],
  ['line one sftp://u:pw@h\n\thttps://k:s@e.example\tend', 'line one sftp://u:***@h\n\thttps://k:***@e.example\tend'],
  // a path with ':' and '@' after a user: over-masked, never leaking
  ['sftp://u@h:23/pa@x', 'sftp://u@h:***@x'],
];

describe('redactText: every URL form of issue 15', () => {
  it.each(TEXT_CASES)('%j', (input, expected) => {
    expect(redactText(input)).toBe(expected);
  });

  it('is idempotent on its own output', () => {
    for (const [input] of TEXT_CASES) expect(redactText(redactText(input))).toBe(redactText(input));
  });
});

describe('redactUrl: one URL, the whole argument one token', () => {
  it.each([
    ['ftpx:u:pw@h', 'ftpx:u:***@h'],
    ['sftp://u:my pass@h/x', 'sftp://u:***@h/x'],
    ['sftp://u:pw@h/x', 'sftp://u:***@h/x'],
    ['ftp://user:hunter2@host/dir', 'ftp://user:***@host/dir'],
    ['sftp://u@h/x', 'sftp://u@h/x'],
    ['/mnt/usb@home', '/mnt/usb@home'],
  ])('%j', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
    expect(hasPassword(input)).toBe(input !== expected);
  });
});

describe('structured outputs keep their structure', () => {
  const value = { target: 'sftp://u:p"w@h/x', list: ['s3://k:s/e@b/x', 3, null], nested: { 'https://a:b@c': true }, big: 12n };

  it('redactDeep masks keys and values, leaves other values', () => {
    expect(redactDeep({ ...value, big: 1 })).toEqual({ target: 'sftp://u:***@h/x', list: ['s3://k:***@b/x', 3, null], nested: { 'https://a:***@c': true }, big: 1 });
  });

  it('jsonText (every --json output) prints valid JSON without the passwords', () => {
    const text = jsonText(value);
    expect(JSON.parse(text)).toEqual({ target: 'sftp://u:***@h/x', list: ['s3://k:***@b/x', 3, null], nested: { 'https://a:***@c': true }, big: '12' });
    for (const secret of ['p"w', 'p\\"w', 's/e', ':b@']) expect(text).not.toContain(secret);
  });

  it('redactLogLine masks a pino line field by field and keeps it JSON', () => {
    const line = `${JSON.stringify({ level: 50, msg: 'open sftp://u:pw1@h/x failed', err: { stack: 'Error: at https://k:pw2@e\n    at x' }, n: 'a@b' })}\n`;
    const out = redactLogLine(line);
    expect(out.endsWith('\n')).toBe(true);
    expect(JSON.parse(out)).toEqual({ level: 50, msg: 'open sftp://u:***@h/x failed', err: { stack: 'Error: at https://k:***@e\n    at x' }, n: 'a@b' });
    expect(redactLogLine('{"level":30,"msg":"no at sign"}\n')).toBe('{"level":30,"msg":"no at sign"}\n');
    expect(redactLogLine('not json sftp://u:pw3@h\n')).toBe('not json sftp://u:***@h\n');
  });
});

// --- property: seeded hostile passwords in every form, embedded in random text ---

/** Everything but whitespace that a password might hold; '%' and the URL delimiters on purpose. */
const HOSTILE = `abcXYZ019/@:%?#[]!$&'()*+,;="\\.-_~{}|^<>\`é€`;
const USER_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789._-';
const FORMS = [
  (u: string, p: string) => `sftp://${u}:${p}@h.example/x`,
  (u: string, p: string) => `sftp://${u}:${p}@h.example:23//abs/x`,
  (u: string, p: string) => `sftp:/${u}:${p}@h/x`,
  (u: string, p: string) => `sftp:${u}:${p}@h/x`,
  (u: string, p: string) => `s3://${u}:${p}@bucket/prefix`,
  (u: string, p: string) => `s3:/${u}:${p}@bucket`,
  (u: string, p: string) => `https://${u}:${p}@host:9000`,
  (u: string, p: string) => `http://${u}:${p}@127.0.0.1:1/path`,
  (u: string, p: string) => `file://${u}:${p}@localhost/x`,
  (u: string, p: string) => `ftp://${u}:${p}@[::1]:21/`,
  (u: string, p: string) => `SFTP://${u}:${p}@H/X`,
];
/** How a URL sits in a message: bare, quoted, JSON-stringified, followed by ':' and a reason. */
const WRAPS: ((url: string) => string)[] = [
  (url) => url,
  (url) => `"${url}"`,
  (url) => JSON.stringify(url),
  (url) => `${url}:`,
  (url) => `(${url})`,
  (url) => `'${url}',`,
  (url) => `./${url}`,
  (url) => `target=${url};`,
  (url) => `<${url}>`,
];
const WORDS = ['error:', 'cannot', 'open', 'tank/data@snap', 'x@y', 'a:b', 'config.yaml:3:', '"quoted"', '->', '|', 'file:///srv@x', 'sftp://user@host/x'];
const SPACES = [' ', '  ', '\n', '\t', ' | '];

describe('fuzz: a password never survives redaction', () => {
  it('holds for 11 forms × 9 wraps × raw and %-encoded passwords, 3000 seeded texts', () => {
    const random = seededRandom(0x15_04);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const word = (alphabet: string, min: number, max: number) => Array.from({ length: min + Math.floor(random() * (max - min + 1)) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    let urls = 0;
    for (let round = 0; round < 3000; round++) {
      const secrets: string[] = [];
      const parts: string[] = [];
      for (let k = 0, n = 1 + Math.floor(random() * 3); k < n; k++) {
        for (let w = Math.floor(random() * 3); w > 0; w--) parts.push(pick(WORDS), pick(SPACES));
        const raw = word(HOSTILE, 8, 20);
        const password = random() < 0.3 ? encodeURIComponent(raw) : raw;
        const wrapped = pick(WRAPS)(pick(FORMS)(word(USER_CHARS, 0, 8), password));
        // the password as it reads in the text: raw, or with JSON's escapes
        secrets.push(password, JSON.stringify(password).slice(1, -1));
        parts.push(wrapped, pick(SPACES));
        urls++;
      }
      const text = parts.join('');
      const out = redactText(text);
      for (const secret of secrets) {
        if (out.includes(secret)) throw new Error(`leaked ${JSON.stringify(secret)}: ${JSON.stringify(text)} → ${JSON.stringify(out)}`);
      }
      expect(out).toContain(MASK);
      // a single URL given alone is masked by redactUrl too, and hasPassword sees it
      const single = pick(FORMS)('u', secrets[0]!);
      expect(redactUrl(single)).not.toContain(secrets[0]);
      expect(hasPassword(single)).toBe(true);
    }
    expect(urls).toBeGreaterThan(5000);
  });
});

// --- no exit point bypasses it ---

/** Files that may touch process.stdout / process.stderr, and why that cannot leak a password. */
const WRITERS: Record<string, string> = {
  'src/cli/output/print.ts': 'printText: redactText on every human report',
  'src/cli/output/json.ts': 'printJson: jsonText masks every string',
  'src/cli/program.ts': "the error line (oneLineError masks) and commander's messages (masked)",
  'src/cli/main.ts': 'the internal-error line (masked)',
  'src/cli/interrupt.ts': 'the fixed "interrupted" line and isTTY only',
  'src/cli/commands/restore.ts': 'only picks the stream printText/printJson write to',
  'src/util/logger.ts': "lines that went through pino's streamWrite hook (redactLogLine)",
  'src/util/progress.ts': 'byte counts and fixed labels only',
  'src/jobs/restore.ts': 'the restored stream bytes (--output -) and isTTY',
  'src/jobs/verify.ts': 'isTTY only',
  'src/jobs/archive-stream.ts': 'isTTY only',
};

describe('every way out is masked', () => {
  it('only the known files touch stdout or stderr (a new one must mask, then join this list)', async () => {
    const { readdir, readFile } = await import('node:fs/promises');
    const root = new URL('../../', import.meta.url);
    const found: string[] = [];
    for (const entry of await readdir(new URL('src/', root), { recursive: true })) {
      if (!entry.endsWith('.ts')) continue;
      const text = await readFile(new URL(`src/${entry}`, root), 'utf8');
      const code = text.replace(/^\s*(\/\/|\*).*$/gm, '');
      if (/process\.(stdout|stderr)|console\.(log|error|warn|info|debug)/.test(code)) found.push(`src/${entry}`);
    }
    expect(found.sort()).toEqual(Object.keys(WRITERS).sort());
  });
});
