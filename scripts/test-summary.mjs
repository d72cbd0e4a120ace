// Adds up the vitest JSON reports the packages wrote into NEXUS_TEST_REPORT_DIR (a directory under the OS
// temp dir that the root `npm test` creates), prints one closing line: "N passed, N failed", and removes
// the directory.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.NEXUS_TEST_REPORT_DIR;
if (dir === undefined || dir === '') throw new Error('NEXUS_TEST_REPORT_DIR is not set (run `npm test`)');

let passed = 0;
let failed = 0;
let skipped = 0;
for (const name of existsSync(dir) ? readdirSync(dir) : []) {
  if (!name.endsWith('.json')) continue;
  const report = JSON.parse(readFileSync(join(dir, name), 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
rmSync(dir, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
