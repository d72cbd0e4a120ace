import { tuneHeapForRelaying } from '@nexus-proxy/common/relay-heap';

// `serve` runs a node, a process dedicated to relaying: its heap is tuned for that first, before the
// command's modules are loaded (docs/benchmarks.md, "The node's heap and garbage collection").
if (process.argv.slice(2).find((arg) => !arg.startsWith('-')) === 'serve') tuneHeapForRelaying();

const { runCli } = await import('./program.js');
void runCli();
