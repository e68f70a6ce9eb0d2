import { defineConfig } from 'vitest/config';

/** `npm run test:zfs`: scenarios on real OpenZFS in the test VM, one file at a time (one VM). */
export default defineConfig({
  test: {
    // The AWS SDK warns on Node 20 that *future* releases need Node 22 (see src/storage/s3.ts).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
