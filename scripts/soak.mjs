#!/usr/bin/env node
/**
 * Soak test (not run in CI): two nodes meshed on loopback (A tunnels to B, where the backends are), under
 * mixed load for `--minutes N` (default 10):
 *
 * - bulk transfers: echo streams of 1–8 MB, SHA-256 of what was sent vs what came back;
 * - small requests: HTTP GETs answered with a random body and its SHA-256 in a header;
 * - many idle streams: long-lived echo connections, probed now and then, checked at the end;
 * - slow readers: bulk echo streams whose end user reads at ~256 KiB/s;
 * - backend churn: backends of `churn.soak.test` closing and reconnecting all the time;
 * - beside it, the hostile mix of scripts/soak-hostile.mjs (unless `--no-hostile`): a flooding backend
 *   that stops reading its WebSocket, hundreds of idle sockets, slowloris on both relay modes, garbage,
 *   and an announce flood from a trusted fake peer, each attacker from a loopback address of its own.
 *
 * The nodes run with their default limits. Honest end users come from 127.0.0.1; half connect to node A
 * (tunnelled through the mesh to B), half to node B. Every transfer is checked byte for byte. Exit code 1
 * on any corrupted or lost byte on a stable route, an honest connection to a stable route refused or
 * turned away by a node, a long-lived stream that died, or unbounded memory growth (end RSS > 2× the RSS
 * after warm-up).
 *
 *   npm run soak -- --minutes 2        (builds first)
 *   node scripts/soak.mjs --minutes 2  (uses the current dist/)
 *   node scripts/soak.mjs --minutes 2 --no-hostile
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBackendClient } from '@nexus-proxy/backend-client';
import {
  createCertificateAuthority,
  createNexus,
  issueCertificate,
  mintBackendToken,
} from '@nexus-proxy/core';
import { startHostileMix } from './soak-hostile.mjs';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '24' },
    idle: { type: 'string', default: '200' },
    'single-node': { type: 'boolean', default: false },
    'no-hostile': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});
const DURATION_MS = Number(args.minutes) * 60_000;
const CONCURRENCY = Number(args.concurrency);
const IDLE_STREAMS = Number(args.idle);
const HOSTILE = !args['no-hostile'];
/** Where the honest end users connect from; the attackers use other loopback addresses. */
const HONEST_FROM = '127.0.0.1';
const SAMPLE_MS = 2_000;
const WARMUP_MS = Math.min(30_000, DURATION_MS / 5);
const MiB = 1024 * 1024;
/** A transfer without progress for this long is stuck, ms. */
const STALL_MS = 30_000;
const SECRET = 'soak-secret-that-is-long-enough-0123456789abcdef';
const SUFFIX = 'mesh.soak.test';
const ECHO = 'echo.soak.test';
const WEB = 'web.soak.test';
const CHURN = 'churn.soak.test';
if (!(DURATION_MS > 0)) {
  console.error('usage: soak.mjs --minutes N');
  process.exit(2);
}

// ───────────────────────────── report ─────────────────────────────

const stats = {
  completed: { bulk: 0, small: 0, slow: 0, churn: 0, idleProbes: 0 },
  bytes: 0,
  errors: new Map(), // reason → count (clean failures: refused, cut during churn…)
  fatal: [], // lost or corrupted bytes on a stable route
  refused: [], // honest connections to a stable route closed without a byte
  honestSniffFailed: new Map(), // node-side sniff-failed reasons for honest end users
  rss: [],
};
const countError = (reason) => stats.errors.set(reason, (stats.errors.get(reason) ?? 0) + 1);
const fatal = (what) => {
  stats.fatal.push(what);
  if (stats.fatal.length <= 20) console.error(`FATAL: ${what}`);
};
const sha = (b) => createHash('sha256').update(b).digest('hex');
const rand = (min, max) => min + Math.floor(Math.random() * (max - min + 1));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (n) => `${(n / MiB).toFixed(1)} MiB`;

// ───────────────────────────── services ─────────────────────────────

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

/** Echoes every byte. */
const echo = createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  s.pipe(s);
});
/** Answers each HTTP request with a random body (size from `?n=`) and its SHA-256. */
const web = createServer((s) => {
  s.on('error', () => {});
  let head = '';
  s.on('data', (c) => {
    head += c.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    const n = Number(/[?&]n=(\d+)/.exec(head)?.[1] ?? 100);
    const body = randomBytes(n);
    s.end(
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 200 OK\r\ncontent-length: ${n}\r\nx-sha256: ${sha(body)}\r\nconnection: close\r\n\r\n`,
        ),
        body,
      ]),
    );
    head = '';
  });
});

// ───────────────────────────── nodes ─────────────────────────────

const dir = mkdtempSync(join(tmpdir(), 'nexus-soak-'));
const ca = await createCertificateAuthority({ commonName: 'Soak CA' });
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, ca.certPem);

async function startNode(name, peers, peerPort) {
  const cert = await issueCertificate(ca, {
    dnsNames: [`${name}.${SUFFIX}`],
    ipAddresses: ['127.0.0.1'],
    serverAuth: true,
    clientAuth: true,
  });
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(certFile, cert.certPem);
  writeFileSync(keyFile, cert.keyPem);
  const mesh = !args['single-node'];
  const nexus = createNexus(
    {
      backendListenAddress: '127.0.0.1:0',
      backendsJWTSecret: SECRET,
      hubTlsCertFile: certFile,
      hubTlsKeyFile: keyFile,
      listeners: [
        { port: 0, mode: 'tls', host: '127.0.0.1' },
        { port: 0, mode: 'http', host: '127.0.0.1' },
      ],
      ...(mesh
        ? {
            peerListenAddress: `127.0.0.1:${peerPort ?? 0}`,
            peers,
            peerAuthentication: { trustedDomainSuffixes: [SUFFIX], caFile },
          }
        : {}),
      logLevel: 'silent',
    },
    { mesh: { reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 } } },
  );
  nexus.on('sniff-failed', (e) => {
    if (e.remoteAddress !== HONEST_FROM) return; // the attackers' are in the hostile report
    if (e.hostname === CHURN) return; // a churned route may have no backend for a moment
    stats.honestSniffFailed.set(e.reason, (stats.honestSniffFailed.get(e.reason) ?? 0) + 1);
  });
  const addresses = await nexus.listen();
  const port = (mode) => addresses.listeners.find((l) => l.mode === mode).address.port;
  return {
    name,
    nexus,
    hubUrl: `wss://127.0.0.1:${addresses.hub.port}/connect`,
    peerUrl: addresses.peer ? `wss://127.0.0.1:${addresses.peer.port}/mesh` : undefined,
    tls: port('tls'),
    http: port('http'),
  };
}

const echoPort = await listen(echo);
const webPort = await listen(web);
const nodeB = await startNode('b', []);
let meshUp = false;
let nodeA = nodeB;
if (!args['single-node'] && nodeB.peerUrl !== undefined) {
  nodeA = await startNode('a', [nodeB.peerUrl]);
}

// ───────────────────────────── backends (all on B) ─────────────────────────────

/** Dials echo for `echo.*` and the web service for everything else, whatever the relay port. */
const connectHandler = (request) => connect(request.hostname === ECHO ? echoPort : webPort, '127.0.0.1');

async function backend(hostnames) {
  const client = createBackendClient({
    nodes: [nodeB.hubUrl],
    token: await mintBackendToken({ secret: SECRET, hostnames }),
    tls: { ca: ca.certPem },
    connectHandler,
    reconnect: { initialDelayMs: 200, maxDelayMs: 2_000 },
    closeGraceMs: 2_000,
  });
  client.on('error', () => {});
  client.connect();
  return client;
}

const stable = await Promise.all([backend([ECHO, WEB]), backend([ECHO, WEB]), backend([ECHO, WEB])]);
const churners = await Promise.all([backend([CHURN]), backend([CHURN])]);

async function waitFor(cond, ms, what) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
await waitFor(() => nodeB.nexus.hub.sessions.length === 5, 10_000, 'backends on B');
if (nodeA !== nodeB) {
  try {
    await waitFor(
      () => nodeA.nexus.routes.lookup(ECHO) !== undefined && nodeA.nexus.routes.lookup(CHURN) !== undefined,
      10_000,
      'mesh routes on A',
    );
    meshUp = true;
  } catch {
    console.error('mesh did not come up: end users use node B only');
    nodeA = nodeB;
  }
}
const pickNode = () => (Math.random() < 0.5 ? nodeA : nodeB);

// ───────────────────────────── load ─────────────────────────────

const deadline = Date.now() + DURATION_MS;
const running = () => Date.now() < deadline;

/** Opens a connection to `node`'s HTTP port, resolves once connected. */
async function open(port) {
  const socket = connect({ port, host: '127.0.0.1', localAddress: HONEST_FROM });
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/**
 * An echo transfer of `size` bytes: sends a head for `ECHO` and random bytes, reads everything back
 * (at `readRate` bytes/s when given), compares SHA-256. On a stable route anything short or different is
 * fatal; a refused connection (0 bytes back) is a clean error.
 */
async function echoTransfer(kind, size, readRate) {
  const node = pickNode();
  const socket = await open(node.http);
  const head = Buffer.from(`POST /${kind} HTTP/1.1\r\nHost: ${ECHO}\r\nContent-Length: ${size}\r\n\r\n`);
  const expected = head.length + size;
  const sent = createHash('sha256').update(head);
  const got = createHash('sha256');
  let received = 0;
  let mismatch = false;
  let stalled = false;
  let error;
  const chunks = []; // only the first bytes, to check the echoed head
  socket.on('error', (e) => {
    error = e.code ?? e.message;
  });
  const done = new Promise((resolve) => {
    socket.on('data', (c) => {
      if (received < head.length) chunks.push(c);
      received += c.length;
      got.update(c);
      if (readRate) {
        socket.pause();
        setTimeout(() => socket.resume(), (c.length / readRate) * 1000);
      }
      // v1 streams carry no half-close to the backend (docs/protocol.md §1.7): the end user just leaves.
      if (received >= expected) socket.destroy();
    });
    socket.once('close', resolve);
  });
  // A stream that makes no progress for STALL_MS is stuck: that is a lost byte, not a slow one.
  let seen = -1;
  const watchdog = setInterval(() => {
    if (received === seen) {
      stalled = true;
      socket.destroy();
    }
    seen = received;
  }, STALL_MS);
  socket.write(head);
  let left = size;
  while (left > 0 && !socket.destroyed) {
    const chunk = randomBytes(Math.min(64 * 1024, left));
    left -= chunk.length;
    sent.update(chunk);
    if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
  }
  await done;
  clearInterval(watchdog);
  if (stalled) {
    fatal(`${kind} via ${node.name}: stalled at ${received}/${expected} bytes for ${STALL_MS} ms`);
    return;
  }
  if (
    received > 0 &&
    !Buffer.concat(chunks)
      .subarray(0, Math.min(received, head.length))
      .equals(head.subarray(0, Math.min(received, head.length)))
  )
    mismatch = true;
  if (received === expected && !mismatch && got.digest('hex') === sent.digest('hex')) {
    stats.completed[kind]++;
    stats.bytes += 2 * expected;
    return;
  }
  if (received === 0) {
    countError(`${kind}: refused${error ? ` (${error})` : ''} via ${node.name}`);
    stats.refused.push(`${kind} via ${node.name}`);
  } else
    fatal(
      `${kind} via ${node.name}: ${received}/${expected} bytes back${mismatch || received === expected ? ', CONTENT DIFFERS' : ''}${error ? ` (${error})` : ''}`,
    );
}

/** A GET for `host`; the body must match its SHA-256 header. Short on churned routes is a clean error. */
async function smallRequest(kind, host) {
  const node = pickNode();
  const socket = await open(node.http);
  const n = rand(0, 64 * 1024);
  const chunks = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => {});
  socket.write(`GET /?n=${n} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  const stall = setTimeout(() => {
    fatal(`${kind} via ${node.name}: no response end within ${STALL_MS} ms`);
    socket.destroy();
  }, STALL_MS);
  await once(socket, 'close');
  clearTimeout(stall);
  const all = Buffer.concat(chunks);
  const end = all.indexOf('\r\n\r\n');
  const headText = all.subarray(0, Math.max(0, end)).toString('latin1');
  const want = /x-sha256: ([0-9a-f]{64})/.exec(headText)?.[1];
  const body = all.subarray(end + 4);
  if (end >= 0 && want !== undefined && body.length === n && sha(body) === want) {
    stats.completed[kind]++;
    stats.bytes += all.length;
    return;
  }
  if (all.length === 0) {
    countError(`${kind}: closed without a byte via ${node.name}`);
    // A churned route may have no backend for a moment; a stable one must always answer.
    if (kind !== 'churn') stats.refused.push(`${kind} via ${node.name}`);
    return;
  }
  const cut = end < 0 || want === undefined || body.length < n;
  const intact = want !== undefined && body.length < n; // a prefix can only be judged by its length here
  if (kind === 'churn' && cut) countError(`${kind}: response cut (backend churn) via ${node.name}`);
  else
    fatal(
      `${kind} via ${node.name}: ${all.length} bytes, body ${body.length}/${n}${intact ? '' : ', CONTENT DIFFERS'}`,
    );
}

async function worker(task) {
  while (running()) {
    try {
      await task();
    } catch (err) {
      countError(`client: ${err.code ?? err.message}`);
      await sleep(50);
    }
  }
}

/** Long-lived echo connections, probed every ~10 s; each must still be alive at the end. */
async function idleStreams() {
  const streams = [];
  for (let i = 0; i < IDLE_STREAMS; i++) {
    const node = i % 2 === 0 ? nodeA : nodeB;
    const socket = await open(node.http);
    const s = { socket, node, pending: '', expect: '', dead: undefined };
    socket.on('data', (c) => {
      s.pending += c.toString('latin1');
    });
    socket.on('error', (e) => {
      s.dead ??= e.code ?? e.message;
    });
    socket.on('close', () => {
      s.dead ??= 'closed';
    });
    const head = `GET /idle HTTP/1.1\r\nHost: ${ECHO}\r\n\r\n`;
    socket.write(head);
    s.expect += head;
    streams.push(s);
  }
  while (running()) {
    await sleep(rand(5_000, 10_000));
    if (!running()) break;
    for (const s of streams) {
      if (s.dead !== undefined || !s.socket.writable) continue;
      const probe = `probe ${randomBytes(8).toString('hex')}\n`;
      s.socket.write(probe);
      s.expect += probe;
    }
    await sleep(500);
    for (const s of streams) {
      if (s.dead === undefined && s.pending === s.expect) stats.completed.idleProbes++;
    }
  }
  await sleep(500);
  for (const s of streams) {
    if (s.dead !== undefined) fatal(`idle stream via ${s.node.name} died: ${s.dead}`);
    else if (s.pending !== s.expect)
      fatal(`idle stream via ${s.node.name}: echo differs (${s.pending.length}/${s.expect.length} chars)`);
    s.socket.destroy();
  }
}

/** Replaces churn backends one at a time: close (graceful) then a new one. */
async function churn() {
  let n = 0;
  while (running()) {
    await sleep(rand(2_000, 5_000));
    if (!running()) break;
    const i = n++ % churners.length;
    const old = churners[i];
    churners[i] = await backend([CHURN]);
    await old.close({ graceMs: 1_000 });
  }
}

// ───────────────────────────── memory ─────────────────────────────

const t0 = Date.now();
let warmRss;
const sampler = setInterval(() => {
  const { rss } = process.memoryUsage();
  stats.rss.push(rss);
  if (warmRss === undefined && Date.now() - t0 >= WARMUP_MS) warmRss = rss;
  if (!args.quiet) {
    const done = Object.values(stats.completed).reduce((a, b) => a + b, 0);
    const errs = [...stats.errors.values()].reduce((a, b) => a + b, 0);
    console.log(
      `[${Math.round((Date.now() - t0) / 1000)}s] rss ${mb(rss)} transfers ${done} bytes ${mb(stats.bytes)} errors ${errs} fatal ${stats.fatal.length} streams A/B ${nodeA.nexus.activeStreams}/${nodeB.nexus.activeStreams}`,
    );
  }
}, SAMPLE_MS);

console.log(
  `soak: ${args.minutes} min, ${meshUp ? '2 nodes meshed (A → B)' : '1 node'}, ${CONCURRENCY} workers, ${IDLE_STREAMS} idle streams, ${HOSTILE ? 'hostile mix on' : 'no hostile clients'}, default limits`,
);
const bulkSize = () => rand(1, 8) * MiB;
const hostile = HOSTILE
  ? await startHostileMix({
      nodes: [nodeA, nodeB].filter((n, i, all) => all.indexOf(n) === i),
      ca,
      secret: SECRET,
      suffix: SUFFIX,
      running,
    })
  : undefined;
const tasks = [idleStreams(), churn()];
for (let i = 0; i < CONCURRENCY; i++) {
  const kind = i % 6;
  if (kind === 0) tasks.push(worker(() => echoTransfer('bulk', bulkSize())));
  else if (kind === 1) tasks.push(worker(() => echoTransfer('slow', rand(1, 2) * MiB, 256 * 1024)));
  else if (kind === 2) tasks.push(worker(() => smallRequest('churn', CHURN)));
  else tasks.push(worker(() => smallRequest('small', WEB)));
}
await Promise.all(tasks);
clearInterval(sampler);
await hostile?.stop();

// ───────────────────────────── wind down and report ─────────────────────────────

await Promise.all([...stable, ...churners].map((c) => c.close({ graceMs: 0 })));
await Promise.all(
  [nodeA, nodeB].filter((n, i, all) => all.indexOf(n) === i).map((n) => n.nexus.close({ graceMs: 0 })),
);
echo.close();
web.close();
rmSync(dir, { recursive: true, force: true });

const endRss = stats.rss.at(-1) ?? process.memoryUsage().rss;
const startRss = stats.rss[0] ?? endRss;
const peakRss = Math.max(...stats.rss, endRss);
const warm = warmRss ?? startRss;
const memoryOk = endRss <= 2 * warm;
const report = {
  minutes: Number(args.minutes),
  topology: meshUp ? '2 nodes meshed (A tunnels to B)' : '1 node',
  completed: stats.completed,
  bytes: stats.bytes,
  errors: Object.fromEntries([...stats.errors].sort((a, b) => b[1] - a[1])),
  honestRefusedOnStableRoutes: stats.refused.length,
  honestTurnedAwayByNodes: Object.fromEntries(stats.honestSniffFailed),
  fatal: stats.fatal.length,
  rss: {
    start: mb(startRss),
    afterWarmup: mb(warm),
    peak: mb(peakRss),
    end: mb(endRss),
    samples: stats.rss.length,
  },
  memoryOk,
  ...(hostile !== undefined ? { hostile: hostile.report() } : {}),
};
console.log(JSON.stringify(report, null, 2));
const turnedAway = [...stats.honestSniffFailed.values()].reduce((a, b) => a + b, 0);
if (stats.fatal.length > 0 || !memoryOk || stats.refused.length > 0 || turnedAway > 0) {
  console.error(
    `SOAK FAILED: ${stats.fatal.length} lost/corrupted transfers, ${stats.refused.length} honest connections to stable routes refused, ${turnedAway} turned away by a node${memoryOk ? '' : `, end RSS ${mb(endRss)} > 2 × ${mb(warm)}`}`,
  );
  process.exit(1);
}
console.log('SOAK PASSED');
process.exit(0);
