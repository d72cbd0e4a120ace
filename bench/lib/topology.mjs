// Starts the processes a scenario measures against, all on loopback:
//   service   — a local TLS (and plain TCP) service, its own process;
//   nexus     — a node (createNexus) and a backend client (createBackendClient), one process each;
//   mesh      — two createNexus mesh nodes A → B, the backend on B (when core has the mesh), one process each;
//   haproxy   — HAProxy in TCP mode routing by `req_ssl_sni` (when the binary is installed);
//   floor     — bare Node relays (`pipe`, no framing) with one TLS hop (`floor1`) and two (`floor2`): what
//               any Node.js design with the node's and the mesh's TLS hops costs at the least.
// The load generator is the calling process, so the proxy's own CPU shows in the figures.
import { spawn, spawnSync, fork } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
  mintBackendToken,
} from '@nexus-proxy/core';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, 'child.mjs');

/** Hostname the benchmark service is published under. */
export const APP_HOSTNAME = 'app.bench.test';
/** The nodes' JWT secret (scenarios mint their own tokens with it). */
export const SECRET = 'bench-secret-0123456789-0123456789-0123456789';
export const MESH_SUFFIX = '.mesh.bench.test';
/** Time allowed for a child to start or answer, ms. */
const CHILD_TIMEOUT_MS = 20_000;

/** True when `haproxy` is on the PATH. */
export function haproxyAvailable() {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

/** True when core has the mesh (`PeerMesh`, which createNexus wires from `peers` / `peerAuthentication`). */
export async function meshAvailable() {
  const core = await import('@nexus-proxy/core');
  return typeof core.PeerMesh === 'function';
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}

/**
 * Forks `child.mjs <role>`, sends `start`, waits for `ready`.
 * @returns {Promise<{ info: object, call: (type: string, extra?: object) => Promise<object>, close: () => Promise<void>, pid: number }>}
 */
export async function startChild(role, start, { execArgv = [] } = {}) {
  const child = fork(CHILD, [role], {
    execArgv: ['--max-old-space-size=4096', '--expose-gc', ...execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiters = [];
  child.on('message', (msg) => {
    const i = waiters.findIndex((w) => w.type === msg.type || msg.type === 'error');
    if (i >= 0) waiters.splice(i, 1)[0].resolve(msg);
  });
  const exited = once(child, 'exit');
  const next = (type) =>
    withTimeout(
      new Promise((resolve) => waiters.push({ type, resolve })).then((msg) => {
        if (msg.type === 'error') throw new Error(`${role}: ${msg.message}`);
        return msg;
      }),
      CHILD_TIMEOUT_MS,
      `${role} ${type}`,
    );
  await next('hello');
  const ready = next('ready');
  child.send({ type: 'start', ...start });
  const info = await ready;
  return {
    info,
    pid: child.pid,
    call(type, extra = {}) {
      const reply = next(type);
      child.send({ type, ...extra });
      return reply;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'close' });
      await withTimeout(exited, 10_000, `${role} exit`).catch(() => child.kill('SIGKILL'));
    },
  };
}

export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

async function waitForPort(port, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitUntil(check, what, deadlineMs = 10_000) {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startHaproxy(servicePort, hostname) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  // SNI passthrough, the routing-only part of a node: wait for the ClientHello, route on its SNI.
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4096',
      '  nbthread 1',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 120s',
      '  timeout server 120s',
      'frontend tls_in',
      `  bind 127.0.0.1:${port}`,
      '  tcp-request inspect-delay 5s',
      '  tcp-request content accept if { req_ssl_hello_type 1 }',
      `  use_backend app if { req_ssl_sni -i ${hostname} }`,
      'backend app',
      `  server s1 127.0.0.1:${servicePort}`,
      '',
    ].join('\n'),
  );
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, 5_000);
  return {
    port,
    pid: proc.pid,
    async close() {
      if (proc.exitCode === null) {
        const exited = once(proc, 'exit');
        proc.kill('SIGTERM');
        await withTimeout(exited, 5_000, 'haproxy exit').catch(() => proc.kill('SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function freeUdpPort() {
  const socket = dgram.createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  const { port } = socket.address();
  await new Promise((r) => socket.close(r));
  return port;
}

/**
 * Starts the service and the requested proxies.
 * @param {{ nexus?: boolean, mesh?: boolean, haproxy?: boolean, floor?: boolean, profileDir?: string, hostnames?: string[], udp?: boolean,
 *   nodeConfig?: object, hubDelayMs?: number, peerDelayMs?: number }} options
 *   `profileDir`: run the node child with `--cpu-prof` writing there. `hostnames`: names the service is
 *   published under, one backend child each behind the node (default: `APP_HOSTNAME`; the mesh and
 *   HAProxy serve the first). `nodeConfig`: configuration keys merged into the node child's. `udp`: the node
 *   relays a UDP port (`targets.nexus.udpPort`) to the service's UDP echo, claimed by the first backend
 *   (current era). `hubDelayMs`: the backends reach the hub through a delay line holding every chunk that
 *   long each way. `peerDelayMs`: node A of the mesh reaches node B through such a
 *   line (the mesh backend reaches B directly).
 */
export async function startTopology(options = {}) {
  const closers = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    const hostnames = options.hostnames ?? [APP_HOSTNAME];
    const appCert = await createSelfSignedCertificate({ dnsNames: hostnames });
    const service = await startChild('service', appCert);
    closers.push(() => service.close());
    const base = { servername: hostnames[0], ca: appCert.certPem };
    const targets = {
      direct: {
        name: 'direct',
        port: service.info.tlsPort,
        plainPort: service.info.plainPort,
        ...base,
        pids: [],
      },
    };
    const processes = { service };
    /** `port`, or a delay line's in front of it holding every chunk `delayMs` each way (a relay child). */
    const delayed = async (port, delayMs) => {
      if (!(delayMs > 0)) return port;
      const line = await startChild('relay', {
        inbound: 'plain',
        outbound: 'plain',
        targetPort: port,
        delayMs,
      });
      closers.push(() => line.close());
      return line.info.port;
    };
    const token = await mintBackendToken({ secret: SECRET, hostnames: [hostnames[0]] });
    /** Backend child options: relay port → service port (TLS streams to TLS, HTTP streams to plain). */
    const backendStart = (hubPort, hubCaPem, tlsRelayPort, httpRelayPort, token) => {
      const mappings = { [tlsRelayPort]: `127.0.0.1:${service.info.tlsPort}` };
      if (httpRelayPort !== undefined) mappings[httpRelayPort] = `127.0.0.1:${service.info.plainPort}`;
      return { hubPort, hubCaPem, token, mappings };
    };

    if (options.nexus !== false) {
      const hubCert = await createSelfSignedCertificate({
        dnsNames: ['hub.bench.test'],
        ipAddresses: ['127.0.0.1'],
      });
      // Extra node flags for the node child only (e.g. BENCH_NODE_ARGS=--trace-gc), for investigations.
      const execArgv = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
      if (options.profileDir !== undefined) {
        mkdirSync(options.profileDir, { recursive: true });
        execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.profileDir}`);
      }
      const udpPort = options.udp ? await freeUdpPort() : undefined;
      // The UDP relay (docs/edge.md "UDP relay"): one port, claimable by the backend.
      const udpConfig =
        udpPort === undefined
          ? {}
          : { udpRelayPorts: [udpPort], allowedUDPPortClaims: [udpPort], bindHost: '127.0.0.1' };
      const node = await startChild(
        'node',
        { ...hubCert, secret: SECRET, config: { ...options.nodeConfig, ...udpConfig } },
        { execArgv },
      );
      closers.push(() => node.close());
      // Same for the backend child (e.g. BENCH_BACKEND_ARGS="--cpu-prof --cpu-prof-dir=bench/results/profiles").
      const backendArgv = (process.env.BENCH_BACKEND_ARGS ?? '').split(' ').filter(Boolean);
      const backends = [];
      // A delay line between the backends and the hub: a round trip of twice `hubDelayMs` on the hub link.
      const hubPort = await delayed(node.info.hubPort, options.hubDelayMs);
      for (const hostname of hostnames) {
        const start = backendStart(
          hubPort,
          hubCert.certPem,
          node.info.tlsPort,
          node.info.httpPort,
          await mintBackendToken({ secret: SECRET, hostnames: [hostname] }),
        );
        if (udpPort !== undefined && backends.length === 0) {
          // The current era, to claim the UDP port; its flows go to the service's UDP echo.
          start.mappings[udpPort] = `127.0.0.1:${service.info.udpPort}`;
          start.attest = { secret: SECRET, hostnames: [hostname], udpRoutes: [{ port: udpPort }] };
        }
        const backend = await startChild('backend', start, { execArgv: backendArgv });
        closers.push(() => backend.close());
        backends.push(backend);
      }
      await waitUntil(
        async () => (await node.call('stats')).backends >= hostnames.length,
        'the backend sessions',
      );
      targets.nexus = {
        name: 'nexus',
        port: node.info.tlsPort,
        plainPort: node.info.httpPort,
        udpPort,
        ...base,
        // The proxy's own processes on this path (their CPU per MB is reported beside the rate).
        pids: [node.pid, backends[0].pid],
      };
      targets.direct.udpPort = service.info.udpPort;
      processes.node = node;
      processes.backend = backends[0];
      processes.backends = backends;
    }

    if (options.mesh && (await meshAvailable())) {
      // Node A has no backend: it tunnels to node B, where the backend is attached.
      const ca = await createCertificateAuthority({ commonName: 'Bench Mesh CA' });
      const cert = (name) =>
        issueCertificate(ca, { dnsNames: [`${name}${MESH_SUFFIX}`], ipAddresses: ['127.0.0.1'] });
      const mesh = { caPem: ca.certPem, suffix: MESH_SUFFIX, appHostname: hostnames[0] };
      // The node flags of BENCH_NODE_ARGS apply to both mesh nodes too.
      const meshArgv = { execArgv: (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean) };
      const b = await startChild(
        'node',
        { ...(await cert('b')), secret: SECRET, mesh: { ...mesh, peers: [] } },
        meshArgv,
      );
      closers.push(() => b.close());
      // A delay line on the peer link: a round trip of twice `peerDelayMs` between the two nodes.
      const peerPort = await delayed(b.info.peerPort, options.peerDelayMs);
      const peers = [`wss://127.0.0.1:${peerPort}/mesh`];
      const a = await startChild(
        'node',
        { ...(await cert('a')), secret: SECRET, mesh: { ...mesh, peers } },
        meshArgv,
      );
      closers.push(() => a.close());
      // connPort of a tunnelled stream is the origin node's relay port (docs/protocol.md §2.4).
      const meshBackend = await startChild(
        'backend',
        backendStart(b.info.hubPort, ca.certPem, a.info.tlsPort, undefined, token),
      );
      closers.push(() => meshBackend.close());
      await waitUntil(async () => (await a.call('stats')).peerRoute === true, 'the peer route on node A');
      targets.mesh = { name: 'mesh', port: a.info.tlsPort, ...base, pids: [a.pid, b.pid, meshBackend.pid] };
      processes.meshA = a;
      processes.meshB = b;
    }

    if (options.floor) {
      const hop = await createSelfSignedCertificate({ dnsNames: ['hub.bench.test'] });
      const tls = { certPem: hop.certPem, keyPem: hop.keyPem, caPem: hop.certPem };
      const relay = async (inbound, outbound, targetPort) => {
        const child = await startChild('relay', { inbound, outbound, targetPort, ...tls });
        closers.push(() => child.close());
        return child;
      };
      // One hop: end user → front (plain in, TLS out) → back (TLS in, plain out) → service.
      const back = await relay('tls', 'plain', service.info.tlsPort);
      const front = await relay('plain', 'tls', back.info.port);
      targets.floor1 = { name: 'floor1', port: front.info.port, ...base, pids: [front.pid, back.pid] };
      // Two hops: front → middle (TLS in, TLS out) → back.
      const middle = await relay('tls', 'tls', back.info.port);
      const front2 = await relay('plain', 'tls', middle.info.port);
      targets.floor2 = {
        name: 'floor2',
        port: front2.info.port,
        ...base,
        pids: [front2.pid, middle.pid, back.pid],
      };
      processes.floor1 = [front, back];
      processes.floor2 = [front2, middle, back];
    }

    if (options.haproxy && haproxyAvailable()) {
      const haproxy = await startHaproxy(service.info.tlsPort, hostnames[0]);
      closers.push(() => haproxy.close());
      targets.haproxy = { name: 'haproxy', port: haproxy.port, ...base, pids: [haproxy.pid] };
    }
    return { targets, processes, close };
  } catch (err) {
    await close();
    throw err;
  }
}
