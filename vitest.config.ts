import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30000,
    hookTimeout: 60000,
    // 2-core machines: a few files at a time keeps timing-sensitive socket tests honest.
    maxWorkers: 2,
  },
});
