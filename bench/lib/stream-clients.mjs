// The load generator of the `streams` scenario, split over worker processes: one Node process reading
// thousands of TLS sockets is a single thread that decrypts every byte, and at 1 000+ streams it can be
// what limits the figure instead of the proxy. Each worker owns a share of the streams (TLS clients that
// download without end from the service's `D` op) and counts bytes per stream; the parent opens them,
// starts them all at once, takes snapshots of the counts and closes them. Direct and Nexus paths use the
// same workers, so both figures come from the same consumer.
//
// Parent side: `startStreamClients(workers)` forks `node stream-clients.mjs` `workers` times.
// Worker side (this file run as a child): IPC messages
//   → { type: 'hello' } once listening
//   { type: 'open', target, count, concurrency } → { type: 'open', count }
//   { type: 'start' }                            → { type: 'start' }
//   { type: 'snapshot' }                         → { type: 'snapshot', counts: number[] }
//   { type: 'stop' }                             → { type: 'stop' } (every socket destroyed)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
/** Longest wait for a worker's answer, ms (opening 5 000 TLS connections on a loaded machine included). */
const ANSWER_TIMEOUT_MS = 180_000;
/** "Unbounded" download: the service writes until the stream is destroyed. */
const ENDLESS = 1e15;

/**
 * Forks `workers` load-generator processes.
 * @returns {Promise<{ pids: number[], open: (target: object, n: number) => Promise<void>,
 *   start: () => Promise<void>, snapshot: () => Promise<Float64Array>, stop: () => Promise<void>,
 *   close: () => Promise<void> }>}
 */
export async function startStreamClients(workers) {
  const children = [];
  for (let i = 0; i < workers; i++) {
    const child = fork(SELF, ['worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const waiters = [];
    child.on('message', (msg) => {
      const i = waiters.findIndex((w) => w.type === msg.type || msg.type === 'error');
      if (i >= 0) waiters.splice(i, 1)[0].resolve(msg);
    });
    child.on('exit', () => {
      for (const w of waiters.splice(0)) w.resolve({ type: 'error', message: 'load worker exited' });
    });
    children.push({ child, waiters });
  }
  // Each worker says hello once it listens (a message sent before that would be lost).
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve, reject) => {
          c.waiters.push({ type: 'hello', resolve });
          c.child.once('error', reject);
        }),
    ),
  );
  const call = (c, type, extra = {}) => {
    let timer;
    const reply = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`load worker: no answer to ${type}`)), ANSWER_TIMEOUT_MS);
      c.waiters.push({
        type,
        resolve: (msg) =>
          msg.type === 'error' ? reject(new Error(`load worker: ${msg.message}`)) : resolve(msg),
      });
    }).finally(() => clearTimeout(timer));
    c.child.send({ type, ...extra });
    return reply;
  };
  const all = (type, extra) => Promise.all(children.map((c) => call(c, type, extra)));
  /** Streams per worker in the last `open`. */
  let shares = [];
  return {
    pids: children.map((c) => c.child.pid),
    async open(target, n) {
      shares = children.map((_, i) => Math.floor(n / workers) + (i < n % workers ? 1 : 0));
      await Promise.all(
        children.map((c, i) => call(c, 'open', { target, count: shares[i], concurrency: 32 })),
      );
    },
    async start() {
      await all('start');
    },
    /** Bytes received so far per stream, all workers' streams in one array. */
    async snapshot() {
      const replies = await all('snapshot');
      return Float64Array.from(replies.flatMap((r) => r.counts));
    },
    async stop() {
      await all('stop');
    },
    async close() {
      await Promise.all(
        children.map(async ({ child }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, 'exit');
          child.disconnect();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}

// ───────────────────────────── worker ─────────────────────────────

async function worker() {
  const { connectTls, header, pool } = await import('./load.mjs');
  let sockets = [];
  let counts = new Float64Array(0);
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (msg) => {
    try {
      if (msg.type === 'open') {
        counts = new Float64Array(msg.count);
        sockets = await pool(msg.count, msg.concurrency, () => connectTls(msg.target, 60_000));
        sockets.forEach((s, i) => {
          s.on('data', (d) => {
            counts[i] += d.length;
          });
          s.on('error', () => {});
        });
        process.send({ type: 'open', count: sockets.length });
      } else if (msg.type === 'start') {
        const op = header('D', ENDLESS);
        for (const s of sockets) s.write(op);
        process.send({ type: 'start' });
      } else if (msg.type === 'snapshot') {
        process.send({ type: 'snapshot', counts: Array.from(counts) });
      } else if (msg.type === 'stop') {
        for (const s of sockets) s.destroy();
        sockets = [];
        process.send({ type: 'stop' });
      }
    } catch (err) {
      process.send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  });
  process.send({ type: 'hello' });
}

if (process.argv[1] === SELF && process.argv[2] === 'worker') await worker();
