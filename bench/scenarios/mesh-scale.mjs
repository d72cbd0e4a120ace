// The fleet benchmark (issue 15, docs/mesh.md "Scaling"): N node processes on loopback, as a full mesh
// (every node lists every other) and with NATS discovery (no node lists a peer), side by side.
//   links up    — full mesh: time from the last node listening until every node has a link to every other;
//                 discovery: nodes link only on demand, so this is 0 links and no wait;
//   RSS         — per node, after the links are up (mean and max over the nodes);
//   CPU         — full mesh: the node processes' CPU time (user + system) when every link is up, mean per
//                 node since it started, and the fleet's sum from the last node listening (the nodes started
//                 earlier dialled meanwhile): counts that hold on a loaded machine better than the wall clock;
//   checks      — full mesh: peer certificates the fleet's listeners checked, and how many of them went to
//                 PKI.js's chain validation (a leaf issued by the mesh CA never does: docs/mesh.md);
//   convergence — a backend (the project's backend client) attaches to node 0 with a new name: time from its
//                 connection until every node routes the name to a peer;
//   per change  — messages and bytes that one node (the last) received for that change: peer link
//                 messages from the mesh's counters (what /metrics exposes as nexus_peer_messages_total and
//                 nexus_peer_bytes_total), and with discovery the NATS client's counters.
// `npm run bench -- mesh-scale [--nodes 5,20,40,60] [--modes full,nats]`; `--quick` runs 5 and 10. NATS rows
// need `nats-server` (NATS_SERVER or the PATH).
import { createCertificateAuthority, issueCertificate, mintBackendToken } from '@nexus-proxy/core';
import { natsServerAvailable, startNatsServer } from '@nexus-proxy/test-harness/nats-server';
import { portsToBind } from '@nexus-proxy/test-harness/ports';
import { round } from '../lib/load.mjs';
import { MESH_SUFFIX, SECRET, startChild } from '../lib/topology.mjs';

const MiB = 2 ** 20;
/** The name the backend brings (its route converges on every node). */
const CHANGE_HOSTNAME = 'change.bench.test';
/** Forks in flight at once while starting nodes (each start costs a process and a TLS context). */
const START_CONCURRENCY = 8;
/** Liveness TTL of the discovery rows, seconds (the default). */
const TTL_SECONDS = 15;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, what, ms) {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
  return performance.now() - started;
}

async function inBatches(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

const statsOf = (nodes) => Promise.all(nodes.map((n) => n.call('stats')));

/** Remote nodes a node holds a link to: outbound links name a URL (its port), inbound ones a certificate. */
function linkedNodes(stats, portToIndex) {
  const seen = new Set();
  for (const peer of stats.linkedPeers) {
    const byName = /^n(\d+)\./.exec(peer);
    if (byName !== null) seen.add(Number(byName[1]));
    else {
      const port = Number(/:(\d+)\/mesh$/.exec(peer)?.[1]);
      if (portToIndex.has(port)) seen.add(portToIndex.get(port));
    }
  }
  return seen.size;
}

function received(stats, mode) {
  if (mode === 'nats') {
    const t = stats.discovery?.traffic?.in ?? { messages: 0, bytes: 0 };
    return { messages: t.messages, bytes: t.bytes };
  }
  let messages = 0;
  let bytes = 0;
  for (const counts of Object.values(stats.peerIn ?? {})) {
    messages += counts.messages;
    bytes += counts.bytes;
  }
  return { messages, bytes };
}

async function runOne(n, mode, nats) {
  const ca = await createCertificateAuthority({ commonName: 'Bench Fleet CA' });
  // Below the ephemeral range: the outbound sockets of N nodes dialling each other cannot take them first.
  const ports = await portsToBind(n);
  const portToIndex = new Map(ports.map((p, i) => [p, i]));
  const bucket = `bench-${n}-${Date.now()}`;
  const nodes = [];
  const closers = [];
  try {
    await inBatches(ports, START_CONCURRENCY, async (port, i) => {
      const cert = await issueCertificate(ca, {
        dnsNames: [`n${i}${MESH_SUFFIX}`],
        ipAddresses: ['127.0.0.1'],
      });
      const mesh = {
        caPem: ca.certPem,
        suffix: MESH_SUFFIX,
        appHostname: CHANGE_HOSTNAME,
        peerPort: port,
        peers: mode === 'full' ? ports.filter((p) => p !== port).map((p) => `wss://127.0.0.1:${p}/mesh`) : [],
        ...(mode === 'nats'
          ? { discovery: { nats: { servers: [nats.url], bucket, ttlSeconds: TTL_SECONDS } } }
          : {}),
      };
      const node = await startChild('node', { ...cert, secret: SECRET, mesh });
      nodes[i] = node;
      closers.push(() => node.close());
    });
    const listeningStats = mode === 'full' ? await statsOf(nodes) : [];
    let linkedStats = [];
    const linksUpMs =
      mode === 'full'
        ? await waitFor(
            async () => {
              linkedStats = await statsOf(nodes);
              return linkedStats.every((s) => linkedNodes(s, portToIndex) >= n - 1);
            },
            `${n} nodes fully linked`,
            300_000,
          )
        : 0;
    const cpuMs = linkedStats.map((s, i) => (s.cpuUs - listeningStats[i].cpuUs) / 1_000);
    if (mode === 'nats') {
      await waitFor(
        async () => (await statsOf(nodes)).every((s) => s.discovery?.state === 'connected'),
        'discovery connected',
        60_000,
      );
    }
    await sleep(1_000); // let the start-up announces settle before counting one change
    const before = await statsOf(nodes);
    const observer = nodes[n - 1];
    const observedBefore = received(before[n - 1], mode);

    const token = await mintBackendToken({ secret: SECRET, hostnames: [CHANGE_HOSTNAME] });
    const backend = await startChild('backend', {
      hubPort: nodes[0].info.hubPort,
      hubCaPem: ca.certPem,
      token,
      mappings: { [nodes[0].info.tlsPort]: '127.0.0.1:9' },
    });
    closers.push(() => backend.close());
    const convergedMs = await waitFor(
      async () => (await statsOf(nodes.slice(1))).every((s) => s.peerRoute),
      `${CHANGE_HOSTNAME} routed everywhere`,
      60_000,
    );
    const observedAfter = received(await observer.call('stats'), mode);
    const after = await statsOf(nodes);
    const rss = after.map((s) => s.rss);
    return {
      nodes: n,
      mode: mode === 'full' ? 'full mesh' : 'NATS discovery',
      'links per node': round(after.reduce((t, s) => t + s.links, 0) / n, 1),
      'links up after last listens (s)': mode === 'full' ? round(linksUpMs / 1_000, 2) : 'n/a (on demand)',
      // Every node's dials of its configured peers that timed out (a refused dial of a node not yet
      // listening is expected at start and not counted here).
      'dial time-outs': after.reduce((t, s) => t + (s.dialTimeouts ?? 0), 0),
      'CPU per node since start, at linked (ms)':
        mode === 'full' ? Math.round(linkedStats.reduce((t, s) => t + s.cpuUs, 0) / n / 1_000) : 'n/a',
      'fleet CPU last listening → linked (s)':
        mode === 'full' ? round(cpuMs.reduce((a, b) => a + b, 0) / 1_000, 1) : 'n/a',
      'certificate checks (by PKI.js)':
        mode === 'full'
          ? `${linkedStats.reduce((t, s) => t + s.certificateChecks.direct + s.certificateChecks.full, 0)} (${linkedStats.reduce((t, s) => t + s.certificateChecks.full, 0)})`
          : 'n/a',
      'RSS per node mean (MiB)': round(rss.reduce((a, b) => a + b, 0) / n / MiB, 1),
      'RSS per node max (MiB)': round(Math.max(...rss) / MiB, 1),
      'route convergence (ms)': Math.round(convergedMs),
      'msgs per change at one node': observedAfter.messages - observedBefore.messages,
      'bytes per change at one node': observedAfter.bytes - observedBefore.bytes,
    };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

export async function run({ quick, nodes: sizes, modes: wantedModes }) {
  const counts = sizes ?? (quick ? [5, 10] : [5, 20, 40, 60]);
  const modes = wantedModes ?? ['full', 'nats'];
  const notes = [
    'per change: what the last node received between the backend attaching to node 0 and every node routing its name; with discovery this includes the heartbeats of the other nodes that arrived meanwhile (one per node every TTL/3 = 5 s)',
    'convergence counts from the backend client reporting its connection (its registration at node 0 follows at once)',
  ];
  let nats;
  if (modes.includes('nats')) {
    if (natsServerAvailable()) nats = await startNatsServer();
    else notes.push('NATS rows skipped: nats-server not found (set NATS_SERVER or install it)');
  }
  const rows = [];
  try {
    for (const n of counts) {
      for (const mode of modes) {
        if (mode === 'nats' && nats === undefined) continue;
        rows.push(await runOne(n, mode, nats));
      }
    }
  } finally {
    await nats?.remove();
  }
  return { title: 'mesh at fleet scale (N node processes on loopback)', rows, notes };
}
