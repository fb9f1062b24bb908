import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // integration files each get their own database cloned from a migrated template; two cores, so keep it modest
    maxWorkers: 3,
    reporters: ['default'],
  },
});
