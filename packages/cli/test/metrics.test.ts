import { EventEmitter } from 'node:events';
import { connect as netConnect } from 'node:net';
import { type Nexus, OutboundStreams, RoutingTable } from '@nexus-proxy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createNexusMetrics, OTHER_LABEL } from '../src/metrics.js';
import { serve } from '../src/serve.js';
import { echoSizeService, recordingLogger, startService, waitUntil } from '@nexus-proxy/test-harness';
import {
  adminGet,
  backend,
  createWorkdir,
  SECRET_A,
  SECRET_B,
  token,
  writeNodeConfig,
  LiveNodeFixture,
} from './_ops-helpers.js';
import { sample } from './_metrics.js';

/** The value of one sample line, e.g. `nexus_route_misses_total{mode="http",reason="no-route"}`. */
/** A stand-in node: real routing table and events, no sockets. */
function fakeNexus(): Nexus & EventEmitter & { table: RoutingTable<object> } {
  const emitter = new EventEmitter();
  const table = new RoutingTable<object>();
  return Object.assign(emitter, {
    table,
    routes: table,
    hub: {
      stats: () => ({ sessions: 0, authenticating: 0, streams: 0 }),
      outbound: new OutboundStreams({ logger: recordingLogger() }),
    },
    mesh: undefined,
    bufferedUploads: { bytes: 12_345, max: 134_217_728 },
    certificateInfo: () => undefined,
  }) as unknown as Nexus & EventEmitter & { table: RoutingTable<object> };
}

/** A `stream-open` payload as the node emits it: with the pattern its routing decision matched. */
const streamEvent = (id: string, hostname: string, via: 'local' | 'peer' = 'local', route = hostname) => ({
  id,
  hostname,
  port: 443,
  isTls: true,
  via,
  route,
});

describe('createNexusMetrics', () => {
  it('labels streams with the pattern the node matched, wildcard included, and keeps no route state', async () => {
    const nexus = fakeNexus();
    const metrics = createNexusMetrics(nexus, { defaultMetrics: false });
    // The labels come from the events alone: the routing table of the stand-in stays empty.
    nexus.emit('stream-open', streamEvent('1', 'app.test'));
    nexus.emit('stream-open', streamEvent('2', 'a.wild.test', 'local', '*.wild.test'));
    nexus.emit('stream-open', streamEvent('4', 'far.test', 'peer'));
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_streams_opened_total{route="app.test",via="local"}')).toBe(1);
    expect(sample(text, 'nexus_streams_opened_total{route="*.wild.test",via="local"}')).toBe(1);
    expect(sample(text, `nexus_streams_opened_total{route="${OTHER_LABEL}",via="local"}`)).toBeUndefined();
    expect(metrics.openStreams().map((s) => s.route)).toEqual(['app.test', '*.wild.test', 'far.test']);
    expect(sample(text, 'nexus_streams_opened_total{route="far.test",via="peer"}')).toBe(1);
    expect(sample(text, 'nexus_streams_open{via="local"}')).toBe(2);
    expect(sample(text, 'nexus_streams_open{via="peer"}')).toBe(1);
    expect(sample(text, 'nexus_upload_buffered_bytes')).toBe(12_345);
    expect(text).not.toContain('a.wild.test"');
    // The route label is kept from the open.
    nexus.emit('stream-close', {
      ...streamEvent('1', 'app.test'),
      reason: 'completed',
      bytesUp: 10,
      bytesDown: 20,
      durationMs: 1500,
    });
    const after = await metrics.metrics();
    expect(sample(after, 'nexus_streams_closed_total{route="app.test",reason="completed"}')).toBe(1);
    expect(sample(after, 'nexus_stream_bytes_received_total{route="app.test"}')).toBe(10);
    expect(sample(after, 'nexus_stream_bytes_sent_total{route="app.test"}')).toBe(20);
    expect(sample(after, 'nexus_stream_duration_seconds_bucket{le="5"}')).toBe(1);
    expect(sample(after, 'nexus_stream_duration_seconds_bucket{le="1"}')).toBe(0);
    expect(metrics.openStreams().map((s) => s.id)).toEqual(['2', '4']);
    metrics.close();
    nexus.emit('stream-open', streamEvent('5', 'app.test'));
    expect(metrics.openStreams()).toHaveLength(2); // detached
  });

  it('caps route and reason label values', async () => {
    const nexus = fakeNexus();
    const metrics = createNexusMetrics(nexus, {
      defaultMetrics: false,
      maxRouteLabels: 2,
      maxReasonLabels: 1,
    });
    for (const name of ['a.test', 'b.test', 'c.test']) {
      nexus.table.addLocal(name, {});
      nexus.emit('stream-open', streamEvent(name, name));
    }
    nexus.emit('sniff-failed', { reason: 'not-tls', port: 443, bytesRead: 3 });
    nexus.emit('sniff-failed', { reason: 'sniff-timeout', port: 443, bytesRead: 0 });
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_streams_opened_total{route="a.test",via="local"}')).toBe(1);
    expect(sample(text, 'nexus_streams_opened_total{route="b.test",via="local"}')).toBe(1);
    expect(sample(text, 'nexus_streams_opened_total{route="other",via="local"}')).toBe(1);
    expect(sample(text, 'nexus_sniff_failures_total{reason="not-tls"}')).toBe(1);
    expect(sample(text, 'nexus_sniff_failures_total{reason="other"}')).toBe(1);
    metrics.close();
  });
});

describe('GET /metrics of a live node', () => {
  const f = new LiveNodeFixture();
  afterEach(() => f.reset());

  it('counts sessions, streams, bytes, misses and failures, and exposes no client address', async () => {
    f.work = await createWorkdir();
    const service = await startService(echoSizeService);
    try {
      f.node = await serve({
        config: writeNodeConfig(f.work),
        admin: '127.0.0.1:0',
        handleSignals: false,
        logLevel: 'silent',
        graceMs: 0,
      });
      const n = f.node;
      const hubPort = n.addresses.hub.port;
      const httpPort = n.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
      const tlsPort = n.addresses.listeners.find((l) => l.mode === 'tls')!.address.port;
      f.clients.push(
        backend(hubPort, f.work.ca.certPem, await token(SECRET_A, ['app.test', '*.wild.test']), service.port),
      );
      await waitUntil(() => n.nexus.hub.sessions.length === 1, 10_000, 'the backend');
      f.clients.push(backend(hubPort, f.work.ca.certPem, await token(SECRET_B, ['bad.test']), service.port));
      await waitUntil(() => n.metrics.totals().authFailures >= 1, 10_000, 'the auth failure');
      await f.clients.pop()!.close();

      const clientPorts: number[] = [];
      const exchange = (port: number, payload: string) =>
        new Promise<string>((resolve, reject) => {
          const s = netConnect({ host: '127.0.0.1', port }, () => {
            clientPorts.push(s.localPort!);
            s.write(payload);
          });
          let data = '';
          s.setEncoding('latin1');
          s.on('data', (c: string) => {
            data += c;
          });
          s.on('close', () => resolve(data));
          s.on('error', reject);
        });
      const request = 'GET /100 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n';
      expect(await exchange(httpPort, request)).toMatch(/x{100}$/);
      expect(await exchange(httpPort, 'GET /10 HTTP/1.1\r\nHost: a.wild.test\r\n\r\n')).toMatch(/x{10}$/);
      expect(await exchange(httpPort, 'GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n')).toBe('');
      expect(await exchange(tlsPort, 'hello there\r\n\r\n')).toBe('');
      await waitUntil(() => n.metrics.totals().streamsClosed === 2, 10_000, 'two stream closes');

      const { body: text } = await adminGet(n.adminAddress!.port, '/metrics');
      expect(sample(text, 'nexus_backend_sessions')).toBe(1);
      expect(sample(text, 'nexus_backend_connections_total')).toBe(1);
      expect(sample(text, 'nexus_backend_auth_failures_total{reason="invalid token signature"}')).toBe(1);
      expect(sample(text, 'nexus_streams_opened_total{route="app.test",via="local"}')).toBe(1);
      expect(sample(text, 'nexus_streams_opened_total{route="*.wild.test",via="local"}')).toBe(1);
      expect(sample(text, 'nexus_streams_closed_total{route="app.test",reason="completed"}')).toBe(1);
      expect(sample(text, 'nexus_stream_bytes_received_total{route="app.test"}')).toBe(request.length);
      expect(sample(text, 'nexus_stream_bytes_sent_total{route="app.test"}')).toBeGreaterThan(100);
      expect(sample(text, 'nexus_streams_open{via="local"}')).toBe(0);
      expect(sample(text, 'nexus_route_misses_total{mode="http",reason="no-route"}')).toBe(1);
      expect(sample(text, 'nexus_sniff_failures_total{reason="no-route"}')).toBe(1);
      expect(sample(text, 'nexus_sniff_failures_total{reason="not-tls"}')).toBe(1);
      expect(sample(text, 'nexus_local_routes')).toBe(2);
      expect(sample(text, 'nexus_peer_links')).toBe(0);
      expect(sample(text, 'nexus_peer_routes')).toBe(0);
      expect(sample(text, 'nexus_hub_certificate_expiry_timestamp_seconds')).toBe(
        Math.floor(n.nexus.certificateInfo()!.notAfter.getTime() / 1000),
      );
      expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
      // Privacy: no end-user (or backend) address in any label.
      expect(text).not.toContain('127.0.0.1');
      expect(text).not.toContain('::ffff:');
      expect(clientPorts).toHaveLength(4);
      for (const port of clientPorts) expect(text).not.toMatch(new RegExp(`="[^"]*\\b${port}\\b[^"]*"`));
      expect(text).not.toContain('nobody.test');
    } finally {
      await service.close();
    }
  });
});
