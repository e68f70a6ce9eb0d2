import { StorageError } from './backend.js';
import { connectSftp, type SftpConnectParams, type SftpSession } from './sftp-connect.js';

/**
 * A small pool of SFTP sessions (SSH connections), each carrying many requests at once.
 *
 * - An operation gets the least busy session; while every session is busy and the pool is not
 *   full, one more connection is opened in the background (never several at once).
 * - The FIRST connection is made alone, and operations wait for it: the host key is checked
 *   (and, with accept-new, recorded) exactly once, and a refusal or bad credentials fail the
 *   waiting operations with that one error instead of a burst of identical log-in attempts.
 *   Every later connection must present the same host key.
 * - A refused extra connection (e.g. a provider's per-account connection limit) caps the pool
 *   at the sessions that work. A dead session is dropped; the next operation reconnects.
 */
export class SftpPool {
  private live: SftpSession[] = [];
  private opening: Promise<SftpSession> | undefined;
  private pinnedKey: Buffer | undefined;
  private closed = false;
  private max: number;

  constructor(
    private readonly params: Omit<SftpConnectParams, 'pinnedKey'>,
    maxSessions: number,
  ) {
    this.max = Math.max(1, maxSessions);
  }

  /** The open sessions (tests and diagnostics). */
  get sessions(): readonly SftpSession[] {
    return this.live;
  }

  async acquire(): Promise<SftpSession> {
    for (;;) {
      if (this.closed) throw new StorageError(`${this.params.where}: the backend is closed`, true);
      this.live = this.live.filter((s) => !s.dead);
      let best: SftpSession | undefined;
      for (const s of this.live) if (!best || s.active < best.active) best = s;
      const wantMore = !best || (best.active > 0 && this.live.length < this.max);
      if (wantMore && !this.opening) {
        const opening = this.open();
        this.opening = opening;
        opening.then(
          () => (this.opening = undefined),
          () => (this.opening = undefined),
        );
      }
      if (!best) {
        await this.opening; // no session yet: this connection's failure is the operation's failure
        continue;
      }
      best.active++;
      return best;
    }
  }

  release(s: SftpSession): void {
    s.active--;
  }

  async use<T>(fn: (s: SftpSession) => Promise<T>): Promise<T> {
    const s = await this.acquire();
    try {
      return await fn(s);
    } finally {
      this.release(s);
    }
  }

  private async open(): Promise<SftpSession> {
    let opened;
    try {
      opened = await connectSftp({ ...this.params, ...(this.pinnedKey ? { pinnedKey: this.pinnedKey } : {}) });
    } catch (err) {
      if (this.live.length > 0) this.max = this.live.length; // an extra connection refused: cap the pool
      throw err;
    }
    const { session, hostKey } = opened;
    this.pinnedKey ??= hostKey;
    if (this.closed) {
      await session.end();
      throw new StorageError(`${this.params.where}: the backend is closed`, true);
    }
    this.live.push(session);
    return session;
  }

  async close(beforeEnd?: (s: SftpSession) => Promise<void>): Promise<void> {
    this.closed = true;
    await this.opening?.catch(() => undefined);
    const first = this.live.find((s) => !s.dead);
    if (first && beforeEnd) await beforeEnd(first).catch(() => undefined);
    await Promise.all(this.live.map((s) => s.end()));
    this.live = [];
  }

  /** Tests only: cut every connection, as a network failure would. */
  killForTests(): void {
    for (const s of this.live) s.destroyForTests();
  }
}
