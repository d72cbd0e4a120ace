#!/usr/bin/env node
// `npm run demo`: builds without a word (turbo's output is shown only when the build fails), then runs
// `nexus-proxy serve --demo`, whose banner and log lines are all the demo prints. Extra arguments go to
// `serve` (`npm run demo -- --log-format json`).
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const build = spawnSync('npx', ['--no-install', 'turbo', 'run', 'build', '--output-logs=errors-only'], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'],
});
if (build.status !== 0) {
  process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}${build.error?.message ?? ''}\n`);
  process.stderr.write('demo: the build failed (above)\n');
  process.exit(build.status ?? 1);
}
const cli = fileURLToPath(new URL('../packages/cli/dist/cli.js', import.meta.url));
const child = spawn(process.execPath, [cli, 'serve', '--demo', ...process.argv.slice(2)], {
  stdio: 'inherit',
});
// Ctrl-C reaches the whole process group, the node included; a signal sent to this process alone is
// passed on. Either way the node drains and this process exits with its code.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (signal !== 'SIGINT') child.kill(signal);
  });
}
child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
