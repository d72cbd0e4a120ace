#!/usr/bin/env node
// Builds `nexus-proxy` and `nexus-backend` as Node single executable applications (one file each, Node
// included) for this machine's platform and architecture, then smoke-tests them: `--version`, and a short
// real run (a node, a backend attached to it, one HTTP request relayed to a local service).
//
//   npm run build:sea                      # = npm run build && node scripts/build-sea.mjs
//   node scripts/build-sea.mjs --out DIR   # default: dist-sea/<platform>-<arch>
//   node scripts/build-sea.mjs --no-smoke
//   node scripts/build-sea.mjs --node ./node-arm64/bin/node --out dist-sea/linux-arm64 --no-smoke
//
// Steps per CLI (docs/releasing.md): bundle the built CLI (dist/cli.js) into one CommonJS file with
// esbuild (a SEA's main script can require only Node's built-in modules), write a SEA blob with
// `node --experimental-sea-config`, copy the running `node` binary and inject the blob with postject.
// The binary runs on machines of the same platform and architecture as the `node` that built it.
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const CLIS = [
  { name: 'nexus-proxy', dir: 'packages/cli' },
  { name: 'nexus-backend', dir: 'packages/backend-client' },
];

const args = process.argv.slice(2);
const outArg = args.indexOf('--out');
const out = resolve(
  outArg >= 0 ? args[outArg + 1] : join(ROOT, 'dist-sea', `${process.platform}-${process.arch}`),
);
const smoke = !args.includes('--no-smoke');
// Another node binary to build from (cross-building: the same Node version for another architecture).
const nodeArg = args.indexOf('--node');
const nodeBinary = nodeArg >= 0 ? resolve(args[nodeArg + 1]) : process.execPath;
if (nodeArg >= 0 && (outArg < 0 || smoke)) {
  console.error('build-sea: --node needs --out DIR and --no-smoke (the executables may not run here)');
  process.exit(2);
}

const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

/** An esbuild plugin: `names` resolve to a module that throws when loaded, as a missing package would. */
function absentModules(names) {
  const filter = new RegExp(`^(${names.join('|')})$`);
  return {
    name: 'absent-modules',
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'absent' }));
      b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`${args.path} is not part of the single executable`)});`,
        loader: 'js',
      }));
    },
  };
}

async function buildOne({ name, dir }) {
  const started = performance.now();
  const entry = join(ROOT, dir, 'dist', 'cli.js');
  statSync(entry); // run `npm run build` first
  const work = join(out, `${name}.build`);
  mkdirSync(work, { recursive: true });
  const bundle = join(work, `${name}.cjs`);
  await build({
    entryPoints: [entry],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // ws's optional native helpers become modules that throw: ws falls back to JavaScript, and the
    // executable never calls a require() it cannot serve (Node warns about each).
    plugins: [absentModules(['bufferutil', 'utf-8-validate'])],
    // The ESM sources read import.meta.url; in the CommonJS bundle it is the executable's own file.
    define: { 'import.meta.url': '__nexusImportMetaUrl' },
    banner: { js: 'var __nexusImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
    logLevel: 'error',
    legalComments: 'none',
  });
  const blob = join(work, 'sea-prep.blob');
  const config = join(work, 'sea-config.json');
  writeFileSync(config, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
  const made = spawnSync(process.execPath, ['--experimental-sea-config', config], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`${name}: writing the SEA blob failed: ${made.stderr}`);
  const binary = join(out, name);
  rmSync(binary, { force: true });
  copyFileSync(nodeBinary, binary);
  chmodSync(binary, 0o755);
  await inject(binary, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
  rmSync(work, { recursive: true, force: true });
  const mib = (statSync(binary).size / 2 ** 20).toFixed(0);
  console.log(`built ${binary} (${mib} MiB) in ${seconds(started)}`);
  return binary;
}

function version(dir) {
  return JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')).version;
}

/** Starts `binary args`; resolves with the child once `pattern` appears on stdout, with its match. */
function start(binary, argv, pattern, env = {}) {
  const child = spawn(binary, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${binary}: no ${pattern} within 20 s\n${stdout}\n${stderr}`)),
      20_000,
    );
    child.stdout.on('data', (c) => {
      stdout += c;
      const match = pattern.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolveStart({ child, match, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited (${code}) before ${pattern}\n${stdout}\n${stderr}`));
    });
  });
}

function get(port, host) {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolveGet({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function stop(child) {
  return new Promise((resolveStop) => {
    if (child.exitCode !== null) return resolveStop(child.exitCode);
    child.once('exit', (code) => resolveStop(code));
    child.kill('SIGTERM');
  });
}

/** Polls `check` every 200 ms until it resolves truthy, for at most `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} within ${ms} ms${last ? `: ${last.message}` : ''}`);
}

async function smokeTest(binaries) {
  const started = performance.now();
  for (const { name, dir } of CLIS) {
    const result = spawnSync(binaries[name], ['--version'], { encoding: 'utf8' });
    if (result.status !== 0 || result.stdout.trim() !== version(dir)) {
      throw new Error(
        `${name} --version: status ${result.status}, ${JSON.stringify(result.stdout)} ${result.stderr}`,
      );
    }
    console.log(`${name} --version: ${result.stdout.trim()}`);
  }
  const state = mkdtempSync(join(tmpdir(), 'nexus-sea-'));
  const body = 'hello from the service behind the SEA backend\n';
  const service = createServer((_req, res) => res.end(body));
  await new Promise((r) => service.listen(0, '127.0.0.1', r));
  const children = [];
  try {
    // A node on the embedded default with free ports: it prints its ports and a token for app.localhost.
    // Readable logs, as on a terminal: pino-pretty must run inside the executable (no worker thread).
    const node = await start(
      binaries['nexus-proxy'],
      [
        'serve',
        '--state-dir',
        state,
        '--tls-port',
        '0',
        '--http-port',
        '0',
        '--hub-port',
        '0',
        '--log-format',
        'pretty',
      ],
      /HTTP relay 127\.0\.0\.1:(\d+), hub (wss:\S+)\.\n[\s\S]*?\n {2}([\w-]+\.[\w-]+\.[\w-]+)\n/,
    );
    children.push(node.child);
    const [, httpPort, hubUrl, token] = node.match;
    const backend = spawn(
      binaries['nexus-backend'],
      [
        '--node',
        hubUrl,
        '--ca',
        join(state, 'hub-cert.pem'),
        '--token',
        token,
        '--map',
        `${httpPort}=127.0.0.1:${service.address().port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let backendLog = '';
    backend.stderr.on('data', (c) => {
      backendLog += c;
    });
    children.push(backend);
    await until(
      async () => {
        const res = await get(Number(httpPort), 'app.localhost');
        return res.status === 200 && res.body === body;
      },
      20_000,
      `no answer from the service through nexus-proxy and nexus-backend\n${node.stderr()}\n${backendLog}`,
    );
    console.log('relayed an HTTP request: end user → nexus-proxy → nexus-backend → local service');
    if (!/^\[[\d:.]+\] INFO: nexus listening /m.test(node.stderr()) || /Warning/.test(node.stderr())) {
      throw new Error(
        `nexus-proxy --log-format pretty: no readable log line, or a warning:\n${node.stderr()}`,
      );
    }
    console.log('logged readable lines (--log-format pretty)');
    for (const child of children.splice(0).reverse()) {
      const code = await stop(child);
      if (code !== 0) throw new Error(`exit code ${code} after SIGTERM`);
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    service.close();
    rmSync(state, { recursive: true, force: true });
  }
  console.log(`smoke run passed in ${seconds(started)}`);
}

const started = performance.now();
mkdirSync(out, { recursive: true });
const binaries = {};
for (const cli of CLIS) binaries[cli.name] = await buildOne(cli);
if (smoke) await smokeTest(binaries);
console.log(`done in ${seconds(started)}`);
