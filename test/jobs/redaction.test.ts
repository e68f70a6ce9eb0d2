import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli } from '../support/cli.js';

// Issue 15.4: a password typed into a URL — a target, --s3-endpoint, AWS_ENDPOINT_URL, a config
// file's target or s3.endpoint — never reaches stdout, stderr or the log file, whatever the
// command, --json or --log-file; and the exit code is README's ("Exit codes": 2 for a malformed
// URL or bad input, 1 when the storage cannot be reached).

const FIXTURE = fileURLToPath(new URL('../fixtures/streams/zse-tiny-full.zfs', import.meta.url));

/** Hostile passwords: '/', '@', ':', '%', quotes; each with a tag no message can hold by chance. */
const PASSWORDS = ['se/cr@t-15a', 'p@ss:w/rd%40-15b', `x"y'z@/:%-15c`, 'Zq9::@@//%%&=+-15d'];

/** Secrets given through the environment in the "reachable but refused" forms. */
const ENV_SFTP_PASSWORD = 'envSftpSecret-15f';
const ENV_AWS_SECRET = 'envAwsSecret/15g+';

interface Form {
  name: string;
  /** The URL with the password in it (or without one, for the network forms). */
  url: (pw: string, port: number) => string;
  /** The password string as it sits in the URL (defaults to pw). */
  secret?: (pw: string, port: number) => string;
  exit: number;
}

/** Target forms: each is refused (exit 2) before anything is sent, except the network ones (exit 1). */
const TARGETS: Form[] = [
  { name: 'sftp://u:PW@host:port/path', url: (pw, port) => `sftp://u:${pw}@127.0.0.1:${port}/x`, exit: 2 },
  { name: 'sftp://u:PW@host:port//abs', url: (pw, port) => `sftp://u:${pw}@127.0.0.1:${port}//abs/x`, exit: 2 },
  { name: 'sftp:/u:PW@host/path (one slash)', url: (pw) => `sftp:/u:${pw}@127.0.0.1/x`, exit: 2 },
  { name: 'sftp:u:PW@host/path (no slash)', url: (pw) => `sftp:u:${pw}@127.0.0.1/x`, exit: 2 },
  { name: 's3://KEY:PW@bucket/prefix', url: (pw) => `s3://AKIA15:${pw}@bucket/prefix`, exit: 2 },
  { name: 's3:/KEY:PW@bucket (one slash)', url: (pw) => `s3:/AKIA15:${pw}@bucket`, exit: 2 },
  { name: 'file://u:PW@localhost/path', url: (pw) => `file://u:${pw}@localhost/tmp/zo-redaction`, exit: 2 },
  { name: 'https://u:PW@host:port/path (unknown scheme)', url: (pw) => `https://u:${pw}@127.0.0.1:1/x`, exit: 2 },
  {
    // An e-mail user and a password starting with digits and holding '/': it parses as
    // user@host:port/path (nothing can tell), is tried against the closed port, and every message
    // naming the location must still hide the "password".
    name: 'sftp://me@host:DIGITS/PW@host/path (unreachable)',
    url: (_pw, port) => `sftp://me@127.0.0.1:${port}/sec@ret-15e@127.0.0.1:1/x`,
    secret: (_pw, port) => `${port}/sec@ret-15e`,
    exit: 1,
  },
];
/** A well-formed S3 target whose endpoint does not answer: the secret is in the environment. */
const S3_UNREACHABLE: Form = { name: 's3://bucket/prefix at endpoint 127.0.0.1:1 (unreachable)', url: () => 's3://bucket15/prefix', secret: () => ENV_AWS_SECRET, exit: 1 };

/** Endpoint forms, given by --s3-endpoint or AWS_ENDPOINT_URL (or s3.endpoint in a config). */
const ENDPOINTS: Form[] = [
  { name: 'http://KEY:PW@127.0.0.1:1', url: (pw) => `http://AKIA15:${pw}@127.0.0.1:1`, exit: 2 },
  { name: 'https://user:PW@host:9000', url: (pw) => `https://user:${pw}@host.example:9000`, exit: 2 },
  { name: 'http:/u:PW@127.0.0.1:1 (one slash)', url: (pw) => `http:/u:${pw}@127.0.0.1:1`, exit: 2 },
];

/** Output options: none, --json, a log file, both (with JSON logs on stderr). */
const VARIANTS = [
  { name: 'plain', global: [] as string[], json: false, logFile: false },
  { name: '--json', global: [] as string[], json: true, logFile: false },
  { name: '--log-file', global: ['--log-level', 'debug'], json: false, logFile: true },
  { name: '--json --log-file --log-json', global: ['--log-level', 'debug', '--log-json'], json: true, logFile: true },
];
const BOTH_ENDS = [VARIANTS[0]!, VARIANTS[3]!];

const COMMANDS = ['list', 'verify', 'put'] as const;

let dir: string;
let closedPort: number;
let runs = 0;
const formsTried = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zo-redaction-'));
  // A port nothing listens on: bound, then released.
  closedPort = await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  // The lead's note counts these.
  console.log(`redaction: ${formsTried.size} URL forms tried in ${runs} CLI runs`);
});

/** The environment of every run: a private lock directory, no ambient endpoint or SFTP key. */
function baseEnv(): NodeJS.ProcessEnv {
  return {
    ZFS_OFFSITE_LOCK_DIR: join(dir, 'locks'),
    AWS_ENDPOINT_URL: '',
    AWS_ENDPOINT_URL_S3: '',
    AWS_ACCESS_KEY_ID: 'AKIA15ENV',
    AWS_SECRET_ACCESS_KEY: ENV_AWS_SECRET,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    ZFS_OFFSITE_SFTP_KEY: '',
    SSH_AUTH_SOCK: '',
    ZFS_OFFSITE_SFTP_PASSWORD: ENV_SFTP_PASSWORD,
    ZFS_OFFSITE_SFTP_KNOWN_HOSTS: join(dir, 'known_hosts'),
  };
}

interface Case {
  label: string;
  form: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  secrets: string[];
  exit: number;
  json: boolean;
  logFile?: string;
  /** The password is in a URL the output names: the mask must show (stdout, stderr or log). */
  masked: boolean;
}

/** Every way the secret could be written: as is, JSON-escaped, and %-encoded. */
function spellings(secret: string): string[] {
  return [...new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)])];
}

async function check(c: Case): Promise<void> {
  const r: CliResult = await runCli(c.args, { env: c.env, input: Buffer.alloc(0) });
  runs++;
  formsTried.add(c.form);
  const log = c.logFile && existsSync(c.logFile) ? readFileSync(c.logFile, 'utf8') : '';
  const where = `${c.label}\nargs: ${JSON.stringify(c.args)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nlog: ${log}`;
  for (const secret of c.secrets.flatMap(spellings)) {
    for (const [name, text] of [
      ['stdout', r.stdout],
      ['stderr', r.stderr],
      ['log file', log],
    ] as const) {
      if (text.includes(secret)) throw new Error(`${name} holds the secret ${JSON.stringify(secret)}: ${where}`);
    }
  }
  expect(r.code, where).toBe(c.exit);
  // run reports a failed dataset in its summary and log (JSON lines with --log-json), not as an error line
  if (c.exit !== 0 && !(c.args.includes('run') && c.args.includes('--log-json'))) expect(r.stderr, where).toMatch(/^zfs-offsite: error: /m);
  expect(r.stderr, where).not.toMatch(/\n\s+at /);
  if (c.masked) expect(`${r.stdout}${r.stderr}${log}`, where).toContain('***');
  if (c.json && r.stdout.trim() !== '') expect(() => JSON.parse(r.stdout), where).not.toThrow();
}

/** Runs the cases a few at a time (the machine is shared; each run is a node process). */
async function checkAll(cases: Case[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < cases.length) await check(cases[next++]!);
  };
  await Promise.all([worker(), worker(), worker()]);
}

/** The command line of one command on `target`, with the variant's global options. */
function commandArgs(command: (typeof COMMANDS)[number], target: string, variant: (typeof VARIANTS)[number], logFile: string, extra: string[] = []): string[] {
  const global = [...variant.global, ...(variant.logFile ? ['--log-file', logFile] : [])];
  const json = variant.json ? ['--json'] : [];
  const storage = ['--retries', '1', '--retry-time', '1s', ...extra];
  switch (command) {
    case 'list':
      return [...global, 'list', target, ...json, ...storage];
    case 'verify':
      return [...global, 'verify', target, '--no-progress', ...json, ...storage];
    case 'put':
      return [...global, 'put', '--to', target, '--input', FIXTURE, '--dataset', 'tank/redaction', '--no-progress', ...json, ...storage];
  }
}

let counter = 0;
const logPath = () => join(dir, `log-${++counter}.jsonl`);

describe('credentials in URLs never reach any output (issue 15.4)', () => {
  it('targets of list, verify and put, with and without --json and --log-file', { timeout: 600_000 }, async () => {
    const cases: Case[] = [];
    let k = 0;
    for (const form of [...TARGETS, S3_UNREACHABLE]) {
      // the unreachable forms write logs: every variant; the refused ones: both ends
      const variants = form.exit === 1 ? VARIANTS : BOTH_ENDS;
      for (const command of COMMANDS) {
        for (const variant of variants) {
          const pw = PASSWORDS[k++ % PASSWORDS.length]!;
          const logFile = logPath();
          const extra = form === S3_UNREACHABLE ? ['--s3-endpoint', 'http://127.0.0.1:1'] : [];
          cases.push({
            label: `${form.name}: ${command} (${variant.name})`,
            form: `target ${form.name}`,
            args: commandArgs(command, form.url(pw, closedPort), variant, logFile, extra),
            env: baseEnv(),
            secrets: [form.secret ? form.secret(pw, closedPort) : pw, ENV_SFTP_PASSWORD, ENV_AWS_SECRET],
            exit: form.exit,
            json: variant.json,
            logFile,
            masked: form !== S3_UNREACHABLE,
          });
        }
      }
    }
    await checkAll(cases);
  });

  it('a reachable directory whose path holds sftp:/u:PW@h: put, list and verify succeed and show it masked everywhere', { timeout: 600_000 }, async () => {
    // The one form that gets through to a working archive (a directory may be named anything),
    // so every exit point prints it: put's summary, verify's report and JSON, the log lines.
    let n = 0;
    // passwords without '//' (a path would collapse it to '/', and the grep would miss that)
    for (const pw of PASSWORDS.filter((p) => !p.includes('//')).slice(0, 2)) {
      const target = join(dir, `local-${++counter}`, `sftp:/u:${pw}@h`, 'archive');
      const form = 'a directory path holding sftp:/u:PW@h (reachable)';
      const one = (command: (typeof COMMANDS)[number], variant: (typeof VARIANTS)[number]): Case => {
        const logFile = logPath();
        const args = commandArgs(command, target, variant, logFile);
        if (command === 'put') args[args.indexOf('tank/redaction')] = `tank/redaction${++n}`;
        return {
          label: `${form}: ${command} (${variant.name}) with ${pw}`,
          form,
          args,
          env: baseEnv(),
          secrets: [pw],
          exit: 0,
          json: variant.json,
          logFile,
          // list names no location; put --json neither (its log lines do, at --log-level debug)
          masked: command === 'verify' || (command === 'put' && (!variant.json || variant.logFile)),
        };
      };
      // put first (the archive must hold something), then list and verify read it
      for (const variant of VARIANTS) await check(one('put', variant));
      await checkAll([...VARIANTS.map((variant) => one('verify', variant)), ...BOTH_ENDS.map((variant) => one('list', variant))]);
    }
  });

  it('--s3-endpoint and AWS_ENDPOINT_URL holding a password, for list, verify and put', { timeout: 600_000 }, async () => {
    const cases: Case[] = [];
    let k = 0;
    for (const form of ENDPOINTS) {
      for (const via of ['--s3-endpoint', 'AWS_ENDPOINT_URL'] as const) {
        for (const command of COMMANDS) {
          for (const variant of BOTH_ENDS) {
            const pw = PASSWORDS[k++ % PASSWORDS.length]!;
            const endpoint = form.url(pw, closedPort);
            const logFile = logPath();
            cases.push({
              label: `${via} ${form.name}: ${command} (${variant.name})`,
              form: `${via} ${form.name}`,
              args: commandArgs(command, 's3://bucket15/prefix', variant, logFile, via === '--s3-endpoint' ? ['--s3-endpoint', endpoint] : []),
              env: { ...baseEnv(), ...(via === 'AWS_ENDPOINT_URL' ? { AWS_ENDPOINT_URL: endpoint } : {}) },
              secrets: [pw, ENV_AWS_SECRET],
              exit: form.exit,
              json: variant.json,
              logFile,
              masked: true,
            });
          }
        }
      }
    }
    await checkAll(cases);
  });

  it('a config file target: or s3.endpoint: with run --config (the cron mail and the on_failure hook)', { timeout: 600_000 }, async () => {
    const cases: Case[] = [];
    const hookOut = join(dir, 'hook-out');
    let k = 0;
    const entries: { form: Form; kind: 'target' | 'endpoint' }[] = [
      ...[...TARGETS, S3_UNREACHABLE].map((form) => ({ form, kind: 'target' as const })),
      ...ENDPOINTS.map((form) => ({ form, kind: 'endpoint' as const })),
    ];
    for (const { form, kind } of entries) {
      for (const variant of BOTH_ENDS) {
        const pw = PASSWORDS[k++ % PASSWORDS.length]!;
        const url = form.url(pw, closedPort);
        const target = kind === 'target' ? url : 's3://bucket15/prefix';
        const endpoint = kind === 'endpoint' ? url : form === S3_UNREACHABLE ? 'http://127.0.0.1:1' : undefined;
        const config = join(dir, `config-${++counter}.yaml`);
        // JSON strings are YAML double-quoted scalars: the URL reaches the program byte for byte.
        writeFileSync(
          config,
          [
            'datasets:',
            '  - name: tank/redaction',
            `    target: ${JSON.stringify(target)}`,
            ...(endpoint !== undefined ? [`    s3: { endpoint: ${JSON.stringify(endpoint)} }`] : []),
            '    retries: 1',
            '    retry_time: 1s',
            `    on_failure: ${JSON.stringify(`echo "hook: $ZFS_OFFSITE_TARGET $ZFS_OFFSITE_ERROR" >> ${hookOut}`)}`,
            '',
          ].join('\n'),
        );
        const logFile = logPath();
        const global = [...variant.global, ...(variant.logFile ? ['--log-file', logFile] : [])];
        cases.push({
          label: `config ${kind}: ${form.name} (${variant.name})`,
          form: `config ${kind} ${form.name}`,
          args: [...global, 'run', '--config', config, '--no-progress', ...(variant.json ? ['--json'] : [])],
          env: baseEnv(),
          secrets: [form.secret ? form.secret(pw, closedPort) : pw, ENV_SFTP_PASSWORD, ENV_AWS_SECRET],
          // a refused URL is a bad config (2); an unreachable target fails the dataset (1)
          exit: form.exit,
          json: variant.json,
          logFile,
          masked: form !== S3_UNREACHABLE,
        });
      }
    }
    await checkAll(cases);
    // The unreachable ones ran on_failure: what it was told holds no secret either.
    const told = readFileSync(hookOut, 'utf8');
    expect(told).toMatch(/^hook: /m);
    for (const secret of [`${closedPort}/sec@ret-15e`, ENV_SFTP_PASSWORD, ENV_AWS_SECRET].flatMap(spellings)) expect(told).not.toContain(secret);
  });
});
