import type { S3Provider } from '../../src/storage/s3-quirks.js';
import { RGW_HINT, type RgwSettings, rgwSettings } from './rgw.js';
import { SWIFT_HINT, swiftSettings } from './swift.js';

/** One of the real S3 implementations the suite runs against. */
export interface S3TestServer {
  /** As test names show it: "Ceph RGW", "Swift s3api". */
  name: string;
  /** Undefined when the server is not running (its tests are then skipped, saying so). */
  settings: RgwSettings | undefined;
  /** How to start it. */
  hint: string;
  /** Its row in src/storage/s3-quirks.ts. */
  provider: S3Provider;
}

/**
 * Ceph RGW and OpenStack Swift with s3api, both started by `npm test` (scripts/test.sh). A server
 * that is not running is reported here, once, and its tests are skipped; under CI (the scripts
 * set CI) a missing server is an error.
 */
export function s3TestServers(): S3TestServer[] {
  const servers = [
    { name: 'Ceph RGW', settings: rgwSettings(), hint: RGW_HINT, provider: 'ceph' as const },
    { name: 'Swift s3api', settings: swiftSettings(), hint: SWIFT_HINT, provider: 'swift' as const },
  ];
  for (const s of servers) {
    if (s.settings) continue;
    if (process.env.CI) throw new Error(`CI must test S3 on ${s.name}, but it is not running: ${s.hint}`);
    console.warn(`S3 tests on ${s.name} skipped: it is not running; ${s.hint}`);
  }
  return servers;
}
