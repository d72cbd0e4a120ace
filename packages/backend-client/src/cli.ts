#!/usr/bin/env node
import { debugRequested, describeFailure } from './cli-errors.js';
import { runCli } from './cli-main.js';

runCli(process.argv).catch((err: unknown) => {
  process.stderr.write(`${describeFailure('nexus-backend', err, debugRequested(process.argv))}\n`);
  process.exitCode = 1;
});
