import { defineConfig } from 'vitest/config';

/** `npm run bench`: measurements printed as tables; nothing here asserts a speed. */
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
