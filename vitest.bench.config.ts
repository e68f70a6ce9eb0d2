import { defineConfig } from 'vitest/config';

/** `npm run bench`: measurements printed as tables; nothing here asserts a speed. */
export default defineConfig({
  test: {
    // The AWS SDK warns on Node 20 that *future* releases need Node 22 (see src/storage/s3.ts).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['bench/**/*.bench.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
