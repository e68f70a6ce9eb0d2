import { spawn } from 'node:child_process';
import type { HealthcheckUrls } from '../config/config.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/**
 * How `run` tells the world (docs/config.md, "healthcheck_url", "on_failure, on_success"): pings
 * of a dead man's switch (healthchecks.io: `URL/start`, `URL`, `URL/fail`; Uptime Kuma's push
 * URL; anything that takes a GET) and the hook commands. Neither ever changes the result of the
 * run: a ping that fails or times out, or a hook that fails, is a warning in the log.
 */

/** A ping gives up after this long: a monitoring service that hangs must not hold the nightly job. */
export const PING_TIMEOUT_MS = 10_000;

/**
 * A ping URL as a message shows it: scheme, host and port only. The path or query of a
 * healthchecks.io or Uptime Kuma URL is its token: whoever holds it can ping the check.
 */
export function pingLabel(url: string): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return 'the healthcheck URL';
  }
}

export type PingEvent = 'start' | 'success' | 'failure';

/**
 * One ping (a GET), at most PING_TIMEOUT_MS; any failure — refused, timed out, a status other
 * than 2xx — is logged as a warning, never thrown. `timeoutMs` is for tests.
 */
export async function ping(urls: HealthcheckUrls | undefined, event: PingEvent, log: Logger, timeoutMs = PING_TIMEOUT_MS): Promise<void> {
  const url = urls?.[event];
  if (url === undefined) return;
  try {
    const response = await fetch(url, { method: 'GET', redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
    // The body is not needed; reading it frees the connection.
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) log.warn(`healthcheck ping (${event}) to ${pingLabel(url)} failed: HTTP ${response.status}; the run goes on`);
  } catch (err) {
    const why = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? `no answer within ${timeoutMs / 1000} s` : pingError(err);
    log.warn(`healthcheck ping (${event}) to ${pingLabel(url)} failed: ${why}; the run goes on`);
  }
}

/** fetch's "fetch failed" says nothing: its cause (ECONNREFUSED, ENOTFOUND…) does. Never the URL. */
function pingError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  return cause?.code ?? cause?.message ?? errorMessage(err).replace(/\S+:\/\/\S+/g, '…');
}

/** A hook command (on_failure, on_success) with extra environment; stopped after 5 minutes; its failure is logged. */
export async function runHook(name: string, argv: readonly string[], env: Record<string, string>, log: Logger, dataset: string): Promise<void> {
  const [cmd, ...args] = argv;
  await new Promise<void>((resolve) => {
    const child = spawn(cmd!, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGTERM'), 5 * 60_000);
    child.on('error', (err) => log.error({ dataset, err: err.message }, `${name} could not be run`));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) log.error({ dataset, code }, `${name} exited with an error`);
      resolve();
    });
  });
}
