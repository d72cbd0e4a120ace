// Load-generator side: TLS / plain clients speaking the service's 9-byte op header (see child.mjs), and the
// statistics the scenarios report. Every wait here is bounded by a deadline.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export const MB = 1e6;
export const CHUNK = Buffer.alloc(64 * 1024, 0xa5);

/** The 9-byte op header: op letter, 64-bit big-endian argument. */
export function header(op, arg = 0) {
  const b = Buffer.alloc(9);
  b[0] = op.charCodeAt(0);
  b.writeBigUInt64BE(BigInt(arg), 1);
  return b;
}

/** Rejects after `ms` unless `promise` settles first. */
export function deadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/**
 * Opens a TLS connection to `target` (SNI = the service name, the service certificate pinned) and resolves
 * once the handshake is done.
 */
export async function connectTls(target, timeoutMs = 10_000) {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: target.port,
    servername: target.servername,
    ca: target.ca,
  });
  socket.setNoDelay(true);
  try {
    await deadline(once(socket, 'secureConnect'), timeoutMs, `TLS handshake via ${target.name}`);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket;
}

/** Opens a plain TCP connection to the target's HTTP port and sends a request head (the node sniffs Host). */
export async function connectPlain(target, timeoutMs = 10_000) {
  const socket = netConnect({ host: '127.0.0.1', port: target.plainPort });
  socket.setNoDelay(true);
  try {
    await deadline(once(socket, 'connect'), timeoutMs, `connect via ${target.name}`);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  socket.write(`GET / HTTP/1.1\r\nHost: ${target.servername}\r\n\r\n`);
  return socket;
}

/**
 * Downloads `bytes` over one stream. Resolves `{ bytes, ms }` (after the handshake); bounded by `timeoutMs`
 * (the handshake by `handshakeMs`).
 */
export async function download(target, bytes, timeoutMs, handshakeMs = 10_000) {
  const socket = await connectTls(target, handshakeMs);
  const start = performance.now();
  let got = 0;
  socket.on('data', (d) => {
    got += d.length;
  });
  socket.write(header('D', bytes));
  try {
    await deadline(once(socket, 'end'), timeoutMs, `download via ${target.name}`);
  } catch (err) {
    return { bytes: got, ms: performance.now() - start, error: err.message };
  } finally {
    socket.destroy();
  }
  return { bytes: got, ms: performance.now() - start };
}

/** Uploads `bytes` over one stream and waits for the service's acknowledgement (handshake: `handshakeMs`). */
export async function upload(target, bytes, timeoutMs, handshakeMs = 10_000) {
  const socket = await connectTls(target, handshakeMs);
  const start = performance.now();
  let sent = 0;
  let stopped = false;
  const acked = once(socket, 'data');
  socket.write(header('U', bytes));
  const pump = () => {
    while (!stopped && sent < bytes) {
      const n = Math.min(CHUNK.length, bytes - sent);
      sent += n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
  try {
    await deadline(acked, timeoutMs, `upload via ${target.name}`);
  } catch (err) {
    return { bytes: sent - socket.writableLength, ms: performance.now() - start, error: err.message };
  } finally {
    stopped = true;
    socket.destroy();
  }
  return { bytes, ms: performance.now() - start };
}

/** Runs `fn(i)` for i in [0, n) with at most `limit` in flight. */
export async function pool(n, limit, fn) {
  const results = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return results;
}

/** Percentile (nearest rank) of a sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Jain's fairness index: (Σx)² / (n · Σx²); 1 = perfectly even, 1/n = one stream has everything. */
export function jain(values) {
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 0 : (sum * sum) / (values.length * squares);
}

/** Rounds to `digits` decimals (numbers in result tables). */
export function round(value, digits = 2) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A target line for the runner's summary. */
export function goal(target, wanted, achieved, met) {
  return { target, goal: wanted, achieved, met: met ? 'yes' : 'NO' };
}

/** Parses `512MB`, `1GB`, `64MiB`, `1e9` into bytes. */
export function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(k|ki|m|mi|g|gi)?b?$/i.exec(String(text).trim());
  if (m === null) throw new Error(`bad size "${text}" (e.g. 256MB, 1GB, 64MiB)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = { '': 1, k: 1e3, ki: 1024, m: 1e6, mi: 2 ** 20, g: 1e9, gi: 2 ** 30 }[unit];
  return Math.round(Number(m[1]) * mult);
}

/** Bytes of each request and answer of an echo connection. */
const ECHO_SIZE = 1024;
const ECHO_PAYLOAD = Buffer.alloc(ECHO_SIZE, 0x42);

/** An echo connection: `send()` writes 1 KiB; `onResponse(fn)` is called once per 1 KiB echoed back. */
export async function echoConnection(target) {
  const socket = await connectTls(target);
  socket.on('error', () => {});
  socket.write(header('E'));
  let pending = 0;
  let handler = () => {};
  socket.on('data', (d) => {
    pending += d.length;
    while (pending >= ECHO_SIZE) {
      pending -= ECHO_SIZE;
      handler();
    }
  });
  return {
    send: () => socket.write(ECHO_PAYLOAD),
    onResponse: (fn) => {
      handler = fn;
    },
    close: () => socket.destroy(),
  };
}

/** Sequential requests on one connection: up to `count`, at most `budgetMs`. Returns their RTTs in ms, in order. */
export async function sequential(conn, count, budgetMs) {
  const rtts = [];
  const stopAt = performance.now() + budgetMs;
  await new Promise((resolve) => {
    let sentAt = 0;
    const next = () => {
      if (rtts.length >= count || performance.now() > stopAt) return resolve();
      sentAt = performance.now();
      conn.send();
    };
    conn.onResponse(() => {
      rtts.push(performance.now() - sentAt);
      next();
    });
    next();
  });
  return rtts;
}
