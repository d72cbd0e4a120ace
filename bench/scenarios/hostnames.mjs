// Many hostnames on one node (docs/mesh.md "Limits"): 10 backend sessions (quick: 3) with 1 000 names each
// register at node B, which has one mesh peer, node A. Measured: the time from the first backend dialling
// to all names in B's routing table and to all of them routed at A, B's RSS (settled before, peak during,
// settled after), and the peer messages and bytes A received for them (route deltas between Nexus nodes).
// The backends run in this process (real backend clients, real TLS WebSockets); the nodes in their own.
import { once } from 'node:events';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import { createCertificateAuthority, issueCertificate, mintBackendToken } from '@nexus-proxy/core';
import { goal, round } from '../lib/load.mjs';
import { MESH_SUFFIX, SECRET, startChild } from '../lib/topology.mjs';

const MiB = 2 ** 20;
const NAMES_PER_BACKEND = 1_000;
/** Targets (issue 15): all names registered within a couple of seconds, node RSS under 300 MB. */
const TIME_TARGET_MS = 2_000;
const RSS_TARGET = 300 * 1e6;

async function waitFor(check, what, ms) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function settledRss(child) {
  await child.call('reset-peak', { gc: true });
  await new Promise((r) => setTimeout(r, 300));
  return (await child.call('reset-peak', { gc: true })).rss;
}

function messages(counts) {
  return Object.values(counts ?? {}).reduce((sum, c) => sum + c.messages, 0);
}

function bytes(counts) {
  return Object.values(counts ?? {}).reduce((sum, c) => sum + c.bytes, 0);
}

export async function run({ quick }) {
  const backends = quick ? 3 : 10;
  const total = backends * NAMES_PER_BACKEND;
  const ca = await createCertificateAuthority({ commonName: 'Bench Hostnames CA' });
  const cert = (name) =>
    issueCertificate(ca, { dnsNames: [`${name}${MESH_SUFFIX}`], ipAddresses: ['127.0.0.1'] });
  const mesh = { caPem: ca.certPem, suffix: MESH_SUFFIX, appHostname: 'none.bench.test' };
  const closers = [];
  try {
    const b = await startChild('node', {
      ...(await cert('b')),
      secret: SECRET,
      mesh: { ...mesh, peers: [] },
    });
    closers.push(() => b.close());
    const a = await startChild('node', {
      ...(await cert('a')),
      secret: SECRET,
      mesh: { ...mesh, peers: [`wss://127.0.0.1:${b.info.peerPort}/mesh`] },
    });
    closers.push(() => a.close());
    await waitFor(async () => (await a.call('stats')).links === 1, 'the mesh link', 10_000);
    await waitFor(async () => messages((await a.call('stats')).peerIn) >= 1, 'the first announce', 10_000);

    const tokens = await Promise.all(
      Array.from({ length: backends }, (_, n) =>
        mintBackendToken({
          secret: SECRET,
          hostnames: Array.from({ length: NAMES_PER_BACKEND }, (_, i) => `h${i}-b${n}.names.bench.test`),
        }),
      ),
    );
    const rssBefore = await settledRss(b);
    const inBefore = (await a.call('stats')).peerIn;
    const clients = tokens.map((token) => {
      const client = createBackendClient({
        nodes: [`wss://127.0.0.1:${b.info.hubPort}/connect`],
        token,
        tls: { ca: ca.certPem },
        portMappings: resolvePortMappings({ [b.info.tlsPort]: '127.0.0.1:9' }),
      });
      client.on('error', () => {});
      return client;
    });
    closers.push(() => Promise.all(clients.map((c) => c.close({ graceMs: 0 }))));
    const started = performance.now();
    const connected = clients.map((c) => once(c, 'connected'));
    for (const c of clients) c.connect();
    await Promise.all(connected);
    await waitFor(async () => (await b.call('stats')).localRoutes >= total, `${total} names at B`, 60_000);
    const registeredMs = performance.now() - started;
    await waitFor(async () => (await a.call('stats')).peerRoutes >= total, `${total} routes at A`, 60_000);
    const routedMs = performance.now() - started;
    const peak = (await b.call('stats')).peakRss;
    const rssAfter = await settledRss(b);
    // Past the coalescing window: everything B sends for these names has arrived.
    await new Promise((r) => setTimeout(r, 200));
    const inAfter = (await a.call('stats')).peerIn;
    const msgs = messages(inAfter) - messages(inBefore);
    const byteCount = bytes(inAfter) - bytes(inBefore);
    return {
      title: `Hostnames: ${backends} backends × ${NAMES_PER_BACKEND} names at one node, one mesh peer`,
      rows: [
        {
          case: 'register all names',
          names: total,
          'registered at B ms': round(registeredMs, 0),
          'routed at A ms': round(routedMs, 0),
          'B RSS before MiB': round(rssBefore / MiB, 1),
          'B RSS peak MiB': round(peak / MiB, 1),
          'B RSS after MiB': round(rssAfter / MiB, 1),
          'messages at A': msgs,
          'bytes at A': byteCount,
          'bytes per name at A': round(byteCount / total, 1),
        },
      ],
      targets: [
        goal(
          `${total} names registered`,
          `< ${TIME_TARGET_MS} ms`,
          `${round(registeredMs, 0)} ms`,
          registeredMs < TIME_TARGET_MS,
        ),
        goal('node RSS (peak)', '< 300 MB', `${round(peak / 1e6, 0)} MB`, peak < RSS_TARGET),
      ],
      notes: [
        'messages at A: route deltas from B, coalesced (announceCoalesceMs, 20 ms); a backend whose names arrive within one window shares a message with the others.',
      ],
    };
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {});
  }
}
