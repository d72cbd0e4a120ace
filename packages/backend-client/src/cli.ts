#!/usr/bin/env node
import { runCli } from './cli-main.js';

runCli(process.argv).catch((err: unknown) => {
  process.stderr.write(`nexus-backend: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
