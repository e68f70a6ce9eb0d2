import { S3Client } from '@aws-sdk/client-s3';
import { settingDefault } from '../settings/values.js';
import type { S3BackendOptions } from './s3.js';

/**
 * The SDK client of one S3 backend (s3.ts), with the settings every request relies on and
 * why: no aws-chunked bodies, no `Expect: 100-continue`, idle timeouts, no console output.
 */
export function createS3Client(options: S3BackendOptions & { idleTimeoutMs?: number; profile?: string }): S3Client {
  // The SDK warns on every run under Node 20 that *future* SDK releases will need Node 22.
  // This build supports Node 20 (package.json engines) and such noise on stderr breaks cron
  // mails and `--json` consumers, so it is silenced unless the user set the variable.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    ...(options.profile !== undefined ? { profile: options.profile } : {}),
    region: options.region ?? memoize(defaultRegion),
    forcePathStyle: options.forcePathStyle ?? false,
    maxAttempts: 2,
    // The SDK default sends stream bodies as aws-chunked with a CRC32 trailer; Ceph RGW
    // answers 411, Backblaze B2 rejects it, s3rver stores garbage. Integrity is checked by
    // our own SHA-256s anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Without this the SDK adds `Expect: 100-continue` to every request with a body, and for
    // such requests it uses a throw-away agent that sends `Connection: close`
    // (@smithy/node-http-handler): every chunk PUT then opened a new connection and waited a
    // round trip for the 100 before sending a byte. Our PUTs are signed with the body's
    // SHA-256, so a refused request costs at most one chunk's bytes, not a wrong object.
    expectContinueHeader: false,
    // Without a logger of its own the SDK writes some warnings to the console (a failed
    // streamed PutObject: "An error was encountered in a non-retryable streaming request.")
    // around our one-line errors; our retrying wrapper (retrying.ts) reports what matters.
    logger: SILENT,
    requestHandler: {
      connectionTimeout: 10_000,
      // Idle timeout: a dead or stalled connection fails (and is retried) instead of hanging.
      // Bodies are Buffers, or pieces made as the socket takes them: no caller pauses one on purpose.
      socketTimeout: options.idleTimeoutMs ?? (settingDefault('s3Timeout') as number),
    },
  });
}

/** The region the SDK would find (AWS_REGION, profile), or us-east-1 when none is configured. */
async function defaultRegion(): Promise<string> {
  const probe = new S3Client({});
  try {
    return await probe.config.region();
  } catch {
    return 'us-east-1';
  } finally {
    probe.destroy();
  }
}

const noop = (): void => undefined;
const SILENT = { trace: noop, debug: noop, info: noop, warn: noop, error: noop };

function memoize<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= fn());
}
