import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // a deadline is for a hang, not for a busy machine: integration tests spawn processes and meet in Postgres,
    // and on two loaded cores that can take minutes (nothing here asserts speed; `npm run bench` measures it)
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // integration files each get their own database cloned from a migrated template; two cores, so keep it modest
    maxWorkers: 3,
    reporters: ['default'],
  },
});
