/**
 * The hub serving `outbound_connect` (docs/edge.md "Outbound connections") on real sockets: a current-era
 * backend asks for a TCP connection, the node checks it in order, dials under the address policy and
 * relays it as a stream of the backend's session; each refusal is an `outbound_result` with the reason,
 * a log line and a count. Hostile requests (seed era, nil or duplicate ids, floods) are refused cleanly.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import {
  encodeControlMessage,
  MuxProtocolError,
  type MuxStream,
  type OutboundResultMessage,
} from '@nexus-proxy/mux-protocol';
import {
  createTestPki,
  type LogLine,
  rawBackend,
  recordingLogger,
  startNode,
  startService,
  TEST_SECRET,
  type TestService,
  type StartNodeOptions,
  type TestNode,
  type TestPki,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NexusConfigInput } from '../../src/config.js';
import type { OutboundResolver } from '../../src/outbound-connect.js';
import {
  type CurrentClaimsInput,
  type CurrentEraBackend,
  connectCurrentEraBackend,
} from '../helpers/current-era-backend.js';

vi.setConfig({ testTimeout: 30_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const OUTBOUND: Partial<NexusConfigInput> = { allowOutbound: true, allowedOutboundNetworks: ['127.0.0.0/8'] };

async function node(
  config: Partial<NexusConfigInput>,
  extra: Omit<StartNodeOptions, 'pki' | 'config'> = {},
): Promise<{ n: TestNode; lines: LogLine[] }> {
  const logger = recordingLogger();
  const n = await startNode({ pki, listeners: ['http'], config, logger, ...extra });
  cleanups.push(() => n.close());
  return { n, lines: logger.lines };
}

async function backend(n: TestNode, claims: Partial<CurrentClaimsInput> = {}): Promise<CurrentEraBackend> {
  const registered = once(n.nexus, 'backend-connected');
  const b = await connectCurrentEraBackend({
    hubPort: n.hubPort,
    ca: pki.ca.certPem,
    secret: TEST_SECRET,
    claims: { hostnames: ['device.test'], outbound_allowed: true, ...claims },
  });
  cleanups.push(() => b.close());
  await registered;
  return b;
}

/** A TCP echo service on 127.0.0.1 (`accepted`: its connections). */
async function echoServer(): Promise<TestService> {
  const echo = await startService((socket) => socket.pipe(socket));
  cleanups.push(() => echo.close());
  return echo;
}

/** The `outbound_result` messages the hub sent on `ws`, decoded. */
function results(b: CurrentEraBackend): OutboundResultMessage[] {
  const seen: OutboundResultMessage[] = [];
  b.ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary || data[0] !== 0x02) return;
    const m = JSON.parse(data.subarray(1).toString('utf8')) as OutboundResultMessage;
    // Go leaves `success: false` out: absent means false.
    if (m.event === 'outbound_result') seen.push({ ...m, success: m.success === true });
  });
  return seen;
}

async function refusal(b: CurrentEraBackend, target: string): Promise<string> {
  try {
    const stream = await b.mux.openOutbound(target, { timeoutMs: 10_000 });
    stream.destroy();
  } catch (err) {
    expect(MuxProtocolError.is(err) && err.code).toBe('MUX_ERR_OUTBOUND_REFUSED');
    return (err as Error).message;
  }
  throw new Error(`${target} was not refused`);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function readExactly(stream: MuxStream, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('error', reject);
    stream.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= size) resolve(Buffer.concat(chunks));
    });
  });
}

describe('hub: outbound_connect', () => {
  it('connects a backend to a target on its behalf and relays 20 MiB both ways, byte-exact', async () => {
    const { n, lines } = await node(OUTBOUND);
    const echo = await echoServer();
    const b = await backend(n);
    const stream = await b.mux.openOutbound(`127.0.0.1:${echo.port}`, { timeoutMs: 10_000 });
    const session = n.hub.sessions[0]!;
    expect(n.hub.outbound.sessionStats(session)).toMatchObject({ open: 1, dialling: 0, opened: 1 });
    const payload = randomBytes(20 * 1024 * 1024);
    const echoed = readExactly(stream, payload.length);
    stream.write(payload);
    expect(sha(await echoed)).toBe(sha(payload));
    expect(lines.some((l) => l.msg === 'outbound connection established' && l.fields.target)).toBe(true);
    // The target closing ends the stream at the backend, after its last byte.
    const ended = once(stream, 'end');
    echo.accepted[0]!.end();
    await ended;
    expect(stream.closeReason).toBe('normal');
    await waitUntil(() => n.hub.outbound.stats().open === 0);
    expect(n.hub.outbound.stats()).toMatchObject({ open: 0, dialling: 0, opened: 1, refused: {} });
  });

  it('charges an outbound connection to its backend under the bandwidth cap', async () => {
    const { n } = await node({ ...OUTBOUND, totalBandwidthMbps: 10_000 });
    const echo = await echoServer();
    const b = await backend(n);
    const stream = await b.mux.openOutbound(`127.0.0.1:${echo.port}`, { timeoutMs: 10_000 });
    const payload = randomBytes(1024 * 1024);
    const echoed = readExactly(stream, payload.length);
    stream.write(payload);
    expect(sha(await echoed)).toBe(sha(payload));
    const session = n.hub.sessions[0]!;
    const account = n.nexus.bandwidth.stats().accounts.find((a) => a.id === session.id);
    // Both directions: to the target and back to the backend.
    expect(account?.bytesSent).toBeGreaterThanOrEqual(2 * payload.length);
    stream.destroy();
  });

  it('closes a connection idle for outboundIdleTimeoutSeconds, and the backend sees its end', async () => {
    const { n } = await node({ ...OUTBOUND, outboundIdleTimeoutSeconds: 1 });
    const echo = await echoServer();
    const b = await backend(n);
    const stream = await b.mux.openOutbound(`127.0.0.1:${echo.port}`, { timeoutMs: 10_000 });
    const echoed = readExactly(stream, 4);
    stream.write('ping');
    expect((await echoed).toString()).toBe('ping');
    const openedAt = Date.now();
    stream.resume();
    await once(stream, 'end');
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(900);
    await waitUntil(() => n.hub.outbound.stats().open === 0);
    await waitUntil(() => echo.accepted[0]!.destroyed);
  });

  it('resolves a name once and dials only its allowed addresses', async () => {
    const { n } = await node(OUTBOUND);
    const echo = await echoServer();
    const b = await backend(n);
    const stream = await b.mux.openOutbound(`localhost:${echo.port}`, { timeoutMs: 10_000 });
    const echoed = readExactly(stream, 5);
    stream.write('hello');
    expect((await echoed).toString()).toBe('hello');
    stream.destroy();
  });

  it('refuses each check in order with the reference reason, a log line and a count', async () => {
    const echo = await echoServer();
    // allowOutbound off: a backend without the claim (one with it cannot even authenticate).
    const off = await node({ allowOutbound: false });
    const plain = await backend(off.n, { outbound_allowed: undefined });
    expect(await refusal(plain, `127.0.0.1:${echo.port}`)).toBe(
      'outbound connections disabled on this proxy',
    );

    const { n, lines } = await node({ ...OUTBOUND, allowedOutboundPorts: [echo.port, 2222] });
    const noClaim = await backend(n, { outbound_allowed: undefined });
    expect(await refusal(noClaim, `127.0.0.1:${echo.port}`)).toBe(
      'outbound connections not allowed for this backend',
    );
    const b = await backend(n, { allowed_outbound_ports: [2222] });
    expect(await refusal(b, `127.0.0.1:${echo.port + 1}`)).toBe(
      `outbound port ${echo.port + 1} not allowed by server`,
    );
    expect(await refusal(b, `127.0.0.1:${echo.port}`)).toBe(
      `outbound port ${echo.port} not allowed for this backend`,
    );
    expect(await refusal(b, 'no port')).toBe('invalid target address');
    expect(await refusal(b, '127.1:2222')).toBe('invalid target address');
    expect(await refusal(b, `a${'b'.repeat(300)}:2222`)).toBe('target address too long');
    const stats = n.hub.outbound.stats();
    expect(stats.refused).toEqual({
      'not-allowed-for-backend': 1,
      'port-not-allowed-by-server': 1,
      'port-not-allowed-for-backend': 1,
      'invalid-target': 2,
      'target-too-long': 1,
    });
    const refusals = lines.filter((l) => l.msg.startsWith('outbound connection refused'));
    expect(refusals.map((l) => l.fields.reason)).toEqual([
      'not-allowed-for-backend',
      'port-not-allowed-by-server',
      'port-not-allowed-for-backend',
      'invalid-target',
      'invalid-target',
      'target-too-long',
    ]);
    expect(refusals[0]?.level).toBe('warn');
    expect(echo.accepted).toHaveLength(0);
  });

  it('refuses a loopback target unless allowedOutboundNetworks lists it: never dialled', async () => {
    const echo = await echoServer();
    const { n, lines } = await node({ allowOutbound: true });
    const b = await backend(n);
    expect(await refusal(b, `127.0.0.1:${echo.port}`)).toBe('target address not allowed (loopback)');
    expect(await refusal(b, `[::1]:${echo.port}`)).toBe('target address not allowed (loopback)');
    expect(await refusal(b, `localhost:${echo.port}`)).toBe('target address not allowed (loopback)');
    expect(n.hub.outbound.stats()).toMatchObject({ refused: { 'address-refused': 3 } });
    expect(n.hub.outbound.stats().addressRefusals.loopback).toBeGreaterThanOrEqual(3);
    const line = lines.find(
      (l) => l.msg === 'outbound connection refused: target address not allowed (loopback)',
    );
    expect(line?.fields).toMatchObject({ reason: 'address-refused', address: '127.0.0.1' });
    expect(echo.accepted).toHaveLength(0);
  });

  it('answers "dial failed" for an unreachable target', async () => {
    const { n } = await node(OUTBOUND);
    const closed = await echoServer();
    const port = closed.port;
    await closed.close();
    const b = await backend(n);
    expect(await refusal(b, `127.0.0.1:${port}`)).toBe('dial failed');
    expect(n.hub.outbound.stats().refused).toEqual({ 'dial-failed': 1 });
  });

  it('holds each backend to maxOutboundConnsPerBackend, open plus dialling, and frees a slot on close', async () => {
    const { n } = await node({ ...OUTBOUND, maxOutboundConnsPerBackend: 2 });
    const echo = await echoServer();
    const b = await backend(n);
    const other = await backend(n);
    const target = `127.0.0.1:${echo.port}`;
    const first = await b.mux.openOutbound(target, { timeoutMs: 10_000 });
    await b.mux.openOutbound(target, { timeoutMs: 10_000 });
    expect(await refusal(b, target)).toBe('outbound connection limit exceeded');
    // The limit is per backend.
    (await other.mux.openOutbound(target, { timeoutMs: 10_000 })).destroy();
    first.destroy();
    // Sessions are listed in the order they registered: `b` first.
    await waitUntil(() => n.hub.outbound.sessionStats(n.hub.sessions[0]!)?.open === 1);
    (await b.mux.openOutbound(target, { timeoutMs: 10_000 })).destroy();
  });

  it('cancels a dial in flight when the backend leaves', async () => {
    const echo = await echoServer();
    let release: (() => void) | undefined;
    let lookups = 0;
    // A resolver that answers only when released: the dial is in flight until then.
    const resolve: OutboundResolver = () => {
      lookups++;
      return new Promise((r) => {
        release = () => r([{ address: '127.0.0.1', family: 4 }]);
      });
    };
    const { n } = await node(OUTBOUND, { outboundResolve: resolve });
    const b = await backend(n);
    const opening = b.mux.openOutbound(`slow.example:${echo.port}`, { timeoutMs: 10_000 }).catch((e) => e);
    await waitUntil(() => lookups === 1);
    expect(n.hub.outbound.stats()).toMatchObject({ dialling: 1, open: 0 });
    await b.close();
    await waitUntil(() => n.hub.outbound.stats().dialling === 0);
    release?.();
    await new Promise((r) => setTimeout(r, 200));
    expect(echo.accepted).toHaveLength(0);
    expect(n.hub.outbound.stats()).toMatchObject({ open: 0, opened: 0 });
    expect(MuxProtocolError.is(await opening)).toBe(true);
  });
});

describe('hub: hostile outbound_connect', () => {
  it('refuses a seed-era session: it can claim nothing', async () => {
    const { n } = await node(OUTBOUND);
    const raw = await rawBackend(pki, n.hubPort, await token(['seed.test']));
    await waitUntil(() => n.hub.sessions.length === 1);
    const id = randomUUID();
    raw.send(encodeControlMessage({ event: 'outbound_connect', client_id: id, target_addr: '127.0.0.1:80' }));
    await waitUntil(() => raw.controls.length > 0);
    expect(raw.controls[0]).toEqual({
      event: 'outbound_result',
      client_id: id,
      success: false,
      reason: 'outbound connections not allowed for this backend',
    });
  });

  it('refuses the nil id, a duplicate id, and a flood past the per-backend limit without dialling', async () => {
    // Dials to `slow.example` stay in flight (the resolver never answers): they hold their slots.
    const resolve: OutboundResolver = () => new Promise(() => {});
    const { n } = await node({ ...OUTBOUND, maxOutboundConnsPerBackend: 3 }, { outboundResolve: resolve });
    const b = await backend(n);
    const seen = results(b);
    const send = (id: string) =>
      b.ws.send(
        encodeControlMessage({ event: 'outbound_connect', client_id: id, target_addr: 'slow.example:80' }),
      );
    send('00000000-0000-0000-0000-000000000000');
    const dialling = randomUUID();
    send(dialling);
    send(dialling);
    // A flood of 200 requests: only the free slots are dialled, every other one is answered at once.
    const flood: string[] = Array.from({ length: 200 }, () => randomUUID());
    for (const id of flood) send(id);
    await waitUntil(() => seen.length >= 200);
    expect(seen[0]).toMatchObject({ success: false, reason: 'missing client ID' });
    expect(seen[1]).toEqual({
      event: 'outbound_result',
      client_id: dialling,
      success: false,
      reason: 'client ID already in use',
    });
    const floodResults = seen.filter((r) => flood.includes(r.client_id));
    expect(floodResults).toHaveLength(198);
    expect(floodResults.every((r) => r.reason === 'outbound connection limit exceeded')).toBe(true);
    expect(n.hub.outbound.stats()).toMatchObject({ dialling: 3, open: 0 });
    expect(n.hub.outbound.stats().refused).toEqual({
      'missing-client-id': 1,
      'duplicate-client-id': 1,
      'connection-limit': 198,
    });
    expect(n.hub.sessions).toHaveLength(1);
    await b.close();
    await waitUntil(() => n.hub.outbound.stats().dialling === 0);
  });
});
