/**
 * Log hygiene of a public node: a refused end user's address is not logged at `info` (the `sniff-failed`
 * event still carries it), junk from a backend cannot flood the log with warnings, and no log line
 * repeats a key (`component` once, with real pino output).
 */
import { Writable } from 'node:stream';
import { MuxSession, type MuxTransport } from '@nexus-proxy/mux-protocol';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { mintBackendToken } from '../../src/auth.js';
import {
  createTestPki,
  rawConnect,
  type LogLine,
  type TestPki,
  type RawBackend,
  rawBackend,
  recordingLogger,
  TEST_SECRET,
  type StartNodeOptions,
  startNode,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(logger: StartNodeOptions['logger']): Promise<TestNode> {
  const node = await startNode({ pki, logger });
  cleanups.push(() => node.close());
  return node;
}

async function registered(node: TestNode, hostnames: string[]): Promise<RawBackend> {
  const before = node.events.backendConnected.length;
  const raw = await rawBackend(pki, node.hubPort, await mintBackendToken({ secret: TEST_SECRET, hostnames }));
  cleanups.push(() => {
    if (raw.ws.readyState !== WebSocket.CLOSED) raw.ws.terminate();
  });
  await waitUntil(() => node.events.backendConnected.length > before, 3_000, 'backend registered');
  return raw;
}

/** A control message (`0x02` + JSON) the engine does not know. */
const unknownEvent = (i: number) => Buffer.from(`\x02{"event":"made_up_${i % 3}","client_id":"x"}`, 'latin1');

describe('log hygiene', () => {
  it('logs a refused end user (and its address) at debug only; the event still carries it', async () => {
    const lines: LogLine[] = [];
    const node = await start(recordingLogger(lines));
    const user = await rawConnect(node.httpPort);
    user.socket.write('GET / HTTP/1.1\r\nHost: nobody.example.com\r\n\r\n');
    await user.closed;
    await waitUntil(() => node.events.sniffFailed.length === 1, 2_000, 'sniff-failed');
    expect(node.events.sniffFailed[0]).toMatchObject({
      reason: 'no-route',
      remoteAddress: '127.0.0.1',
      remotePort: user.localPort,
    });
    const closedLines = lines.filter((l) => l.msg.startsWith('connection closed'));
    expect(closedLines.map((l) => l.level)).toEqual(['debug']);
    expect(closedLines[0]?.fields).toMatchObject({ remotePort: user.localPort });
    const atInfo = lines.filter((l) => l.level !== 'debug' && l.level !== 'trace');
    expect(atInfo.filter((l) => l.fields.remotePort === user.localPort)).toEqual([]);
  });

  it('warns once about junk from a backend, not once per message', async () => {
    const lines: LogLine[] = [];
    const node = await start(recordingLogger(lines));
    const raw = await registered(node, ['junk.example.com']);
    for (let i = 0; i < 300; i++) raw.send(unknownEvent(i));
    for (let i = 0; i < 300; i++) raw.send(Uint8Array.of(0x7e, i & 0xff));
    // A round trip: everything sent before the ping has been read.
    let pong = false;
    raw.ws.once('pong', () => {
      pong = true;
    });
    raw.ws.ping();
    await waitUntil(() => pong, 2_000, 'pong');
    const warned = (msg: string) => lines.filter((l) => l.level === 'warn' && l.msg === msg);
    expect(warned('ignoring unknown control event')).toHaveLength(1);
    expect(warned('ignoring message with unknown frame type')).toHaveLength(1);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('logs at most one warning per 10 s per kind of ignored message, with the count suppressed', () => {
    let now = 1_000_000;
    const warnings: Array<{ fields: Record<string, unknown>; msg: string | undefined }> = [];
    const logger = {
      debug() {},
      info() {},
      warn(fields: object, msg?: string) {
        warnings.push({ fields: fields as Record<string, unknown>, msg });
      },
      error() {},
    };
    const transport: MuxTransport = { send() {}, bufferedAmount: 0 };
    const session = new MuxSession({ role: 'hub', transport, logger, now: () => now });
    for (let i = 0; i < 50; i++) session.receive(unknownEvent(i));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.fields.suppressed).toBeUndefined();
    now += 9_999;
    session.receive(unknownEvent(0));
    expect(warnings).toHaveLength(1);
    now += 1;
    session.receive(unknownEvent(1));
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toMatchObject({ msg: 'ignoring unknown control event', fields: { suppressed: 50 } });
    // Another kind has its own first warning.
    session.receive(Uint8Array.of(0x7e));
    expect(warnings.at(-1)?.msg).toBe('ignoring message with unknown frame type');
    session.close();
  });

  it('writes each key once in backend-session and engine lines (real pino output)', async () => {
    const raw: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        raw.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    const node = await start(pino({ level: 'debug' }, sink));
    const backend = await registered(node, ['keys.example.com']);
    backend.send(unknownEvent(0)); // an engine warning
    backend.ws.close(1000, 'bye');
    await waitUntil(() => node.events.backendDisconnected.length === 1, 2_000, 'backend-disconnected');
    await waitUntil(
      () => raw.some((l) => l.includes('ignoring unknown control event')),
      2_000,
      'the engine warning',
    );
    const sessionLines = raw.filter((l) => l.includes('"sessionId"'));
    expect(sessionLines.some((l) => l.includes('"component":"backend-session"'))).toBe(true);
    expect(sessionLines.some((l) => l.includes('"component":"mux-session"'))).toBe(true);
    for (const line of raw) {
      expect(line.match(/"component":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
      expect(line.match(/"sessionId":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
    }
  });
});
