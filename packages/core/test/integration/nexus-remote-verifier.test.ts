/**
 * A node configured with `remoteVerifierURL` (docs/protocol.md §5.5): every token — a seed-era backend's,
 * and a current-era backend's stage 0, stage 1 and re-authentication tokens — is checked by a real local
 * HTTPS verifier that requires the node's hub certificate as TLS client certificate; its refusal closes
 * the backend with its reason; while it is unavailable the node's secret checks tokens, and without a
 * secret nothing gets in.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createTempDir,
  createTestPki,
  httpGet,
  rawBackend,
  startNode,
  startService,
  TEST_SECRET,
  type TestNode,
  type TestPki,
  type TestService,
  token,
} from '@nexus-proxy/test-harness';
import { jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { issueCertificate } from '../../src/certificates.js';

vi.setConfig({ testTimeout: 20_000 });

/** What the verifier does with the next requests. */
type Mode = 'verify' | 'revoke' | 'unavailable' | 'forbidden';

let pki: TestPki;
let verifier: https.Server;
let verifierUrl: string;
let caFile: string;
let mode: Mode = 'verify';
const seen: Array<{ fingerprint: string; token: string }> = [];
const sockets = new Set<Socket>();
const files = createTempDir('nexus-verifier-');
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  const base = await createTestPki();
  // A hub certificate that may authenticate as a TLS client (clientAuth), as a verifier requires.
  pki = {
    ...base,
    hub: await issueCertificate(base.ca, {
      dnsNames: ['hub.test'],
      ipAddresses: ['127.0.0.1'],
      serverAuth: true,
      clientAuth: true,
    }),
  };
  const serverCert = await pki.issue(['verifier.test'], ['127.0.0.1']);
  caFile = files.write('verifier-ca.pem', pki.ca.certPem);
  verifier = https.createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: [pki.ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const { token: t } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token: string };
        seen.push({ fingerprint: (req.socket as TLSSocket).getPeerCertificate().fingerprint256, token: t });
        const reply = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (mode === 'unavailable') return reply(503, { valid: false, error: 'maintenance' });
        if (mode === 'forbidden') return reply(403, { valid: false, error: 'who are you' });
        if (mode === 'revoke') return reply(200, { valid: false, claims: null, error: 'device revoked' });
        try {
          // The authorizer's own check: here, the harness secret the node itself does not know.
          const { payload } = await jwtVerify(t, new TextEncoder().encode(TEST_SECRET), {
            issuer: 'authorizer',
            audience: 'nexus',
          });
          reply(200, { valid: true, claims: payload, error: '' });
        } catch (err) {
          reply(200, { valid: false, error: (err as Error).message });
        }
      });
    },
  );
  verifier.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  verifier.listen(0, '127.0.0.1');
  await once(verifier, 'listening');
  verifierUrl = `https://127.0.0.1:${(verifier.address() as AddressInfo).port}/verify`;
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  seen.length = 0;
  mode = 'verify';
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  verifier.close();
  await once(verifier, 'close');
  files.remove();
});

async function node(secret: boolean): Promise<TestNode> {
  const n = await startNode({
    pki,
    listeners: ['http'],
    config: {
      backendsJWTSecret: secret ? TEST_SECRET : undefined,
      remoteVerifierURL: verifierUrl,
      remoteVerifierCaFile: caFile,
    },
  });
  cleanups.push(() => n.close());
  return n;
}

async function labelService(label: string): Promise<TestService> {
  const s = await startService((socket) => {
    socket.once('data', () => socket.end(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${label}`));
  });
  cleanups.push(() => s.close());
  return s;
}

const hubFingerprint = () => new X509Certificate(pki.hub.certPem).fingerprint256;

describe('a node with a remote verifier', () => {
  it('checks a seed-era token there, presenting its hub certificate; no secret is needed', async () => {
    const n = await node(false);
    expect(n.nexus.config.backendsJWTSecrets).toEqual([]);
    const service = await labelService('verified-seed');
    const backend = await n.attachBackend({ hostnames: ['seed.verified.test'], service: service.port });
    cleanups.push(() => backend.close());
    expect(await httpGet(n.httpPort, 'seed.verified.test')).toContain('verified-seed');
    expect(seen.length).toBeGreaterThanOrEqual(1);
    for (const s of seen) expect(s.fingerprint).toBe(hubFingerprint());
  });

  it('checks each token of a current-era backend there: stage 0, stage 1 and every re-authentication', async () => {
    const n = await node(false);
    const service = await labelService('verified-current');
    const registered = new Promise<string>((resolve) =>
      n.nexus.on('backend-connected', (e) => {
        if (e.hostnames.includes('current.verified.test')) resolve(e.id);
      }),
    );
    const client = createBackendClient({
      nodes: [n.hubUrl],
      tokenProvider: { hmacSecret: TEST_SECRET, reauthIntervalSeconds: 1 },
      backend: { name: 'verified-current', hostnames: ['current.verified.test'] },
      tls: { ca: pki.ca.certPem },
      portMappings: resolvePortMappings({ [n.httpPort]: `127.0.0.1:${service.port}` }),
      closeGraceMs: 0,
    });
    client.on('error', () => {});
    cleanups.push(() => client.close({ graceMs: 0 }));
    client.connect();
    const id = await registered;
    expect(await httpGet(n.httpPort, 'current.verified.test')).toContain('verified-current');
    const nonces = () =>
      seen.map(
        (s) =>
          (
            JSON.parse(Buffer.from(s.token.split('.')[1]!, 'base64url').toString()) as {
              session_nonce?: string;
            }
          ).session_nonce,
      );
    // Stage 0 (no nonce), stage 1, then at least one re-authentication round: each a distinct nonce.
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(3), { timeout: 8_000, interval: 50 });
    const [stage0, ...later] = nonces();
    expect(stage0).toBeUndefined();
    expect(later.every((x) => typeof x === 'string' && x.length === 43)).toBe(true);
    expect(new Set(later).size).toBe(later.length);
    for (const s of seen) expect(s.fingerprint).toBe(hubFingerprint());
    expect(n.hub.sessions.map((s) => s.id)).toContain(id);
    expect(n.events.authFailed).toEqual([]);
  });

  it('closes a backend the verifier refuses with 1008 and its reason, secret or not', async () => {
    for (const secret of [false, true]) {
      const n = await node(secret);
      mode = 'revoke';
      const raw = await rawBackend(pki, n.hubPort, await token(['revoked.test']));
      expect(await raw.closed).toEqual({ code: 1008, reason: 'token refused by verifier: device revoked' });
      expect(n.events.authFailed.map((e) => e.reason)).toEqual(['token refused by verifier: device revoked']);
      mode = 'forbidden';
      const raw2 = await rawBackend(pki, n.hubPort, await token(['forbidden.test']));
      expect(await raw2.closed).toEqual({ code: 1008, reason: 'token refused by verifier (HTTP 403)' });
    }
  });

  it('falls back to its secret while the verifier answers 5xx, and refuses without one', async () => {
    mode = 'unavailable';
    const withSecret = await node(true);
    const service = await labelService('fallback');
    const backend = await withSecret.attachBackend({ hostnames: ['fallback.test'], service: service.port });
    cleanups.push(() => backend.close());
    expect(await httpGet(withSecret.httpPort, 'fallback.test')).toContain('fallback');
    expect(seen.length).toBeGreaterThanOrEqual(1); // asked first

    const withoutSecret = await node(false);
    const raw = await rawBackend(pki, withoutSecret.hubPort, await token(['nobody.test']));
    expect(await raw.closed).toEqual({ code: 1008, reason: 'token verifier unavailable' });
  });

  it('a reload that changes the verifier reports that a restart applies it', async () => {
    const n = await node(true);
    const result = await n.nexus.reload(
      Object.freeze({
        ...n.nexus.config,
        remoteVerifier: { url: 'https://other.example.com/verify', timeoutMs: 10_000, caFile: undefined },
      }),
    );
    expect(result.restartRequired).toContain('remoteVerifierURL');
  });
});
