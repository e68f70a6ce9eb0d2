import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-ZFS scenarios need the VM: `npm run test:zfs` (vitest.e2e.config.ts).
    exclude: ['test/e2e/**', '**/node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: more workers than that only make the servers and zstd workers fight.
    maxWorkers: 2,
  },
});
