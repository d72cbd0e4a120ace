import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, createNexus, issueCertificate } from '@nexus-proxy/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNexusMetrics } from '../src/metrics.js';
import { sample } from './_metrics.js';

vi.setConfig({ testTimeout: 30_000 });

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('fleet registration metrics', () => {
  it('report attempts by result, the state, the heartbeat interval and the last success', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Registration Test CA' });
    const hub = await issueCertificate(ca, {
      dnsNames: ['hub.test'],
      ipAddresses: ['127.0.0.1'],
      clientAuth: true,
    });
    const orchestratorCert = await issueCertificate(ca, {
      dnsNames: ['orchestrator.test'],
      ipAddresses: ['127.0.0.1'],
    });
    const server = createServer(
      { cert: orchestratorCert.certPem, key: orchestratorCert.keyPem, ca: ca.certPem, requestCert: true },
      (req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"heartbeat_interval":42}');
        });
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const dir = mkdtempSync(join(tmpdir(), 'nexus-registration-metrics-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'hub.crt'), hub.certPem);
    writeFileSync(join(dir, 'hub.key'), hub.keyPem);
    const nexus = createNexus(
      {
        backendListenAddress: '127.0.0.1:0',
        backendsJWTSecret: 'a-very-strong-jwt-secret-from-the-central-authorizer',
        hubTlsCertFile: join(dir, 'hub.crt'),
        hubTlsKeyFile: join(dir, 'hub.key'),
        listeners: [{ port: 0, host: '127.0.0.1' }],
        registrationURL: `https://127.0.0.1:${(server.address() as AddressInfo).port}/register`,
      },
      { registration: { ca: ca.certPem } },
    );
    cleanups.push(() => nexus.close({ graceMs: 0 }));
    const metrics = createNexusMetrics(nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    expect(
      sample(await metrics.metrics(), 'nexus_registration_attempts_total{result="success"}'),
    ).toBeUndefined();
    await nexus.listen();
    await vi.waitFor(() => expect(nexus.registration?.stats().successes).toBe(1));
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_registration_attempts_total{result="success"}')).toBe(1);
    expect(sample(text, 'nexus_registration_attempts_total{result="failure"}')).toBe(0);
    expect(sample(text, 'nexus_registration_state{state="registered"}')).toBe(1);
    expect(sample(text, 'nexus_registration_state{state="retrying"}')).toBe(0);
    expect(sample(text, 'nexus_registration_heartbeat_interval_seconds')).toBe(42);
    expect(sample(text, 'nexus_registration_last_success_timestamp_seconds')).toBeGreaterThan(
      Date.now() / 1000 - 60,
    );
  });
});
