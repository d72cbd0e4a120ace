/**
 * Attack: end users upload to a backend that takes nothing (it stops reading its WebSocket: a hostile token
 * holder, or a stuck one), so each relay's stream holds what its end user's socket read until credits
 * come, up to its high-water mark. Before `limits.maxBufferedUploadBytes` nothing bounded how many relays
 * held that: every new end user added it to what the node's streams held. Now, once what they hold reaches
 * the bound, sockets read 16 KiB at a time (`UploadBudget`): a stuck relay adds a small read,
 * and a relay whose stream sends what it gets (another tenant's) is still served, at its own pace.
 * Real sockets, real nodes (one, then two in a mesh), a real backend client for the honest tenant; every
 * honest byte checked by SHA-256.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  exchangeThrough,
  MiB,
  rawBackend,
  startExchangeService,
  type TestNode,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { UPLOAD_READ_MIN } from '../../src/relay-uploads.js';
import { useTestNodes } from '../helpers/test-nodes.js';

const nodes = useTestNodes();
const { cleanups, node: startNode } = nodes;

/** End users uploading to the stuck backend. */
const STUCK_USERS = 160;
/** What each of them tries to send (more than the stuck session's window and transport take for all). */
const UPLOAD = 512 * 1024;
const BOUND = 512 * 1024;

/** A backend of `stuck.example.com` at `hub` that takes every stream and never reads its WebSocket again. */
async function stuckBackend(hub: TestNode, registered: () => boolean): Promise<WebSocket> {
  const attacker = await rawBackend(nodes.pki, hub.hubPort, await token(['stuck.example.com']));
  attacker.answer = false;
  cleanups.push(() => {
    if (attacker.ws.readyState !== WebSocket.CLOSED) attacker.ws.terminate();
  });
  await waitUntil(registered, 5_000, 'the stuck backend registered');
  attacker.ws.pause();
  return attacker.ws;
}

/**
 * Starts `users` end users at `entry` one after the other, each writing `UPLOAD` bytes to
 * `stuck.example.com`, and waits until what `counted`'s streams hold has stopped growing; returns the most
 * they held.
 */
async function uploadUntilSteady(entry: TestNode, counted: TestNode, users: number): Promise<number> {
  let peak = 0;
  const sample = setInterval(() => {
    peak = Math.max(peak, counted.nexus.bufferedUploads.bytes);
  }, 5);
  cleanups.push(() => clearInterval(sample));
  const payload = Buffer.alloc(UPLOAD, 0x61);
  for (let i = 0; i < users; i++) {
    const socket = netConnect({ host: '127.0.0.1', port: entry.httpPort });
    socket.on('error', () => {});
    cleanups.push(() => {
      socket.destroy();
    });
    await once(socket, 'connect');
    socket.write(`POST /up/${i} HTTP/1.1\r\nHost: stuck.example.com\r\n\r\n`);
    socket.write(payload);
  }
  // Steady: no change over 300 ms.
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = counted.nexus.bufferedUploads.bytes;
    if (now === last) break;
    last = now;
  }
  clearInterval(sample);
  return Math.max(peak, counted.nexus.bufferedUploads.bytes);
}

/** One node whose bound is `bound`, its stuck backend, and `STUCK_USERS` uploads to it. */
async function fillStuckBackend(
  bound: number,
): Promise<{ peak: number; node: TestNode; attacker: WebSocket }> {
  const node = await startNode('n', { config: { limits: { maxBufferedUploadBytes: bound } } });
  const attacker = await stuckBackend(node, () => node.events.backendConnected.length >= 1);
  return { peak: await uploadUntilSteady(node, node, STUCK_USERS), node, attacker };
}

/** Two mesh nodes: the stuck backend at c (whose bound is `bound`), `users` uploads to it at a. */
async function fillThroughMesh(
  users: number,
  bound: number,
): Promise<{ peak: number; node: TestNode; attacker: WebSocket }> {
  const c = await startNode('c', { config: { limits: { maxBufferedUploadBytes: bound } } });
  const a = await startNode('a', { peers: [c.meshUrl] });
  const attacker = await stuckBackend(c, () => a.routes.lookup('stuck.example.com')?.kind === 'peer');
  return { peak: await uploadUntilSteady(a, c, users), node: c, attacker };
}

describe('uploads to a backend that takes nothing', () => {
  it('hold at most the bound plus a small read per stuck relay; another tenant is served; the count returns to zero', async () => {
    // The same attack without a binding bound (1 GiB), for comparison.
    const before = await fillStuckBackend(1024 * MiB);
    expect(before.node.nexus.bufferedUploads.max).toBe(1024 * MiB);
    const after = await fillStuckBackend(BOUND);
    const { node } = after;
    console.log(
      `upload budget: ${STUCK_USERS} stuck uploads held ${(before.peak / MiB).toFixed(2)} MiB in the node's streams without a binding bound, ${(after.peak / MiB).toFixed(2)} MiB with a ${BOUND / 1024} KiB bound`,
    );
    // Without the bound every relay's stream holds its high-water mark (two 32 KiB frames toward this backend).
    expect(before.peak).toBeGreaterThan(STUCK_USERS * 56 * 1024);
    // With it: the bound, what was in flight as it was reached, then one small read per relay.
    expect(after.peak).toBeLessThanOrEqual(BOUND + 512 * 1024 + STUCK_USERS * UPLOAD_READ_MIN);
    expect(after.peak).toBeLessThan(before.peak / 2);
    expect(node.nexus.bufferedUploads.bytes).toBeGreaterThanOrEqual(BOUND - 128 * 1024);

    // Another tenant's end user, while the bound is used up: 8 MiB up and down, intact.
    const transfer = 8 * MiB;
    const prelude = Buffer.from('PUT /both HTTP/1.1\r\nHost: honest.example.com\r\n\r\n');
    const svc = await startExchangeService(transfer, prelude.length);
    cleanups.push(() => svc.close());
    const honest = await node.attachBackend({ hostnames: ['honest.example.com'], service: svc.port });
    cleanups.push(() => honest.client.close({ graceMs: 0 }));
    const user = await exchangeThrough(node.httpPort, prelude, transfer);
    expect(await svc.receivedDigest).toBe(user.sent);
    expect(user.received).toBe(svc.sentDigest());
    expect(node.nexus.bufferedUploads.bytes).toBeGreaterThanOrEqual(BOUND - 128 * 1024);

    // The stuck backend goes: its streams close, and what they held leaves the count.
    after.attacker.terminate();
    await waitUntil(() => node.nexus.bufferedUploads.bytes === 0, 5_000, 'the count back to zero');
  }, 60_000);

  it('at the destination of tunnels too: past the bound each relay into the stuck backend holds one tunnel chunk', async () => {
    const users = 60;
    const unbounded = await fillThroughMesh(users, 1024 * MiB);
    const tunnelBound = 256 * 1024;
    const bounded = await fillThroughMesh(users, tunnelBound);
    console.log(
      `upload budget, tunnels: ${users} stuck uploads through a mesh held ${(unbounded.peak / MiB).toFixed(2)} MiB at the destination without a binding bound, ${(bounded.peak / MiB).toFixed(2)} MiB with a ${tunnelBound / 1024} KiB bound`,
    );
    // The tunnels' relays count at the destination and reach the bound; past it each holds the chunk that
    // took it there (a tunnel's DATA payload, not an end user's 16 KiB read), not its high-water mark.
    expect(unbounded.peak).toBeGreaterThan(users * 56 * 1024);
    expect(bounded.node.nexus.bufferedUploads.bytes).toBeGreaterThanOrEqual(tunnelBound - 128 * 1024);
    expect(bounded.peak).toBeLessThan(unbounded.peak * 0.75);

    bounded.attacker.terminate();
    await waitUntil(() => bounded.node.nexus.bufferedUploads.bytes === 0, 5_000, 'the count back to zero');
  }, 60_000);
});
