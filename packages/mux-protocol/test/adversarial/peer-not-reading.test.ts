/**
 * Attack: a peer stops reading its WebSocket and keeps sending messages that the engine answers (here
 * `ping_client`, answered with `pong_client`), so the answers pile up in the victim's send queue. The
 * engine stops reading from a peer whose queue is over `backlogLimit`, so nothing it sends can make the
 * victim queue more, and closes the session (`peer-not-reading`) when the queue stays there past
 * `backlogGraceMs`. Both roles run the same engine: the hub facing a backend, the backend client facing
 * a hub. Real WebSockets on loopback.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  DEFAULT_BACKLOG_GRACE_MS,
  DEFAULT_BACKLOG_LIMIT,
  encodeControlMessage,
  type MuxSession,
  type MuxStream,
} from '../../src/index.js';
import { createFakeSession } from '../suites/fake-transport.js';
import type { Side } from '../suites/session.suite.js';
import { createWebSocketPair, socketOf, type WebSocketPair } from '../suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };
const LIMIT = 256 * 1024;
const GRACE_MS = 400;

const pairs: WebSocketPair[] = [];
afterEach(async () => {
  for (const pair of pairs.splice(0)) await pair.close();
});

/** A pair whose `victim` side has a small backlog limit and grace, with one stream open. */
async function setup(victim: Side, graceMs = GRACE_MS) {
  const limits = { backlogLimit: LIMIT, backlogGraceMs: graceMs };
  const pair = await createWebSocketPair(victim === 'hub' ? { hub: limits } : { backend: limits });
  pairs.push(pair);
  const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
  pair.hub.openStream(OPEN);
  const stream = await accepted;
  return { pair, id: stream.id };
}

/**
 * The attacker (the side opposite `victim`) stops reading and sends `ping_client` for `id` as fast as its
 * own socket takes them, until the victim's session closes or `maxMs` passes. Returns the largest queue
 * seen on the victim's socket.
 */
async function flood(pair: WebSocketPair, victim: Side, id: string, maxMs: number) {
  const attacker: Side = victim === 'hub' ? 'backend' : 'hub';
  const attackerWs = pair.sockets[attacker];
  const victimWs = pair.sockets[victim];
  const session: MuxSession = pair[victim];
  attackerWs.pause();
  const ping = encodeControlMessage({ event: 'ping_client', client_id: id });
  let maxQueued = 0;
  let sent = 0;
  const deadline = Date.now() + maxMs;
  while (!session.closed && Date.now() < deadline && attackerWs.readyState === WebSocket.OPEN) {
    for (let i = 0; i < 500 && attackerWs.bufferedAmount < 1024 * 1024; i++) {
      attackerWs.send(ping);
      sent++;
    }
    maxQueued = Math.max(maxQueued, victimWs.bufferedAmount);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { maxQueued, sent };
}

describe.each(['hub', 'backend'] as const)('a peer that stops reading, facing the %s', (victim) => {
  it('is no longer read once the queue passes backlogLimit, and is closed after backlogGraceMs', async () => {
    const { pair, id } = await setup(victim);
    const session = pair[victim];
    const aborted = new Promise<[string, string]>((resolve) =>
      session.once('abort', (reason, error) => resolve([reason, error.code])),
    );
    const started = Date.now();
    const { maxQueued, sent } = await flood(pair, victim, id, 20_000);
    console.log(
      `peer-not-reading (${victim}): ${sent} pings in ${Date.now() - started} ms; largest queue ` +
        `${(maxQueued / 1024).toFixed(0)} KiB with backlogLimit ${LIMIT / 1024} KiB`,
    );
    expect(await aborted).toEqual(['peer-not-reading', 'MUX_ERR_PEER_NOT_READING']);
    expect(session.closeReason).toBe('peer-not-reading');
    expect(session.stats().backlogPauses).toBe(1);
    expect(sent).toBeGreaterThan(0);
    // Reading stopped at the limit: at most one socket read's worth of answers (64 KiB of pings, about
    // 1 100 pongs) more was queued.
    expect(maxQueued).toBeLessThan(LIMIT + 128 * 1024);
  }, 30_000);

  it('is read again when it drains before the grace period ends, and keeps its session', async () => {
    // A grace period long enough for a loaded machine to drain the queue.
    const { pair, id } = await setup(victim, 5_000);
    const session = pair[victim];
    let aborted = false;
    session.once('abort', () => {
      aborted = true;
    });
    const attacker: Side = victim === 'hub' ? 'backend' : 'hub';
    const attackerWs = pair.sockets[attacker];
    const victimWs = pair.sockets[victim];
    const ping = encodeControlMessage({ event: 'ping_client', client_id: id });
    attackerWs.pause();
    while (!session.stats().transportPaused) {
      for (let i = 0; i < 500 && attackerWs.bufferedAmount < 1024 * 1024; i++) attackerWs.send(ping);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The attacker reads again well within the grace period: the queue drains, reading resumes.
    attackerWs.resume();
    await new Promise<void>((resolve) => {
      const check = () => (session.stats().transportPaused ? setTimeout(check, 10) : resolve());
      check();
    });
    expect(session.stats().backlogPauses).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(aborted).toBe(false);
    expect(session.closed).toBe(false);
    expect(victimWs.readyState).toBe(WebSocket.OPEN);
    expect(socketOf(victimWs).isPaused()).toBe(false);
  }, 30_000);
});

describe('by default', () => {
  it('stops reading past 4 MiB of unread queue and closes the session 30 s later', () => {
    vi.useFakeTimers();
    try {
      const fake = createFakeSession({ role: 'hub' });
      const reasons: string[] = [];
      fake.session.on('abort', (reason) => reasons.push(reason));
      fake.session.openStream(OPEN);
      fake.setBuffered(DEFAULT_BACKLOG_LIMIT);
      fake.session.openStream(OPEN); // a control message sent at exactly the limit: still read
      expect(fake.pauses).toBe(0);
      fake.setBuffered(DEFAULT_BACKLOG_LIMIT + 1);
      fake.session.openStream(OPEN);
      expect(fake.pauses).toBe(1);
      vi.advanceTimersByTime(DEFAULT_BACKLOG_GRACE_MS - 1);
      expect(fake.session.closed).toBe(false);
      vi.advanceTimersByTime(1);
      expect(reasons).toEqual(['peer-not-reading']);
      expect(fake.session.closeReason).toBe('peer-not-reading');
      expect(fake.resumes).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
