#!/usr/bin/env node
// The `nexus-backend` bin: committed, so npm links it at install time, before `dist/` is built. It loads the
// built CLI, or says in one line how to build it.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (existsSync(cli)) {
  await import(cli.href);
} else {
  process.stderr.write('nexus-backend: dist/cli.js is missing: run npm run build first\n');
  process.exitCode = 1;
}
