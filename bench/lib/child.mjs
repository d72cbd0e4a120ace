#!/usr/bin/env node
// One benchmark process, started by bench/lib/topology.mjs with `fork()`: `node child.mjs <role>`.
// Roles: `service` (the local TLS / plain TCP service), `node` (createNexus, optionally a mesh node),
// `backend` (createBackendClient), `relay` (a bare Node relay: the floor rows of the throughput scenario). The parent sends `{ type: 'start', ... }` over
// IPC and gets `{ type: 'ready', ... }` back; `{ type: 'stats' }` → `{ type: 'stats', rss, peakRss, ... }`;
// `{ type: 'gc' }` collects the heap; `{ type: 'close' }` ends the process (so that `--cpu-prof` writes its profile).
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { createServer as createTlsServer } from 'node:tls';

const role = process.argv[2];
// The backend runs as the nexus-backend command runs it (docs/benchmarks.md "The backend client's upload"):
// its young generation kept small from the start. A tree without the module runs untuned.
// The node likewise runs as `nexus-proxy serve` runs it (docs/benchmarks.md "The node's heap and garbage
// collection"); BENCH_NODE_UNTUNED=1 leaves it untuned, for comparisons.
if (role === 'backend') {
  await import('@nexus-proxy/backend-client/relay-heap').then(
    (m) => m.tuneHeapForRelaying(),
    () => {},
  );
} else if (role === 'node' && process.env.BENCH_NODE_UNTUNED !== '1') {
  await import('@nexus-proxy/common/relay-heap').then(
    (m) => m.tuneHeapForRelaying(),
    () => {},
  );
}

/** Largest time a child waits for `start` before it gives up, ms. */
const START_TIMEOUT_MS = 30_000;
/** RSS sampling period, ms. */
const RSS_SAMPLE_MS = 20;

// Peak RSS sampling starts with the first `reset-peak` (it costs CPU, so throughput runs go without it).
let peakRss = process.memoryUsage.rss();
let sampler;
const samplePeak = () => {
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) peakRss = rss;
};

// Garbage collections so far (every role): count and pause time, minor (scavenge) and major apart.
const gc = { minor: 0, major: 0, minorMs: 0, majorMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    // NODE_PERFORMANCE_GC_MINOR = 1; major, incremental and weak-callback passes count as major.
    if (entry.detail?.kind === 1) {
      gc.minor++;
      gc.minorMs += entry.duration;
    } else {
      gc.major++;
      gc.majorMs += entry.duration;
    }
  }
}).observe({ entryTypes: ['gc'] });

/** The mux counters of `sessions` (`MuxSession.stats()`), summed. */
function muxTotals(sessions) {
  const sum = { dataFramesSent: 0, dataFramesReceived: 0, bytesSent: 0, bytesReceived: 0 };
  Object.assign(sum, { controlMessagesSent: 0, controlMessagesReceived: 0, windowGrowthPeak: 0 });
  for (const session of sessions) {
    const c = session.stats();
    for (const key of Object.keys(sum)) sum[key] += c[key] ?? 0;
  }
  return sum;
}

/** Extra figures a role reports with `stats`. */
let extraStats = () => ({});
/** What `close` runs before the process exits. */
let closeRole = async () => {};

// The parent going away must never leave a child behind.
process.on('disconnect', () => process.exit(0));
const startTimer = setTimeout(() => process.exit(3), START_TIMEOUT_MS);

process.on('message', async (msg) => {
  try {
    if (msg.type === 'start') {
      clearTimeout(startTimer);
      const info = await ROLES[role](msg);
      process.send({ type: 'ready', ...info });
    } else if (msg.type === 'stats') {
      const { rss, heapUsed } = process.memoryUsage();
      if (rss > peakRss) peakRss = rss;
      // CPU time used so far (user + system, µs): the figure to compare per byte relayed, steadier than
      // MB/s on a shared machine.
      const { user, system } = process.cpuUsage();
      process.send({
        type: 'stats',
        rss,
        peakRss,
        heapUsed,
        cpuUs: user + system,
        gc: { ...gc },
        ...extraStats(),
      });
    } else if (msg.type === 'gc') {
      // A full collection, so that a measured window starts from the same heap state (bench/instructions.mjs).
      if (typeof globalThis.gc === 'function') globalThis.gc();
      process.send({ type: 'gc' });
    } else if (msg.type === 'reset-peak') {
      if (msg.gc && typeof globalThis.gc === 'function') globalThis.gc();
      peakRss = process.memoryUsage.rss();
      sampler ??= setInterval(samplePeak, RSS_SAMPLE_MS);
      sampler.unref();
      process.send({ type: 'reset-peak', rss: peakRss });
    } else if (msg.type === 'close') {
      const timer = setTimeout(() => process.exit(0), 5_000);
      await closeRole().catch(() => {});
      clearTimeout(timer);
      process.exit(0);
    }
  } catch (err) {
    process.send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});

// ---------------------------------------------------------------------------------------------------------
// The service. After the TLS handshake (or, on the plain port, after an HTTP request head) the client sends a
// 9-byte header: an op byte and a 64-bit big-endian argument.
//   D n  write n bytes, then end          U n  read n bytes, answer "K", then end
//   E    echo every byte back              I    hold the connection, do nothing
//   S r  read at r bytes/s (a slow reader), answer nothing

const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

/** Chunks one download writes before it lets the other sockets have the event loop (1 MiB). */
const CHUNKS_PER_TURN = 16;

function writeBytes(socket, total) {
  let left = total;
  const pump = () => {
    // A reader that keeps up lets every write complete at once; without a bound on the chunks per turn,
    // one download would keep the event loop and the service's other sockets would get nothing.
    for (let chunks = 0; left > 0; chunks++) {
      if (chunks === CHUNKS_PER_TURN) {
        setImmediate(pump);
        return;
      }
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

/** Reads from `socket` at about `rate` bytes/s by pausing it whenever it is ahead. */
export function throttleReads(socket, rate, onBytes = () => {}) {
  const start = performance.now();
  let got = 0;
  let timer;
  socket.on('data', (d) => {
    got += d.length;
    onBytes(d.length);
    const aheadMs = (got / rate) * 1000 - (performance.now() - start);
    if (aheadMs > 5) {
      socket.pause();
      clearTimeout(timer);
      timer = setTimeout(() => socket.resume(), aheadMs);
    }
  });
  socket.on('close', () => clearTimeout(timer));
}

function handleOps(socket, initial) {
  let buf = initial;
  const onData = (d) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    if (buf.length < 9) return;
    socket.off('data', onData);
    const op = String.fromCharCode(buf[0]);
    const arg = Number(buf.readBigUInt64BE(1));
    const rest = buf.subarray(9);
    if (op === 'D') {
      socket.resume();
      writeBytes(socket, arg);
    } else if (op === 'U') {
      let got = rest.length;
      const done = () => {
        socket.off('data', count);
        socket.end('K');
      };
      const count = (c) => {
        got += c.length;
        if (got >= arg) done();
      };
      if (got >= arg) done();
      else socket.on('data', count);
    } else if (op === 'E') {
      if (rest.length > 0) socket.write(rest);
      socket.on('data', (c) => socket.write(c));
    } else if (op === 'I') {
      socket.resume();
    } else if (op === 'S') {
      throttleReads(socket, Math.max(1, arg));
    } else {
      socket.destroy();
    }
  };
  socket.on('data', onData);
  if (initial.length > 0) onData(Buffer.alloc(0));
}

async function service({ certPem, keyPem }) {
  const sockets = new Set();
  const track = (s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const tls = createTlsServer({ cert: certPem, key: keyPem }, (s) => {
    track(s);
    handleOps(s, Buffer.alloc(0));
  });
  tls.on('tlsClientError', () => {});
  // Plain port: skip the HTTP request head the node sniffed (it arrives as the stream's prelude).
  const plain = createNetServer({ allowHalfOpen: false }, (s) => {
    track(s);
    let head = Buffer.alloc(0);
    const onHead = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onHead);
      handleOps(s, head.subarray(end + 4));
    };
    s.on('data', onHead);
  });
  tls.maxConnections = 1_000_000;
  // A UDP echo target (the `udp` scenario): every datagram goes back to where it came from.
  const udp = dgram.createSocket('udp4');
  let udpEchoed = 0;
  udp.on('message', (m, r) => {
    udpEchoed++;
    udp.send(m, r.port, r.address);
  });
  await Promise.all([
    new Promise((r) => tls.listen(0, '127.0.0.1', 4096, r)),
    new Promise((r) => plain.listen(0, '127.0.0.1', 4096, r)),
    new Promise((r) => udp.bind(0, '127.0.0.1', r)),
  ]);
  extraStats = () => ({ connections: sockets.size, udpEchoed });
  closeRole = async () => {
    for (const s of sockets) s.destroy();
    tls.close();
    plain.close();
    udp.close();
  };
  return { tlsPort: tls.address().port, plainPort: plain.address().port, udpPort: udp.address().port };
}

// ---------------------------------------------------------------------------------------------------------
// A node: createNexus with a TLS and an HTTP relay listener on loopback, port 0.

/** Limits for benchmarks: room for 10 000 streams on one session, no control-message rate cap. */
export const BENCH_LIMITS = {
  // Every end user of a benchmark comes from 127.0.0.1: the per-address cap (256 by default, against
  // one address holding a hostname's streams) would refuse the 10 000 streams of the memory scenario.
  maxConnectionsPerIp: 0,
  maxConcurrentSniffs: 4096,
  maxStreamsPerSession: 20_000,
  maxPendingConnects: 20_000,
  maxControlMessagesPerSecond: 0,
};

async function node({ certPem, keyPem, secret, mesh, config: extra }) {
  const { createNexus } = await import('@nexus-proxy/core');
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-'));
  writeFileSync(join(dir, 'hub.pem'), certPem);
  writeFileSync(join(dir, 'hub.key'), keyPem);
  const config = {
    backendListenAddress: '127.0.0.1:0',
    listeners: [
      { port: 0, mode: 'tls', host: '127.0.0.1' },
      { port: 0, mode: 'http', host: '127.0.0.1' },
    ],
    backendsJWTSecret: secret,
    hubTlsCertFile: join(dir, 'hub.pem'),
    hubTlsKeyFile: join(dir, 'hub.key'),
    limits: BENCH_LIMITS,
    logLevel: 'silent',
    // A scenario's own keys (the fairness scenario's `totalBandwidthMbps`, the udp scenario's UDP relay).
    ...extra,
  };
  const options = {};
  if (mesh !== undefined) {
    // A mesh node (docs/protocol.md §2): peer listener on loopback, peers dialled, the test CA trusted.
    // `peerPort`: a port chosen by the parent (a full mesh lists every node's URL before any starts);
    // `discovery`: the `meshDiscovery` key (bench/scenarios/mesh-scale.mjs).
    Object.assign(config, {
      peerListenAddress: `127.0.0.1:${mesh.peerPort ?? 0}`,
      peers: mesh.peers,
      peerAuthentication: { trustedDomainSuffixes: [mesh.suffix] },
      ...(mesh.discovery !== undefined ? { meshDiscovery: mesh.discovery } : {}),
    });
    options.mesh = { ca: mesh.caPem, systemCa: false, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } };
  }
  const nexus = createNexus(config, options);
  const addresses = await nexus.listen();
  rmSync(dir, { recursive: true, force: true });
  let backends = 0;
  let activeStreams = 0;
  nexus.on('backend-connected', () => backends++);
  nexus.on('backend-disconnected', () => backends--);
  // Counted from the events rather than read from `nexus.activeStreams`, which may be a snapshot.
  nexus.on('stream-open', () => activeStreams++);
  nexus.on('stream-close', () => activeStreams--);
  extraStats = () => ({
    activeStreams,
    backends,
    bandwidth: nexus.bandwidth?.enabled ? nexus.bandwidth.stats() : undefined,
    peerRoute: mesh !== undefined && nexus.routes.lookup(mesh.appHostname)?.kind === 'peer',
    // The mesh's own counters (what /metrics exposes as nexus_peer_*), and discovery's.
    links: nexus.mesh?.linkCount ?? 0,
    linkedPeers: nexus.mesh?.links().map((l) => l.peer) ?? [],
    peerIn: nexus.mesh?.stats().in,
    dialTimeouts: nexus.mesh?.stats().dialTimeouts,
    certificateChecks: nexus.mesh?.stats().certificateChecks,
    discovery: nexus.discovery?.status(),
    localRoutes: nexus.routes.stats().localPatterns,
    peerRoutes: nexus.routes.stats().peerPatterns,
    udp: nexus.udp?.stats()[0],
    // DATA frames and payload bytes on the backend sessions, both ways: the frame sizes the two ends use.
    hubFrames: nexus.hub.sessions.reduce(
      (sum, s) => {
        const c = s.stats();
        sum.sent += c.dataFramesSent;
        sum.sentBytes += c.bytesSent;
        sum.received += c.dataFramesReceived;
        sum.receivedBytes += c.bytesReceived;
        return sum;
      },
      { sent: 0, sentBytes: 0, received: 0, receivedBytes: 0 },
    ),
    mux: muxTotals(nexus.hub.sessions.map((s) => s.mux)),
  });
  closeRole = () => nexus.close({ graceMs: 0 });
  const port = (mode) => addresses.listeners.find((l) => l.mode === mode).address.port;
  return {
    hubPort: addresses.hub.port,
    tlsPort: port('tls'),
    httpPort: port('http'),
    peerPort: addresses.peer?.port,
  };
}

// ---------------------------------------------------------------------------------------------------------
// A backend: createBackendClient to one hub with port mappings (the client's own local dial): the node's
// TLS relay port → the service's TLS port, its HTTP relay port → the service's plain port.

async function backend({ hubPort, hubCaPem, token, mappings, attest }) {
  const { createBackendClient, resolvePortMappings } = await import('@nexus-proxy/backend-client');
  // `attest`: the current era (HMAC tokens), to claim UDP routes; otherwise the seed-era `token`.
  const identity =
    attest === undefined
      ? { token }
      : {
          tokenProvider: { hmacSecret: attest.secret },
          backend: { name: 'bench', hostnames: attest.hostnames, udpRoutes: attest.udpRoutes },
        };
  const client = createBackendClient({
    nodes: [`wss://127.0.0.1:${hubPort}/connect`],
    ...identity,
    tls: { ca: hubCaPem },
    portMappings: resolvePortMappings(mappings),
  });
  client.on('error', () => {});
  const connected = once(client, 'connected');
  client.connect();
  await connected;
  extraStats = () => ({
    streams: [...client.sessions.values()].reduce((n, s) => n + s.streamCount, 0),
    mux: muxTotals(client.sessions.values()),
  });
  closeRole = () => client.close({ graceMs: 0 });
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// A bare relay, the floor of any Node.js design that adds TLS hops between the end user and the service:
// no framing, no multiplexing, no routing, one connection onward per connection accepted, `stream.pipe`
// both ways (Node's own backpressure). `inbound`/`outbound`: 'plain' or 'tls'. Chained plain → tls, tls →
// plain, it is one node and its backend client with one TLS hop between them; with a tls → tls relay in
// the middle, the mesh's two hops. The TLS hops use the same certificates and Node defaults as the hub.

// With `delayMs` (plain → plain), it is a delay line instead: every chunk waits that long each way, a round
// trip of twice it on the path (the test harness's delay line; this machine's kernel has no netem).

async function relay({ inbound, outbound, targetPort, certPem, keyPem, caPem, delayMs }) {
  const { connect: netConnect } = await import('node:net');
  const { connect: tlsConnect } = await import('node:tls');
  const { delayOneWay } = await import('@nexus-proxy/test-harness/delay-line');
  const onward = () =>
    outbound === 'tls'
      ? tlsConnect({ host: '127.0.0.1', port: targetPort, servername: 'hub.bench.test', ca: caPem })
      : netConnect({ host: '127.0.0.1', port: targetPort });
  const join = (socket) => {
    const next = onward();
    socket.setNoDelay(true);
    next.setNoDelay(true);
    socket.on('error', () => next.destroy());
    next.on('error', () => socket.destroy());
    if (delayMs > 0) {
      // Each side's close ends the other once what waits has gone out (delayOneWay).
      delayOneWay(socket, next, delayMs);
      delayOneWay(next, socket, delayMs);
      return;
    }
    socket.pipe(next).pipe(socket);
    socket.on('close', () => next.destroy());
    next.on('close', () => socket.destroy());
  };
  const server =
    inbound === 'tls' ? createTlsServer({ cert: certPem, key: keyPem }, join) : createNetServer(join);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closeRole = () => new Promise((resolve) => server.close(resolve));
  return { port: server.address().port };
}

const ROLES = { service, node, backend, relay };
if (!(role in ROLES)) {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
process.send({ type: 'hello' });
