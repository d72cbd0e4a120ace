/**
 * What the live interoperability scripts (`scripts/interop-go*.mjs`, docs/compatibility.md) share: a work
 * directory for configs and logs, child processes that log there, a PASS/FAIL/SKIP record and its table,
 * and small waits on loopback.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A port free on 127.0.0.1 a moment ago (TCP). */
export async function freePort() {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Whether `port` can be bound on `host` right now. */
export function isPortFree(port, host) {
  return new Promise((done) => {
    const server = createNetServer();
    server.once('error', () => done(false));
    server.listen(port, host, () => server.close(() => done(true)));
  });
}

/** Resolves once something accepts TCP on host:port; throws after `timeoutMs`. */
export async function waitForTcp(port, timeoutMs, host = '127.0.0.1') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((done) => {
      const s = netConnect(port, host);
      s.once('connect', () => {
        s.destroy();
        done(true);
      });
      s.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Calls `fn` every 500 ms until it resolves; rethrows its last error after `timeoutMs`. */
export async function retryUntil(fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A work directory, the child processes logging into it, and the checks' outcomes. */
export function createHarness(prefix) {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const results = [];
  const children = [];
  let failed = false;

  function record(half, check, status, detail = '') {
    results.push({ half, check, status, detail });
    if (status === 'FAIL') failed = true;
    console.log(`${status.padEnd(4)} ${half} · ${check}${detail ? ` — ${detail}` : ''}`);
  }

  /** Runs one check: PASS with what `fn` returns (or its duration), FAIL with its error. */
  async function check(half, name, fn) {
    const started = Date.now();
    try {
      const detail = await fn();
      record(half, name, 'PASS', detail ?? `${Date.now() - started} ms`);
      return true;
    } catch (err) {
      record(half, name, 'FAIL', err instanceof Error ? err.message : String(err));
      return false;
    }
  }

  /** Spawns a child whose stdout and stderr go to `<work>/<name>.log` (its `logFile`). */
  function run(name, command, args, env = {}) {
    const log = join(work, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    child.logFile = log;
    children.push(child);
    return child;
  }

  async function stop(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  async function stopAll() {
    for (const child of children) await stop(child);
  }

  /** Prints the table; exits 1 (keeping the work directory) if anything failed. */
  function report() {
    const rows = [
      ['half', 'check', 'result', 'detail'],
      ...results.map((r) => [r.half, r.check, r.status, r.detail]),
    ];
    const widths = rows[0].map((_, i) => Math.min(60, Math.max(...rows.map((r) => r[i].length))));
    console.log('');
    for (const [i, row] of rows.entries()) {
      console.log(`| ${row.map((cell, j) => (j === 3 ? cell : cell.padEnd(widths[j]))).join(' | ')} |`);
      if (i === 0) console.log(`| ${widths.map((w, j) => '-'.repeat(j === 3 ? 6 : w)).join(' | ')} |`);
    }
    if (failed) {
      console.log(`\nFAILED. Process logs and configs: ${work}`);
      process.exit(1);
    }
    if (process.env.NEXUS_INTEROP_KEEP) console.log(`\nall checks passed (logs kept in ${work})`);
    else {
      rmSync(work, { recursive: true, force: true });
      console.log('\nall checks passed');
    }
  }

  return { work, record, check, run, stop, stopAll, report };
}
