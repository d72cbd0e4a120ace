import { defineConfig } from 'tsup';

// One entry per block that can be used alone (package.json "exports"), plus the test fault proxy. Code
// splitting, for CommonJS too, keeps one copy of every module however many entries a program loads, and
// an entry's chunks hold only what that block imports.
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    routing: 'src/entries/routing.ts',
    hub: 'src/entries/hub.ts',
    mesh: 'src/entries/mesh.ts',
    'testing/index': 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
