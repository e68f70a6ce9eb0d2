/**
 * `npm run bench` (issue 17): the cost of put / list / quick verify / restore plan as an archive's
 * history grows, on synthetic archives (thousands of streams, many datasets) written straight into
 * the RGW, timed through the shaping proxy. Asserts nothing about speed: every command must only
 * succeed (verify finds no problem in the synthetic archive). Knobs: bench/README.md (BENCH_SCALE_*;
 * BENCH_SCALE=0 skips it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { runScale, scaleConfigFromEnv } from './support/scale.js';
import { openS3 } from './support/servers.js';
import { startProxyProcess } from './support/wan.js';

const config = scaleConfigFromEnv();

describe.skipIf(process.env.BENCH_SCALE === '0')('archive scale', () => {
  it(`put, list, verify, restore plan: chains of ${config.chains.join(', ')}; ${config.many.map(([d, n]) => `${d}×${n}`).join(', ')}`, { timeout: 6 * 3_600_000 }, async () => {
    const s3 = await openS3('memstore', 1);
    const proxy = config.link === 'wan' ? await startProxyProcess(s3.settings.endpoint, config.wan, config.dir) : undefined;
    try {
      const markdown = await runScale(config, s3, proxy);
      mkdirSync(config.dir, { recursive: true });
      const path = join(config.dir, `scale-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
      writeFileSync(path, `${markdown}\n`);
      writeFileSync(join(config.dir, 'scale-latest.md'), `${markdown}\n`);
      console.log(`${markdown}\n\n(written to ${path})`);
    } finally {
      await proxy?.close();
      await s3.close();
    }
  });
});
