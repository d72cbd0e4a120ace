/**
 * Many streams over one session under the node-wide receive budget: the grants a hub sends stay batches
 * however many streams share the budget (before, a budget split over 1 000 streams meant one grant per
 * DATA frame: credits deferred by the budget were handed out a frame or two at a time).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeBackendMessage, MAX_DATA_PAYLOAD, type MuxStream, ReceiveBudget } from '../src/index.js';
import { readExactly, type SessionPair, sha256, writeAll } from './suites/session.suite.js';
import { createWebSocketPair } from './suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

describe('many streams sharing a receive budget', () => {
  const pairs: SessionPair[] = [];
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((pair) => pair.close()));
  });

  it('grants in batches when the budget leaves each stream a few frames, and delivers every byte', async () => {
    const streams = 100;
    // 8 frames per stream beyond its floor: the share 256 MiB leaves each of 1 000 streams.
    const budget = new ReceiveBudget(streams * 8 * MAX_DATA_PAYLOAD);
    const grants = new Map<number, number>();
    let grantMessages = 0;
    const pair = await createWebSocketPair({
      hub: { receiveBudget: budget },
      observe: (from, message) => {
        if (from !== 'hub') return;
        const decoded = decodeBackendMessage(message);
        if (!decoded.ok || decoded.value.type !== 'control') return;
        const control = decoded.value.message;
        if (control.event !== 'resume_stream') return;
        grantMessages++;
        const credits = control.credits ?? 0;
        grants.set(credits, (grants.get(credits) ?? 0) + 1);
      },
    });
    pairs.push(pair);
    const perStream = 64 * MAX_DATA_PAYLOAD;
    const opened: { hubSide: MuxStream; backendSide: MuxStream }[] = [];
    for (let i = 0; i < streams; i++) {
      const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
      const hubSide = pair.hub.openStream(OPEN);
      opened.push({ hubSide, backendSide: await accepted });
    }
    const data = randomBytes(perStream);
    const before = pair.hub.stats();
    const [got] = await Promise.all([
      Promise.all(opened.map((s) => readExactly(s.hubSide, perStream))),
      Promise.all(opened.map((s) => writeAll(s.backendSide, data))),
    ]);
    for (const g of got) expect(sha256(g)).toBe(sha256(data));
    const after = pair.hub.stats();
    const frames = after.dataFramesReceived - before.dataFramesReceived;
    console.log(
      `grants ${grantMessages} for ${frames} frames`,
      [...grants.entries()].sort((a, b) => a[0] - b[0]),
    );
    expect(frames).toBeGreaterThanOrEqual(streams * 64);
    // Before: one grant of one credit per frame (1.0). Now about one per 5 frames.
    expect(grantMessages / frames).toBeLessThan(0.25);
  }, 60_000);
});
