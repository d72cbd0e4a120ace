// Adds up the vitest JSON reports the packages wrote into NEXUS_TEST_REPORT_DIR (a directory under the OS
// temp dir that the root `npm test` creates), names every failed test with the start of its failure
// message (so the end of a CI log says what failed), prints one closing line: "N passed, N failed", and
// removes the directory.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.NEXUS_TEST_REPORT_DIR;
if (dir === undefined || dir === '') throw new Error('NEXUS_TEST_REPORT_DIR is not set (run `npm test`)');

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const name of existsSync(dir) ? readdirSync(dir) : []) {
  if (!name.endsWith('.json')) continue;
  const report = JSON.parse(readFileSync(join(dir, name), 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  for (const file of report.testResults ?? []) {
    const tests = file.assertionResults ?? [];
    for (const test of tests) {
      if (test.status !== 'failed') continue;
      const message = (test.failureMessages ?? []).join('\n').split('\n').slice(0, 12).join('\n');
      failures.push(`FAILED ${name.replace(/\.json$/, '')}: ${file.name} > ${test.fullName}\n${message}`);
    }
    // A file that failed to load or whose hooks failed has no failed test of its own.
    if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
      failures.push(
        `FAILED ${name.replace(/\.json$/, '')}: ${file.name}\n${String(file.message ?? '').slice(0, 1500)}`,
      );
    }
  }
}
for (const failure of failures) console.log(`${failure}\n`);
rmSync(dir, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
