/**
 * `npm run bench`: our `put` and `restore --output` to/from a local directory, Ceph RGW and SFTP,
 * next to the shell-pipeline peers (zstd, rclone, aws) and raw lib-storage ingest, on the same
 * generated streams and the same servers in one run (issue 9). Prints a markdown table and writes
 * it to BENCH_DIR (default /tmp/zfs-offsite-bench); asserts nothing about speed, only that every
 * restore is byte-identical. Knobs: bench/README.md (BENCH_SIZES=1,8 for the full run).
 */
import { describe, it } from 'vitest';
import { configFromEnv, runBench, timeoutMs } from './support/run.js';

const config = configFromEnv();

describe('throughput against the peers', () => {
  it(`put and restore, ${config.sizes.join(', ')} GiB`, { timeout: timeoutMs(config) }, async () => {
    const { markdown, path } = await runBench(config);
    console.log(`${markdown}\n\n(written to ${path})`);
  });
});
