import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The root `npm test` asks for a JSON report, which scripts/test-summary.mjs adds up.
    reporters: process.env.NEXUS_TEST_REPORT
      ? ['default', ['json', { outputFile: '.vitest-report.json' }]]
      : ['default'],
  },
});
