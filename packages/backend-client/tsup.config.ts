import { defineConfig } from 'tsup';

export default defineConfig({
  // cli.ts starts with a shebang, which esbuild keeps; the `nexus-backend` bin (bin/nexus-backend.js) loads dist/cli.js.
  entry: ['src/index.ts', 'src/cli.ts', 'src/cli-support.ts', 'src/relay-heap.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The CLI's logger and its readable form; dependencies of the package (never bundled).
  external: ['pino', 'pino-pretty'],
});
