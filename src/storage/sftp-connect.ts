import SftpClient from 'ssh2-sftp-client';
import type { AuthenticationType, ConnectConfig, NextAuthHandler, SFTPWrapper } from 'ssh2';
import { StorageError } from './backend.js';
import { addKnownHost, fingerprint, hostKeyName, type KnownHostEntry, keyBlobType, loadKnownHosts, preferredHostKeyAlgorithms, verifyHostKey } from './known-hosts.js';
import { SFTP_ENV, type SftpAuth, type SftpHostKeyPolicy } from './sftp-config.js';
import { SftpConnectionLost, sftpConnectError, ssh2ConnectFailure } from './sftp-errors.js';

/**
 * One SSH connection with its SFTP channel (ssh2-sftp-client makes the connection; requests go
 * straight to its ssh2 SFTP channel, which keeps the SFTP status codes and allows many requests
 * in flight). Only the SFTP subsystem is ever opened: no exec, no shell.
 */
export class SftpSession {
  /** Operations currently using this session (for spreading load over a pool). */
  active = 0;
  dead = false;
  private readonly pending = new Set<(err: Error) => void>();
  private readonly lost: Promise<never>;
  private signalLost!: (err: Error) => void;

  constructor(
    private readonly client: SftpClient,
    readonly sftp: SFTPWrapper,
    private readonly server: string,
  ) {
    this.lost = new Promise<never>((_, reject) => (this.signalLost = reject));
    this.lost.catch(() => undefined); // only a signal: awaiting it is optional
    // Without these listeners a dropped connection would be an unhandled 'error' event.
    sftp.on('error', () => this.die('SFTP channel error'));
    sftp.on('close', () => this.die('connection closed'));
  }

  /** Whether the server announced an SFTP extension (e.g. posix-rename@openssh.com). */
  hasExtension(name: string): boolean {
    const exts = (this.sftp as unknown as { _extensions?: Record<string, string> })._extensions;
    return exts !== undefined && Object.hasOwn(exts, name);
  }

  /** Largest data size of one WRITE / READ request the server accepts (limits@openssh.com). */
  get maxWrite(): number {
    return (this.sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 32 * 1024;
  }

  get maxRead(): number {
    return (this.sftp as unknown as { _maxReadLen?: number })._maxReadLen ?? 32 * 1024;
  }

  /**
   * Runs one SFTP request. If the connection dies first, the promise is rejected with
   * SftpConnectionLost (ssh2 would otherwise never call back a request sent after the channel
   * closed).
   */
  call<T = void>(start: (sftp: SFTPWrapper, done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    if (this.dead) return Promise.reject(new SftpConnectionLost(`connection to ${this.server} lost`));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        this.pending.delete(fail);
        reject(err);
      };
      this.pending.add(fail);
      try {
        start(this.sftp, (err, value) => {
          if (err) return fail(err);
          if (settled) return;
          settled = true;
          this.pending.delete(fail);
          resolve(value as T);
        });
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Rejects when the connection dies: lets a put stop waiting for its producer at once. */
  whenLost(): Promise<never> {
    return this.lost;
  }

  /** Marks the connection unusable and fails every outstanding request. */
  die(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    const err = new SftpConnectionLost(`connection to ${this.server} lost (${reason})`);
    for (const fail of [...this.pending]) fail(err);
    this.signalLost(err);
  }

  async end(): Promise<void> {
    this.die('closed by us');
    await this.client.end().catch(() => undefined);
  }

  /** Tests only: cut the TCP connection as a network failure would. */
  destroyForTests(): void {
    (this.client as unknown as { client: { destroy(): void } }).client.destroy();
  }
}

export interface SftpConnectParams {
  host: string;
  port: number;
  user: string;
  auth: SftpAuth;
  hostKeys: SftpHostKeyPolicy;
  /** The target URL for messages (no secrets). */
  where: string;
  /** After the first connection: the host key every further connection must present. */
  pinnedKey?: Buffer;
  /** Handshake + authentication deadline. Default 20 s. */
  readyTimeoutMs?: number;
}

type AuthStep = { type: AuthenticationType; serverName: string; label: string };

/** Opens a verified, authenticated SFTP session, or fails with a one-line StorageError. */
export async function connectSftp(p: SftpConnectParams): Promise<{ session: SftpSession; hostKey: Buffer }> {
  const name = hostKeyName(p.host, p.port);
  const server = `${p.host}:${p.port}`;
  const entries = p.pinnedKey ? [] : await loadKnownHosts(p.hostKeys.files);

  // Host key check. The verdict is kept so a refused key gives our message, not ssh2's.
  let refusal: StorageError | undefined;
  let seenKey: Buffer | undefined;
  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    seenKey = Buffer.from(key);
    const judged = p.pinnedKey ? judgePinned(p.pinnedKey, key, p.where, name) : judge(entries, key, p, name);
    if (judged instanceof StorageError) {
      refusal = judged;
      verify(false);
    } else if (judged === 'add') {
      const file = p.hostKeys.files[0]!;
      addKnownHost(file, name, key).then(
        () => verify(true),
        (err: unknown) => {
          refusal = new StorageError(`${p.where}: cannot record the host key in ${file}: ${(err as Error).message}`, true);
          verify(false);
        },
      );
    } else {
      verify(true);
    }
  };

  // Authentication: our own order, remembering what was tried for the message.
  const steps: AuthStep[] = [];
  if (p.auth.key) steps.push({ type: 'publickey', serverName: 'publickey', label: `key ${p.auth.key.file}` });
  if (p.auth.agent) steps.push({ type: 'agent', serverName: 'publickey', label: `ssh-agent (${SFTP_ENV.agent})` });
  if (p.auth.password !== undefined) steps.push({ type: 'password', serverName: 'password', label: `password (${SFTP_ENV.password})` });
  const tried: string[] = [];
  const notOffered: string[] = [];
  let serverMethods: string[] | undefined;
  let exhausted = false;
  let next = 0;
  const authHandler = (left: AuthenticationType[] | null, _partial: boolean | null, callback: NextAuthHandler): void => {
    if (left) serverMethods = left;
    while (next < steps.length) {
      const step = steps[next++]!;
      if (left && !left.includes(step.serverName as AuthenticationType)) {
        notOffered.push(step.label);
        continue;
      }
      tried.push(step.label);
      callback(step.type);
      return;
    }
    exhausted = true;
    callback(false as unknown as AuthenticationType); // ssh2: false = no more methods
  };

  let lost: ((reason: string) => void) | undefined;
  const client = new SftpClient('zfs-offsite', {
    error: () => lost?.('connection error'),
    end: () => lost?.('connection ended'),
    close: () => lost?.('connection closed'),
  });
  const config: ConnectConfig = {
    host: p.host,
    port: p.port,
    username: p.user,
    readyTimeout: p.readyTimeoutMs ?? 20_000,
    // A dead peer is noticed within ~45 s instead of hanging on TCP for hours.
    keepaliveInterval: 15_000,
    keepaliveCountMax: 3,
    hostVerifier,
    algorithms: { serverHostKey: preferredHostKeyAlgorithms(entries, name) as never },
    authHandler: authHandler as unknown as ConnectConfig['authHandler'],
    ...(p.auth.key ? { privateKey: p.auth.key.data, ...(p.auth.key.passphrase ? { passphrase: p.auth.key.passphrase } : {}) } : {}),
    ...(p.auth.agent ? { agent: p.auth.agent } : {}),
    ...(p.auth.password !== undefined ? { password: p.auth.password } : {}),
  };
  let sftp: SFTPWrapper;
  try {
    sftp = await client.connect(config);
  } catch (err) {
    await client.end().catch(() => undefined);
    if (refusal) throw refusal;
    const failure = ssh2ConnectFailure(err);
    if (failure?.kind === 'key-unusable') {
      const hint = failure.passphrase ? `; set the key's passphrase in ${SFTP_ENV.passphrase}` : '';
      throw new StorageError(`${p.where}: cannot use the SSH key ${p.auth.key?.file ?? ''}: ${failure.why}${hint}`, true, 'credentials');
    }
    if (exhausted || (tried.length > 0 && failure?.kind === 'auth-rejected')) {
      const parts = [...tried.map((t) => `${t} rejected`), ...notOffered.map((t) => `${t} not accepted by the server`)];
      const accepts = serverMethods?.length ? `; the server accepts: ${serverMethods.join(', ')}` : '';
      throw new StorageError(`${p.where}: SSH authentication failed for user ${p.user} at ${server}: ${parts.join(', ') || 'no method to try'}${accepts}`, true, 'credentials');
    }
    throw sftpConnectError(err, p.where, server);
  }
  const session = new SftpSession(client, sftp, server);
  lost = (reason) => session.die(reason);
  return { session, hostKey: seenKey ?? Buffer.alloc(0) };
}

/** 'ok', 'add' (unknown and accept-new) or the refusal. */
function judge(entries: KnownHostEntry[], key: Buffer, p: SftpConnectParams, name: string): 'ok' | 'add' | StorageError {
  const verdict = verifyHostKey(entries, name, key);
  const shown = `${keyBlobType(key)} ${fingerprint(key)}`;
  const files = p.hostKeys.files;
  switch (verdict.status) {
    case 'trusted':
      return 'ok';
    case 'unknown':
      if (p.hostKeys.acceptNew) return 'add';
      return new StorageError(
        `${p.where}: unknown SSH host key for ${name}: ${shown} (not in ${files.join(' or ')}); if the fingerprint is the server's, run again with --sftp-accept-new to record it in ${files[0]}`,
        true,
      );
    case 'revoked':
      return new StorageError(`${p.where}: the SSH host key of ${name} (${shown}) is marked @revoked in ${verdict.entry.file}:${verdict.entry.line}; refusing to connect`, true);
    case 'changed': {
      const first = verdict.known[0]!;
      return new StorageError(
        `${p.where}: the SSH host key of ${name} has CHANGED: the server shows ${shown}, but ${first.file}:${first.line} has ${first.keyType} ${fingerprint(first.key)} — possibly a man-in-the-middle attack; if the server was really re-keyed, remove the old key (ssh-keygen -R '${name}' -f ${first.file}) and run again with --sftp-accept-new`,
        true,
      );
    }
  }
}

function judgePinned(pinned: Buffer, key: Buffer, where: string, name: string): 'ok' | StorageError {
  if (pinned.equals(key)) return 'ok';
  return new StorageError(`${where}: the SSH host key of ${name} CHANGED during this run (was ${fingerprint(pinned)}, now ${keyBlobType(key)} ${fingerprint(key)}); refusing to connect`, true);
}
