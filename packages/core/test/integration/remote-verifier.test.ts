/**
 * The remote token verifier against a real local HTTPS server that requires the hub's certificate as
 * its TLS client certificate (mutual TLS with a test CA): valid and invalid answers, fallback to the local
 * secret on a 5xx or a transport failure, refusal on any other status, hostile bodies, the timeout, and the
 * certificate in force for each request.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { recordingLogger } from '@nexus-proxy/test-harness';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintBackendToken, verifyBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import { AuthError, InvalidConfigError } from '../../src/errors.js';
import { createRemoteVerifier, type RemoteVerifier, type TokenVerifier } from '../../src/remote-verifier.js';

const SECRET = 'remote-verifier-test-secret-0123456789abcdef';

interface Seen {
  /** SHA-256 fingerprint of the client certificate the hub presented. */
  fingerprint: string;
  method: string;
  contentType: string | undefined;
  body: unknown;
}

type Handler = (body: unknown, req: IncomingMessage, res: ServerResponse) => void;

let ca: CertificateAndKey;
let otherCa: CertificateAndKey;
let serverCert: CertificateAndKey;
let hubCert: CertificateAndKey;
let renewedHubCert: CertificateAndKey;
let strangerCert: CertificateAndKey;
let server: https.Server;
let url: string;
let handler: Handler;
const seen: Seen[] = [];
const sockets = new Set<Socket>();
const verifiers: RemoteVerifier[] = [];

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

const localFallback: TokenVerifier = async (token) =>
  (await verifyBackendToken(token, { secrets: [SECRET], issuer: 'authorizer', audience: 'nexus' })).claims;

function verifier(
  options: Partial<Parameters<typeof createRemoteVerifier>[0]> & {
    cert?: () => CertificateAndKey | undefined;
  },
): RemoteVerifier {
  const v = createRemoteVerifier({
    url,
    ca: [ca.certPem],
    clientCertificate: options.cert ?? (() => hubCert),
    ...options,
  });
  verifiers.push(v);
  return v;
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
};

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Remote Verifier Test CA' });
  otherCa = await createCertificateAuthority({ commonName: 'Some Other CA' });
  serverCert = await issueCertificate(ca, { dnsNames: ['verifier.test'], ipAddresses: ['127.0.0.1'] });
  const hubOptions = {
    dnsNames: ['hub.test'],
    ipAddresses: ['127.0.0.1'],
    serverAuth: true,
    clientAuth: true,
  };
  hubCert = await issueCertificate(ca, hubOptions);
  renewedHubCert = await issueCertificate(ca, hubOptions);
  strangerCert = await issueCertificate(otherCa, hubOptions);
  server = https.createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = Buffer.concat(chunks).toString('utf8');
        }
        seen.push({
          fingerprint: peer.fingerprint256,
          method: req.method ?? '',
          contentType: req.headers['content-type'],
          body,
        });
        handler(body, req, res);
      });
    },
  );
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/verify`;
});

afterEach(() => {
  for (const v of verifiers.splice(0)) v.close();
  seen.length = 0;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  server.close();
  await once(server, 'close');
});

async function token(hostnames = ['app.example.com'], secret = SECRET): Promise<string> {
  return mintBackendToken({ secret, hostnames, ttlSeconds: 60 });
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(AuthError.is(err), `expected an AuthError, got ${String(err)}`).toBe(true);
  return (err as AuthError).reason;
}

describe('remote verifier', () => {
  it('posts {"token"} with the hub certificate and returns the verifier’s claims', async () => {
    const claims = { hostnames: ['app.example.com'], weight: 3, iss: 'authorizer', aud: ['nexus'] };
    handler = (_body, _req, res) => json(res, 200, { valid: true, claims, error: '' });
    const t = await token();
    const got = await verifier({}).verify(t);
    expect(got).toEqual(claims);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe('POST');
    expect(seen[0]?.contentType).toBe('application/json');
    expect(seen[0]?.body).toEqual({ token: t });
    expect(seen[0]?.fingerprint).toBe(fingerprint(hubCert.certPem));
  });

  it('presents the certificate in force at each request (a renewal replaces it)', async () => {
    handler = (_body, _req, res) => json(res, 200, { valid: true, claims: { hostnames: ['a.test'] } });
    let current = hubCert;
    const v = verifier({ cert: () => current });
    await v.verify('first');
    current = renewedHubCert;
    await v.verify('second');
    expect(seen.map((s) => s.fingerprint)).toEqual([
      fingerprint(hubCert.certPem),
      fingerprint(renewedHubCert.certPem),
    ]);
  });

  it('valid:false refuses with the verifier’s error text, cleaned and bounded', async () => {
    handler = (_body, _req, res) => json(res, 200, { valid: false, error: 'device revoked' });
    expect(await refusal(verifier({ fallback: localFallback }).verify(await token()))).toBe(
      'token refused by verifier: device revoked',
    );

    handler = (_body, _req, res) =>
      json(res, 200, { valid: false, error: `evil\u0000\r\nline\u202e${'x'.repeat(5000)}` });
    const reason = await refusal(verifier({}).verify('t'));
    expect(reason.startsWith('token refused by verifier: evil line x')).toBe(true);
    expect(reason).not.toMatch(/[\u0000-\u001f\u202e]/);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);

    handler = (_body, _req, res) => json(res, 200, { valid: false });
    expect(await refusal(verifier({}).verify('t'))).toBe('token refused by verifier');
  });

  it('a 5xx falls back to the local secret when there is one, and refuses without one', async () => {
    handler = (_body, _req, res) => json(res, 503, { valid: false, error: 'maintenance' });
    const good = await token(['fallback.example.com']);
    const claims = await verifier({ fallback: localFallback }).verify(good);
    expect(claims.hostnames).toEqual(['fallback.example.com']);
    expect(seen).toHaveLength(1);
    // The fallback is the full local check: a token signed with another secret is still refused.
    expect(
      await refusal(
        verifier({ fallback: localFallback }).verify(await token(['x.test'], 'wrong-secret-0123456789')),
      ),
    ).toBe('invalid token signature');
    expect(await refusal(verifier({}).verify(good))).toBe('token verifier unavailable');
  });

  it('a transport failure (refused connection, refused client certificate) falls back', async () => {
    const good = await token(['transport.example.com']);
    // Nothing listens on the port any more.
    const closed = https.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadUrl = `https://127.0.0.1:${(closed.address() as AddressInfo).port}/verify`;
    closed.close();
    await once(closed, 'close');
    const dead = verifier({ url: deadUrl, fallback: localFallback });
    expect((await dead.verify(good)).hostnames).toEqual(['transport.example.com']);
    expect(await refusal(verifier({ url: deadUrl }).verify(good))).toBe('token verifier unavailable');

    // The server refuses a certificate from another CA during the handshake.
    handler = (_body, _req, res) => json(res, 200, { valid: true, claims: { hostnames: ['never.test'] } });
    const stranger = verifier({ cert: () => strangerCert, fallback: localFallback });
    expect((await stranger.verify(good)).hostnames).toEqual(['transport.example.com']);
    // …and no certificate at all.
    const none = verifier({ cert: () => undefined });
    expect(await refusal(none.verify(good))).toBe('token verifier unavailable');
    expect(seen).toHaveLength(0);
  });

  it('logs an outage a few lines at a time, then a count', async () => {
    const log = recordingLogger([], 'warn');
    const closed = https.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadUrl = `https://127.0.0.1:${(closed.address() as AddressInfo).port}/verify`;
    closed.close();
    await once(closed, 'close');
    const v = verifier({ url: deadUrl, fallback: localFallback, logger: log });
    const t = await token(['outage.example.com']);
    for (let i = 0; i < 20; i++) expect((await v.verify(t)).hostnames).toEqual(['outage.example.com']);
    v.close();
    const unavailable = log.lines.filter((l) => l.msg.startsWith('token verifier unavailable'));
    expect(unavailable).toHaveLength(5);
    expect(log.lines.filter((l) => l.msg.includes('lines suppressed'))).toMatchObject([
      { fields: { kind: 'unavailable', suppressed: 15 } },
    ]);
  });

  it('a verifier whose server certificate is not trusted is unavailable', async () => {
    const v = verifier({ ca: [otherCa.certPem], fallback: localFallback });
    handler = (_body, _req, res) => json(res, 200, { valid: true, claims: { hostnames: ['never.test'] } });
    expect((await v.verify(await token(['local.example.com']))).hostnames).toEqual(['local.example.com']);
    expect(seen).toHaveLength(0);
  });

  it('trusts the CA file it is given, and is unavailable when that file cannot be used', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remote-verifier-'));
    try {
      const good = join(dir, 'ca.pem');
      const empty = join(dir, 'empty.pem');
      writeFileSync(good, `# the verifier's CA\n${ca.certPem}`);
      writeFileSync(empty, 'no certificate here\n');
      handler = (_body, _req, res) => json(res, 200, { valid: true, claims: { hostnames: ['file.test'] } });
      const fromFile = verifier({ ca: undefined, caFile: good });
      expect((await fromFile.verify('t')).hostnames).toEqual(['file.test']);
      const t = await token(['local.example.com']);
      for (const caFile of [empty, join(dir, 'missing.pem')]) {
        const v = verifier({ ca: undefined, caFile, fallback: localFallback });
        expect((await v.verify(t)).hostnames).toEqual(['local.example.com']);
        expect(await refusal(verifier({ ca: undefined, caFile }).verify(t))).toBe(
          'token verifier unavailable',
        );
      }
      expect(seen).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('any other status refuses, even with a local secret', async () => {
    for (const status of [403, 401, 404, 302, 204]) {
      handler = (_body, _req, res) => {
        res.writeHead(status, status === 302 ? { location: 'https://127.0.0.1:1/' } : {});
        res.end();
      };
      expect(await refusal(verifier({ fallback: localFallback }).verify(await token()))).toBe(
        `token refused by verifier (HTTP ${status})`,
      );
    }
  });

  it('garbage, wrongly typed and oversize answers refuse the token', async () => {
    const cases: Array<[string, string]> = [
      ['not json', 'invalid verifier response'],
      ['', 'invalid verifier response'],
      ['[]', 'invalid verifier response'],
      ['null', 'invalid verifier response'],
      ['{"valid":"true","claims":{}}', 'invalid verifier response'],
      ['{"valid":true}', 'verifier returned no claims'],
      ['{"valid":true,"claims":null}', 'verifier returned no claims'],
      ['{"valid":true,"claims":[1,2]}', 'invalid verifier response'],
      ['{"valid":true,"claims":"x"}', 'invalid verifier response'],
      ['{"valid":false,"error":{"a":1}}', 'invalid verifier response'],
      [`${'['.repeat(100_000)}`, 'invalid verifier response'],
    ];
    for (const [body, reason] of cases) {
      handler = (_b, _req, res) => json(res, 200, body);
      expect(await refusal(verifier({ fallback: localFallback }).verify('t')), body.slice(0, 40)).toBe(
        reason,
      );
    }
    // A prototype key in the claims stays an ordinary own property.
    handler = (_b, _req, res) =>
      json(res, 200, '{"valid":true,"claims":{"__proto__":{"polluted":1},"sub":"s"}}');
    const claims = await verifier({}).verify('t');
    expect(claims.sub).toBe('s');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    // Over the size limit, whether announced or streamed without a length.
    handler = (_b, _req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"valid":true,"claims":{"pad":"`);
      const chunk = 'x'.repeat(64 * 1024);
      for (let i = 0; i < 8; i++) res.write(chunk);
      res.end('"}}');
    };
    expect(
      await refusal(verifier({ maxResponseBytes: 64 * 1024, fallback: localFallback }).verify('t')),
    ).toBe('invalid verifier response');
  });

  it('no answer within the timeout is a transport failure (fallback); a stalled body refuses', async () => {
    const good = await token(['slow.example.com']);
    handler = () => {}; // never answers
    const started = Date.now();
    const v = verifier({ timeoutMs: 200, fallback: localFallback });
    expect((await v.verify(good)).hostnames).toEqual(['slow.example.com']);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(v.inFlight).toBe(0);
    expect(await refusal(verifier({ timeoutMs: 200 }).verify(good))).toBe('token verifier unavailable');

    handler = (_b, _req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"valid":true,'); // and nothing more
    };
    expect(await refusal(verifier({ timeoutMs: 200, fallback: localFallback }).verify(good))).toBe(
      'invalid verifier response',
    );
  });

  it('close() aborts the requests in flight and refuses later ones', async () => {
    handler = () => {};
    const v = verifier({ fallback: localFallback });
    const pending = v.verify(await token());
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(v.inFlight).toBe(1);
    v.close();
    expect(await refusal(pending)).toBe('shutdown');
    expect(await refusal(v.verify('t'))).toBe('shutdown');
  });

  it('refuses a URL that is not https', () => {
    for (const bad of ['http://127.0.0.1/verify', 'not a url', 'https://']) {
      expect(() => createRemoteVerifier({ url: bad, clientCertificate: () => hubCert })).toThrow(
        InvalidConfigError,
      );
    }
  });
});
