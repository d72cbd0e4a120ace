#!/usr/bin/env node
import { tuneHeapForRelaying } from './relay-heap.js';

// First, before the command's modules are loaded: the young generation must not have grown yet.
tuneHeapForRelaying();

import('./cli-main.js')
  .then(({ runCli }) => runCli(process.argv))
  .catch(async (err: unknown) => {
    const { debugRequested, describeFailure } = await import('./cli-errors.js');
    process.stderr.write(`${describeFailure('nexus-backend', err, debugRequested(process.argv))}\n`);
    process.exitCode = 1;
  });
