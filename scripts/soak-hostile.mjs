/**
 * The hostile mix of the soak (scripts/soak.mjs), run beside the honest load against the same nodes with
 * their default limits. Each attacker uses a loopback address of its own, so the nodes' per-address
 * limits tell them apart from the honest end users (127.0.0.1):
 *
 * - flooding backend (a token holder): registers `flood.soak.test` over a raw WebSocket, takes one stream,
 *   grants credits once, then stops reading its WebSocket and sends empty DATA frames and data as fast as
 *   its socket takes them; once a node closes it, it comes back and does it again;
 * - idle sockets from 127.0.0.2: hundreds of connections to both relay modes that never send a byte,
 *   reopened when a node closes them;
 * - slowloris from 127.0.0.3, on both relay modes: a ClientHello (TLS) or an HTTP head that never ends,
 *   one byte per second;
 * - garbage from 127.0.0.4: random bytes, two `Host` headers, 200 KB heads;
 * - announce flood: a fake peer with a certificate the mesh trusts links to every node and announces
 *   thousands of hostnames of its own, a new set every 200 ms.
 *
 * `startHostileMix()` starts them all and returns `stop()` and `report()`: what each attacker did and what
 * it achieved (how long it held what it took, and which limit closed it, as the nodes reported it).
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  encodePeerMessage,
} from '@nexus-proxy/mux-protocol';
import { issueCertificate, mintBackendToken } from '@nexus-proxy/core';
import WebSocket from 'ws';

export const FLOOD_HOST = 'flood.soak.test';
const IDLE_FROM = '127.0.0.2';
const SLOWLORIS_FROM = '127.0.0.3';
const GARBAGE_FROM = '127.0.0.4';
/** The flooding backend's own end user. */
const FLOOD_USER_FROM = '127.0.0.5';
/** Idle sockets held per node (more than the default concurrent-sniff budget of 256). */
const IDLE_PER_NODE = 300;
/** Slowloris connections per node and relay mode. */
const SLOWLORIS_PER_MODE = 50;
/** Hostnames in each announce of the fake peer. */
const ANNOUNCE_NAMES = 5_000;
const ANNOUNCE_EVERY_MS = 200;
/** An attacker whose connection was closed comes back after this long, ms. */
const RETRY_MS = 1_000;
/** Most bytes an attacker lets its own WebSocket buffer (it floods as fast as its socket takes them). */
const ATTACKER_BUFFER = 1024 * 1024;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bump = (map, key, by = 1) => map.set(key, (map.get(key) ?? 0) + by);
const summary = (values) => {
  if (values.length === 0) return { count: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    median: sorted[Math.floor(sorted.length / 2)],
    max: sorted.at(-1),
  };
};

/** The first bytes a real TLS client sends for `servername`: its ClientHello. */
async function captureClientHello(servername) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const got = new Promise((resolve) =>
    server.once('connection', (s) => s.once('data', (d) => resolve(Buffer.from(d)))),
  );
  const client = tlsConnect({ port: server.address().port, host: '127.0.0.1', servername });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

/**
 * @param {object} o
 * @param {Array<{name: string, nexus: any, hubUrl: string, peerUrl?: string, tls: number, http: number}>} o.nodes
 * @param {{certPem: string, keyPem: string}} o.ca  the CA every node trusts (hub TLS and peers)
 * @param {string} o.secret  backend JWT secret
 * @param {string} o.suffix  trusted peer suffix
 * @param {() => boolean} o.running
 */
export async function startHostileMix({ nodes, ca, secret, suffix, running }) {
  const sockets = new Set();
  const track = (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    return socket;
  };
  const modeOf = new Map(); // relay port → `${node} ${mode}`
  for (const n of nodes) {
    modeOf.set(n.tls, `${n.name} tls`);
    modeOf.set(n.http, `${n.name} http`);
  }

  // What the nodes reported about each attacker address, by relay mode and reason.
  const closedBy = new Map([
    [IDLE_FROM, new Map()],
    [SLOWLORIS_FROM, new Map()],
    [GARBAGE_FROM, new Map()],
  ]);
  for (const n of nodes) {
    n.nexus.on('sniff-failed', (e) => {
      if (!running()) return; // the nodes' own shutdown
      const byReason = closedBy.get(e.remoteAddress);
      if (byReason !== undefined) bump(byReason, `${modeOf.get(e.port) ?? e.port}: ${e.reason}`);
    });
  }

  // ─────────── idle sockets (127.0.0.2) and slowloris (127.0.0.3) ───────────

  const idle = { opened: 0, refused: 0, open: 0, maxOpen: 0, heldMs: [] };
  const slowloris = { opened: 0, refused: 0, open: 0, maxOpen: 0, heldMs: [], bytesDripped: [] };
  const hello = await captureClientHello('web.soak.test');
  const headStart = Buffer.from('GET / HTTP/1.1\r\nHost: web.soak.test\r\n');

  /** Keeps one attacker connection to `port` from `from` open, reopening it after each close. */
  async function hold(stats, port, from, drip) {
    while (running()) {
      const socket = track(connect({ port, host: '127.0.0.1', localAddress: from }));
      socket.on('error', () => {});
      const opened = await new Promise((resolve) => {
        socket.once('connect', () => resolve(true));
        socket.once('close', () => resolve(false));
      });
      if (!opened) {
        stats.refused++;
        await sleep(RETRY_MS);
        continue;
      }
      stats.opened++;
      stats.open++;
      stats.maxOpen = Math.max(stats.maxOpen, stats.open);
      const since = Date.now();
      let sent = 0;
      let timer;
      if (drip !== undefined) {
        timer = setInterval(() => {
          const next = drip(sent);
          if (socket.writable) socket.write(next);
          sent += next.length;
        }, 1_000);
      }
      await new Promise((resolve) => socket.once('close', resolve));
      clearInterval(timer);
      stats.open--;
      if (running()) {
        stats.heldMs.push(Date.now() - since);
        if (drip !== undefined) stats.bytesDripped.push(sent);
      }
      await sleep(RETRY_MS);
    }
  }

  const tasks = [];
  for (const n of nodes) {
    for (let i = 0; i < IDLE_PER_NODE; i++) tasks.push(hold(idle, i % 2 ? n.tls : n.http, IDLE_FROM));
    for (let i = 0; i < SLOWLORIS_PER_MODE; i++) {
      tasks.push(hold(slowloris, n.tls, SLOWLORIS_FROM, (sent) => hello.subarray(sent, sent + 1)));
      // An HTTP head that never ends: the request line and Host, then one header byte per second.
      tasks.push(
        hold(slowloris, n.http, SLOWLORIS_FROM, (sent) =>
          sent < headStart.length ? headStart.subarray(sent, sent + 1) : Buffer.from('x'),
        ),
      );
    }
  }

  // ─────────── garbage (127.0.0.4) ───────────

  const garbage = { sent: 0, answered: 0 };
  tasks.push(
    (async () => {
      while (running()) {
        const n = nodes[garbage.sent % nodes.length];
        const kind = garbage.sent % 3;
        garbage.sent++;
        const socket = track(
          connect({ port: kind === 0 ? n.tls : n.http, host: '127.0.0.1', localAddress: GARBAGE_FROM }),
        );
        socket.on('error', () => {});
        socket.on('data', (d) => {
          garbage.answered += d.length;
        });
        socket.once('connect', () => {
          if (kind === 0) socket.write(randomBytes(1 + Math.floor(Math.random() * 4_096)));
          else if (kind === 1) socket.write('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
          else socket.write(Buffer.alloc(200_000, 'A'));
        });
        setTimeout(() => socket.destroy(), 5_000).unref();
        await sleep(20 + Math.floor(Math.random() * 180));
      }
    })(),
  );

  // ─────────── flooding backend (a token holder) ───────────

  const flood = {
    sessions: 0,
    streams: 0,
    framesSent: 0,
    emptyFramesSent: 0,
    bytesSent: 0,
    lastedMs: [],
    closedByNode: new Map(),
    closeSeen: new Map(),
  };
  const floodNode = nodes.at(-1);
  const floodSessions = new Map(); // node's session id → when it registered
  let onNodeClosed = () => {};
  floodNode.nexus.on('backend-connected', (e) => {
    if (e.hostnames.includes(FLOOD_HOST)) floodSessions.set(e.id, Date.now());
  });
  floodNode.nexus.on('backend-disconnected', (e) => {
    const since = floodSessions.get(e.id);
    if (since === undefined) return;
    floodSessions.delete(e.id);
    if (running()) {
      bump(flood.closedByNode, e.reason);
      flood.lastedMs.push(Date.now() - since);
    }
    onNodeClosed();
  });
  const floodToken = await mintBackendToken({ secret, hostnames: [FLOOD_HOST] });
  const chunk = randomBytes(1_024);

  /** One flooding session: returns once the node has closed it. */
  async function floodOnce() {
    let nodeClosed = false;
    onNodeClosed = () => {
      nodeClosed = true;
    };
    const ws = new WebSocket(floodNode.hubUrl, { ca: ca.certPem, perMessageDeflate: false });
    ws.on('error', () => {});
    const closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve(`${code} ${reason.toString() || '(no reason)'}`)),
    );
    const stream = new Promise((resolve) => {
      ws.on('message', (data, isBinary) => {
        if (!isBinary) return;
        const decoded = decodeBackendMessage(data);
        if (decoded.ok && decoded.value.type === 'control' && decoded.value.message.event === 'connect')
          resolve(decoded.value.message.client_id);
      });
    });
    ws.once('open', () => ws.send(floodToken));
    const opened = await Promise.race([
      new Promise((r) => ws.once('open', () => r(true))),
      closed.then(() => false),
    ]);
    if (!opened) {
      bump(flood.closeSeen, `before open: ${await closed}`);
      return;
    }
    flood.sessions++;
    // An end user of the flooder's own hostname, reading everything: its reads make the node grant.
    // Retried until the node opens its stream (a node may turn it away while it is under attack).
    let user;
    let id;
    let wsClosed = false;
    closed.then(() => {
      wsClosed = true;
    });
    while (id === undefined && !wsClosed && running()) {
      user?.destroy();
      user = track(connect({ port: floodNode.http, host: '127.0.0.1', localAddress: FLOOD_USER_FROM }));
      user.on('error', () => {});
      user.on('data', () => {});
      user.write(`GET /flood HTTP/1.1\r\nHost: ${FLOOD_HOST}\r\n\r\n`);
      id = await Promise.race([stream, closed.then(() => undefined), sleep(1_000)]);
    }
    if (id === undefined) {
      if (wsClosed) bump(flood.closeSeen, `before a stream: ${await closed}`);
      else ws.terminate();
      user?.destroy();
      return;
    }
    flood.streams++;
    // Grant once, then never read the WebSocket again.
    ws.send(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 64 }));
    ws.pause();
    const empty = encodeDataFrame(id, new Uint8Array(0));
    const full = encodeDataFrame(id, chunk);
    let open = true;
    closed.then(() => {
      open = false;
    });
    // Not reading, the attacker would see the node's close only much later: it stops when the node has
    // closed its session.
    while (open && !nodeClosed && running()) {
      for (let i = 0; i < 256 && ws.bufferedAmount < ATTACKER_BUFFER; i++) {
        const frame = i % 16 === 0 ? full : empty;
        ws.send(frame);
        flood.framesSent++;
        if (frame === empty) flood.emptyFramesSent++;
        else flood.bytesSent += chunk.length;
      }
      await new Promise((r) => setImmediate(r));
    }
    if (open) {
      ws.terminate();
      if (running()) bump(flood.closeSeen, 'gave up: the node closed the session, no close frame read');
    } else if (running()) bump(flood.closeSeen, await closed);
    await closed;
    user.destroy();
  }
  tasks.push(
    (async () => {
      while (running()) {
        await floodOnce();
        await sleep(RETRY_MS);
      }
    })(),
  );

  // ─────────── announce flood from a fake peer ───────────

  const announce = {
    links: 0,
    announces: 0,
    namesAnnounced: 0,
    maxRoutesAccepted: new Map(),
    closedByNode: new Map(),
    refused: new Map(),
  };
  const meshNodes = nodes.filter((n) => n.peerUrl !== undefined);
  if (meshNodes.length > 0) {
    const cert = await issueCertificate(ca, {
      dnsNames: [`flood.${suffix}`],
      serverAuth: true,
      clientAuth: true,
    });
    for (const n of meshNodes) {
      n.nexus.on('routes-changed', (e) => {
        if (!String(e.peer).includes('flood')) return;
        const best = announce.maxRoutesAccepted.get(n.name) ?? 0;
        announce.maxRoutesAccepted.set(n.name, Math.max(best, e.hostnames.length));
      });
      n.nexus.on('peer-disconnected', (e) => {
        if (running() && String(e.peer).includes('flood'))
          bump(announce.closedByNode, `${n.name}: ${e.reason}`);
      });
      n.nexus.on('peer-refused', (e) => bump(announce.refused, `${n.name}: ${e.reason}`));
    }
    let version = 1;
    const floodPeer = async (n) => {
      while (running()) {
        const ws = new WebSocket(n.peerUrl, {
          ca: ca.certPem,
          cert: cert.certPem,
          key: cert.keyPem,
          perMessageDeflate: false,
        });
        ws.on('error', () => {});
        const closed = new Promise((resolve) => ws.once('close', resolve));
        const opened = await Promise.race([
          new Promise((r) => ws.once('open', () => r(true))),
          closed.then(() => false),
        ]);
        if (opened) {
          announce.links++;
          let round = 0;
          while (ws.readyState === WebSocket.OPEN && running()) {
            if (ws.bufferedAmount < ATTACKER_BUFFER) {
              const tag = `${round++}-${randomBytes(3).toString('hex')}`;
              const hostnames = Array.from(
                { length: ANNOUNCE_NAMES },
                (_, i) => `n${i}-${tag}.peer-flood.test`,
              );
              ws.send(encodePeerMessage({ type: 'announce', version: version++, hostnames }));
              announce.announces++;
              announce.namesAnnounced += hostnames.length;
            }
            await Promise.race([sleep(ANNOUNCE_EVERY_MS), closed]);
          }
          if (ws.readyState === WebSocket.OPEN) ws.terminate();
        }
        await closed;
        await sleep(RETRY_MS);
      }
    };
    for (const n of meshNodes) tasks.push(floodPeer(n));
  }

  return {
    /** Waits for every attacker to stop (once `running()` is false) and closes what is left. */
    async stop() {
      for (const s of sockets) s.destroy();
      const timeout = sleep(5_000).then(() => {
        for (const s of sockets) s.destroy();
      });
      await Promise.race([Promise.all(tasks), timeout]);
      for (const s of sockets) s.destroy();
    },
    report() {
      const entries = (map) => Object.fromEntries([...map].sort((a, b) => b[1] - a[1]));
      return {
        floodingBackend: {
          what: `${FLOOD_HOST}: one stream, one grant, never reads its WebSocket, floods DATA (15 of 16 empty)`,
          sessions: flood.sessions,
          streams: flood.streams,
          framesSent: flood.framesSent,
          emptyFramesSent: flood.emptyFramesSent,
          payloadBytesSent: flood.bytesSent,
          sessionLastedMs: summary(flood.lastedMs),
          closedByNode: entries(flood.closedByNode),
          closeSeenByAttacker: entries(flood.closeSeen),
        },
        idleSockets: {
          what: `${IDLE_PER_NODE} per node from ${IDLE_FROM}, both relay modes, never a byte`,
          opened: idle.opened,
          refusedAtConnect: idle.refused,
          maxOpenAtOnce: idle.maxOpen,
          heldMs: summary(idle.heldMs),
          closedByNode: entries(closedBy.get(IDLE_FROM)),
        },
        slowloris: {
          what: `${SLOWLORIS_PER_MODE} per node and relay mode from ${SLOWLORIS_FROM}, one byte per second`,
          opened: slowloris.opened,
          refusedAtConnect: slowloris.refused,
          maxOpenAtOnce: slowloris.maxOpen,
          heldMs: summary(slowloris.heldMs),
          bytesDripped: summary(slowloris.bytesDripped),
          closedByNode: entries(closedBy.get(SLOWLORIS_FROM)),
        },
        garbage: {
          what: `random bytes, two Host headers, 200 KB heads from ${GARBAGE_FROM}`,
          connections: garbage.sent,
          bytesAnsweredByNodes: garbage.answered,
          closedByNode: entries(closedBy.get(GARBAGE_FROM)),
        },
        announceFlood: {
          what: `a trusted fake peer announcing ${ANNOUNCE_NAMES} names of its own every ${ANNOUNCE_EVERY_MS} ms`,
          links: announce.links,
          announces: announce.announces,
          namesAnnounced: announce.namesAnnounced,
          maxRoutesAccepted: Object.fromEntries(announce.maxRoutesAccepted),
          linksClosedByNode: entries(announce.closedByNode),
          refusedByNode: entries(announce.refused),
        },
      };
    },
  };
}
