import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The AWS SDK warns on Node 20 that *future* releases need Node 22 (see src/storage/s3.ts).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/**/*.test.ts'],
    // Real-ZFS scenarios need the VM: `npm run test:zfs` (vitest.e2e.config.ts).
    exclude: ['test/e2e/**', '**/node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: more workers than that only make the servers and zstd workers fight.
    maxWorkers: 2,
  },
});
