/**
 * Every refusal leaves a trace: a connection for a name nobody serves is logged at info, once, with the
 * routed name and the reason and without the end user's address; a flood of them is rate-limited per
 * reason, and what the limit held back is logged as a count, so lines + suppressed = route misses.
 */
import {
  clientHello,
  createTestPki,
  type LogLine,
  rawConnect,
  recordingLogger,
  startNode,
  type TestNode,
  type TestPki,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REFUSAL_LOG_LINES_PER_SECOND } from '../../src/node-dispatch.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

let node: TestNode | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

/** Sends `bytes` from a fresh connection and waits until the node closes it; returns bytes written back. */
async function refusedWith(
  port: number,
  bytes: Buffer | string,
): Promise<{ received: number; localPort: number }> {
  const user = await rawConnect(port);
  let received = 0;
  user.socket.on('data', (c: Buffer) => {
    received += c.length;
  });
  user.socket.write(bytes);
  await user.closed;
  return { received, localPort: user.localPort };
}

const refusals = (lines: LogLine[]) => lines.filter((l) => l.msg.startsWith('connection refused'));
const summaries = (lines: LogLine[]) => lines.filter((l) => l.msg.startsWith('connections refused'));

describe('refusal log', () => {
  it('logs a TLS ClientHello for an unknown name once at info: the name, the reason, no address', async () => {
    const lines: LogLine[] = [];
    node = await startNode({ pki, logger: recordingLogger(lines) });
    const user = await refusedWith(node.tlsPort, clientHello('unknown.example.net'));
    expect(user.received).toBe(0);
    await waitUntil(() => node!.events.routeMiss.length === 1, 2_000, 'route-miss');
    expect(node.events.routeMiss[0]).toMatchObject({ hostname: 'unknown.example.net', reason: 'no-route' });
    const logged = refusals(lines);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'info',
      msg: 'connection refused: no-route',
      fields: { host: 'unknown.example.net', reason: 'no-route', port: node.tlsPort },
    });
    const text = JSON.stringify(logged[0]);
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain(String(user.localPort));
  });

  it('bounds a burst of 1 000 to a few lines per second plus a suppressed count that adds up', async () => {
    const lines: LogLine[] = [];
    node = await startNode({ pki, logger: recordingLogger(lines) });
    const port = node.tlsPort;
    const hello = clientHello('flood.example.net');
    const started = Date.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 1_000) {
        next++;
        await refusedWith(port, hello);
      }
    };
    await Promise.all(Array.from({ length: 25 }, worker));
    const seconds = Math.ceil((Date.now() - started) / 1_000) + 1;
    await waitUntil(() => node!.events.routeMiss.length === 1_000, 5_000, '1 000 route misses');
    // Closing the node logs the count still held back.
    await node.close();
    node = undefined;

    const logged = refusals(lines);
    expect(logged.length).toBeGreaterThanOrEqual(REFUSAL_LOG_LINES_PER_SECOND);
    expect(logged.length).toBeLessThanOrEqual(REFUSAL_LOG_LINES_PER_SECOND * seconds);
    for (const line of logged)
      expect(line.fields).toMatchObject({ host: 'flood.example.net', reason: 'no-route' });
    const counted = summaries(lines);
    expect(counted.length).toBeGreaterThanOrEqual(1);
    expect(counted.length).toBeLessThanOrEqual(seconds);
    for (const line of counted) {
      expect(line).toMatchObject({ level: 'info', fields: { reason: 'no-route' } });
      expect(line.fields.suppressed).toBeGreaterThan(0);
    }
    const suppressed = counted.reduce((sum, l) => sum + (l.fields.suppressed as number), 0);
    expect(logged.length + suppressed).toBe(1_000);
  });
});
