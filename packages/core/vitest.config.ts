import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.js';

// Core's own tests see core from source, also through @nexus-proxy/test-harness (which imports the
// package): one copy of every module, so a test and the harness share classes and state.
export default mergeConfig(shared, {
  resolve: {
    alias: [
      {
        find: /^@nexus-proxy\/core$/,
        replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)),
      },
    ],
  },
});
