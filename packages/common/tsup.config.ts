import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', config: 'src/config.ts', 'relay-heap': 'src/relay-heap.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
