/**
 * The vitest settings every package shares (each package's vitest.config.ts re-exports or extends them).
 * The root `npm test` sets NEXUS_TEST_REPORT_DIR to a fresh directory under the OS temp dir; each package
 * then writes a JSON report there, named after the package folder, which scripts/test-summary.mjs adds
 * up. Tests never write into the working tree.
 */
import { basename, join } from 'node:path';
import { defineConfig } from 'vitest/config';

const reportDir = process.env.NEXUS_TEST_REPORT_DIR;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters:
      reportDir === undefined || reportDir === ''
        ? ['default']
        : ['default', ['json', { outputFile: join(reportDir, `${basename(process.cwd())}.json`) }]],
  },
});
