import { defineConfig } from 'vitest/config';

/** `npm run test:zfs`: scenarios on real OpenZFS in the test VM, one file at a time (one VM). */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
