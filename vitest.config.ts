import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // a deadline is for a hang, not for a busy machine: integration tests spawn processes and meet in Postgres,
    // and on two loaded cores that can take minutes (nothing here asserts speed; `npm run bench` measures it)
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // waits inside tests give up well before that (test/support/wait.ts); expect.poll's default would be 1 s
    expect: { poll: { timeout: 240_000 } },
    // kills the child processes a file started, after its own afterAll (test/support/children.ts)
    setupFiles: ['test/support/kill-children.ts'],
    // integration files each get their own database cloned from a migrated template; two cores, so keep it modest
    maxWorkers: 3,
    reporters: ['default'],
  },
});
