/**
 * The current era's golden vectors (test/vectors/: challenge frames, each stage's tokens and claims, the
 * remote verifier exchange), made by the reference's own code from the inputs of its own tests (each file
 * names its source), run through our code: the backend client's challenge parser and HMAC provider, the
 * node's token checks, and the remote verifier against a real local HTTPS server that answers as each
 * vector says.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  createHmacTokenProvider,
  hmacTokenClaims,
  issueToken,
  parseChallenge,
  type TokenRequest,
} from '@nexus-proxy/backend-client';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBackendToken } from '../src/auth.js';
import { chooseBackendEra } from '../src/backend-era.js';
import {
  checkHandshakeAge,
  claimSetMismatch,
  DEFAULT_CLAIM_POLICY,
  parseCurrentClaims,
} from '../src/current-claims.js';
import { createChallengeNonce, encodeChallenge } from '../src/hub-handshake.js';
import { type CertificateAndKey, createCertificateAuthority, issueCertificate } from '../src/certificates.js';
import { AuthError } from '../src/errors.js';
import { createRemoteVerifier, type TokenVerifier } from '../src/remote-verifier.js';

function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8')) as T;
}

interface Source {
  repository: string;
  commit: string;
  tests: string[];
  code: string[];
  how: string;
}
const challenges = load<{
  source: Source;
  nonceBytesHex: string;
  vectors: Array<{ type: string; nonce: string; text: string }>;
}>('current-era-challenges.json');
type Stage = 'handshake' | 'attest' | 'reauth';
const claimsFile = load<{
  source: Source;
  tokenSets: Array<{
    name: string;
    secret: string;
    nonce: string;
    stages: Record<Stage, { token: string; hubClaimsJson: string }>;
  }>;
}>('current-era-claims.json');
const verifierFile = load<{
  source: Source;
  request: { method: string; contentType: string; body: string };
  exchanges: Array<{
    name: string;
    localSecret: boolean;
    status: number | null;
    body: string | null;
    outcome: 'accepted' | 'rejected';
    claimsJson?: string;
    error?: string;
  }>;
}>('remote-verifier.json');

const STAGES: Stage[] = ['handshake', 'attest', 'reauth'];
const REFERENCE = {
  repository: 'AtDexters-Lab/nexus-proxy-server',
  commit: 'a34ac85d2e86a7826a10e05635d4981d44331d2d',
};

/** The claims the reference hub sees, without its hub-side `issued_at_quote` (always "" here). */
function hubClaims(json: string): Record<string, unknown> {
  const { issued_at_quote: quote, ...rest } = JSON.parse(json) as Record<string, unknown>;
  expect(quote).toBe('');
  return rest;
}

describe('current-era vector files', () => {
  it('name their source: the reference repository, its commit, tests and code', () => {
    for (const file of [challenges, claimsFile, verifierFile]) {
      expect(file.source).toMatchObject(REFERENCE);
      expect(file.source.tests.length).toBeGreaterThan(0);
      expect(file.source.code.length).toBeGreaterThan(0);
    }
  });
});

describe('challenge frames', () => {
  it('are {"type","nonce"} objects in that key order, nothing else', () => {
    expect(challenges.vectors.map((v) => v.type)).toEqual(
      expect.arrayContaining(['handshake_challenge', 'reauth_challenge']),
    );
    for (const v of challenges.vectors) {
      expect(Object.keys(JSON.parse(v.text))).toEqual(['type', 'nonce']);
      // What a hub written in TypeScript sends for the same challenge is the same text.
      expect(JSON.stringify({ type: v.type, nonce: v.nonce })).toBe(v.text);
    }
  });

  it('a hub nonce is 32 bytes as unpadded base64url (43 characters)', () => {
    const generated = challenges.vectors.filter((v) => v.nonce.length === 43);
    expect(generated.length).toBe(2);
    for (const v of generated) {
      expect(v.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(v.nonce, 'base64url').toString('hex')).toBe(challenges.nonceBytesHex);
      expect(Buffer.from(challenges.nonceBytesHex, 'hex').toString('base64url')).toBe(v.nonce);
    }
  });

  it('the hub writes each of them byte for byte, and makes nonces of the same form', () => {
    for (const v of challenges.vectors) {
      expect(encodeChallenge(v.type as 'handshake_challenge' | 'reauth_challenge', v.nonce)).toBe(v.text);
    }
    const nonces = new Set(Array.from({ length: 50 }, () => createChallengeNonce()));
    expect(nonces.size).toBe(50);
    for (const nonce of nonces) {
      expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(nonce, 'base64url')).toHaveLength(32);
    }
  });

  it('the backend client reads each of them', () => {
    for (const v of challenges.vectors) {
      expect(parseChallenge(Buffer.from(v.text, 'utf8'))).toEqual({ type: v.type, nonce: v.nonce });
    }
  });
});

describe('claims of each stage (the reference client’s HMAC provider)', () => {
  for (const set of claimsFile.tokenSets) {
    describe(set.name, () => {
      it.each(STAGES)('%s: an HS256 JWT whose payload is what the reference hub sees', async (stage) => {
        const { token, hubClaimsJson } = set.stages[stage];
        expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
        const payload = decodeJwt(token);
        expect(payload).toEqual(hubClaims(hubClaimsJson));
        // Signed with the UTF-8 bytes of the secret; iss/aud as current-era hubs require.
        const { payload: verified } = await jwtVerify(token, new TextEncoder().encode(set.secret), {
          algorithms: ['HS256'],
          issuer: 'authorizer',
          audience: 'nexus',
          currentDate: new Date(payload.iat! * 1000),
        });
        expect(verified).toEqual(payload);
      });

      it('stage 0 carries no nonce; stage 1 and re-authentication carry the challenge’s', () => {
        const [h, a, r] = STAGES.map((s) => decodeJwt(set.stages[s].token));
        expect(h).not.toHaveProperty('session_nonce');
        expect(a?.session_nonce).toBe(set.nonce);
        expect(r?.session_nonce).toBe(set.nonce);
        for (const c of [a, r]) expect(c).not.toHaveProperty('handshake_max_age_seconds');
        // `weight` is always there; the registered claims come last, in the reference's order.
        for (const c of [h, a, r]) {
          expect(typeof c?.weight).toBe('number');
          expect(Object.keys(c!).slice(-5)).toEqual(['iss', 'sub', 'aud', 'exp', 'iat']);
        }
        // Stage 1 and re-authentication repeat stage 0's sets exactly (what the hub compares).
        for (const key of ['hostnames', 'tcp_ports', 'udp_routes', 'weight'] as const) {
          expect(a?.[key]).toEqual(h?.[key]);
          expect(r?.[key]).toEqual(h?.[key]);
        }
      });

      it.each(STAGES)(
        '%s: the backend client’s HMAC provider issues the same token at the same clock',
        async (stage) => {
          const golden = set.stages[stage].token;
          const claims = decodeJwt(golden);
          // The provider's options, read back from the tokens (stage 0 alone carries the max age).
          const options = {
            hmacSecret: set.secret,
            tokenTTLSeconds: claims.exp! - claims.iat!,
            ...intOption(
              'handshakeMaxAgeSeconds',
              decodeJwt(set.stages.handshake.token).handshake_max_age_seconds,
            ),
            ...intOption('reauthIntervalSeconds', claims.reauth_interval_seconds),
            ...intOption('reauthGraceSeconds', claims.reauth_grace_seconds),
            ...intOption('maintenanceGraceCapSeconds', claims.maintenance_grace_cap_seconds),
          };
          const request: TokenRequest = {
            stage,
            sessionNonce: stage === 'handshake' ? '' : set.nonce,
            backendName: claims.sub!,
            hostnames: (claims.hostnames as string[] | undefined) ?? [],
            tcpPorts: (claims.tcp_ports as number[] | undefined) ?? [],
            udpRoutes: (
              (claims.udp_routes as Array<{ port: number; flow_idle_timeout_seconds?: number }>) ?? []
            ).map((r) => ({
              port: r.port,
              ...(r.flow_idle_timeout_seconds !== undefined
                ? { flowIdleTimeoutSeconds: r.flow_idle_timeout_seconds }
                : {}),
            })),
            weight: claims.weight as number,
            outboundAllowed: false,
            allowedOutboundPorts: [],
          };
          expect(hmacTokenClaims(request, options, claims.iat! * 1000 + 500)).toEqual(claims);
          const provider = createHmacTokenProvider({ ...options, now: () => claims.iat! * 1000 + 500 });
          expect((await issueToken(provider, request)).token).toBe(golden);
        },
      );

      // Port-claims-only tokens carry no hostnames: their routes arrive with port claims.
      if (decodeJwt(set.stages.handshake.token).hostnames !== undefined) {
        it('the node’s local check accepts its hostname tokens with the current era’s iss/aud', async () => {
          const token = set.stages.handshake.token;
          const claims = decodeJwt(token);
          const verified = await verifyBackendToken(token, {
            secrets: [set.secret],
            issuer: 'authorizer',
            audience: 'nexus',
            now: () => claims.iat! * 1000,
          });
          expect(verified.hostnames).toEqual(claims.hostnames);
          expect(verified.weight).toBe(claims.weight);
        });
      }
    });
  }
});

describe('claims of each stage through the hub’s current-era checks', () => {
  // A policy that admits the vectors' port claims (the default refuses every port claim).
  const policy = {
    ...DEFAULT_CLAIM_POLICY,
    allowedTCPPortClaims: [22, 443],
    allowedUDPPortClaims: [53, 67],
  };
  for (const set of claimsFile.tokenSets) {
    it(`${set.name}: stage 0 is current-era, stages 1 and re-authentication repeat its sets and carry the nonce`, () => {
      const payloads = Object.fromEntries(STAGES.map((s) => [s, decodeJwt(set.stages[s].token)])) as Record<
        Stage,
        ReturnType<typeof decodeJwt>
      >;
      expect(chooseBackendEra(payloads.handshake)).toBe('current');
      const parsed = Object.fromEntries(
        STAGES.map((s) => [s, parseCurrentClaims(payloads[s], policy)]),
      ) as Record<Stage, ReturnType<typeof parseCurrentClaims>>;
      const stage0 = parsed.handshake;
      expect(stage0.sessionNonce).toBeUndefined();
      expect(stage0.hostnames).toEqual(payloads.handshake.hostnames ?? []);
      expect(stage0.tcpPorts).toEqual(payloads.handshake.tcp_ports ?? []);
      expect(stage0.weight).toBe(payloads.handshake.weight);
      for (const stage of ['attest', 'reauth'] as const) {
        expect(parsed[stage].sessionNonce).toBe(set.nonce);
        expect(claimSetMismatch(stage0, parsed[stage], 'the handshake token')).toBeUndefined();
      }
      // The same claims as the reference hub reads them (its hubClaimsJson) parse the same way.
      expect(parseCurrentClaims(hubClaims(set.stages.handshake.hubClaimsJson), policy)).toEqual(stage0);
      // handshake_max_age_seconds: fresh at iat, too old one second past the limit.
      const iat = payloads.handshake.iat!;
      expect(() => checkHandshakeAge(stage0, iat * 1000)).not.toThrow();
      const maxAge = stage0.handshakeMaxAgeSeconds;
      if (maxAge !== undefined) {
        expect(() => checkHandshakeAge(stage0, (iat + maxAge + 1) * 1000)).toThrow(AuthError);
      }
    });
  }

  it('the claims a verifier returns for an accepted token parse like the token’s own', () => {
    const accepted = verifierFile.exchanges.filter((e) => e.outcome === 'accepted');
    expect(accepted.length).toBeGreaterThan(0);
    for (const e of accepted) {
      const parsed = parseCurrentClaims(hubClaims(e.claimsJson!), policy);
      expect(parsed.hostnames).toEqual(['example.com']);
      expect(parsed.weight).toBe(2);
    }
  });
});

function intOption(name: string, value: unknown): Record<string, number> {
  return typeof value === 'number' ? { [name]: value } : {};
}

describe('remote verifier exchange', () => {
  let ca: CertificateAndKey;
  let hub: CertificateAndKey;
  let server: https.Server;
  let url: string;
  let answer: { status: number; body: string } = { status: 200, body: '' };
  const requests: Array<{ method: string; contentType: string | undefined; body: string }> = [];
  const set = claimsFile.tokenSets[0]!;
  const token = set.stages.handshake.token;
  const iat = decodeJwt(token).iat!;
  // The node's local check at the clock the token was issued (the fallback of an unavailable verifier).
  const local: TokenVerifier = async (t) =>
    (
      await verifyBackendToken(t, {
        secrets: [set.secret],
        issuer: 'authorizer',
        audience: 'nexus',
        now: () => iat * 1000,
      })
    ).claims;

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'Vector Verifier CA' });
    const serverCert = await issueCertificate(ca, { ipAddresses: ['127.0.0.1'] });
    hub = await issueCertificate(ca, { ipAddresses: ['127.0.0.1'], serverAuth: true, clientAuth: true });
    server = https.createServer(
      {
        cert: serverCert.certPem,
        key: serverCert.keyPem,
        ca: [ca.certPem],
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          requests.push({
            method: req.method ?? '',
            contentType: req.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
          });
          res.writeHead(answer.status);
          res.end(answer.body);
        });
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/verify`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('posts what the reference hub posts, byte for byte', async () => {
    answer = { status: 200, body: '{"valid":false}' };
    requests.length = 0;
    const verifier = createRemoteVerifier({ url, ca: [ca.certPem], clientCertificate: () => hub });
    await verifier.verify(token).catch(() => undefined);
    verifier.close();
    expect(requests).toEqual([
      {
        method: verifierFile.request.method,
        contentType: verifierFile.request.contentType,
        body: verifierFile.request.body,
      },
    ]);
    expect(JSON.parse(verifierFile.request.body)).toEqual({ token });
  });

  for (const vector of verifierFile.exchanges) {
    const label = `${vector.name}${vector.status !== null ? ` (HTTP ${vector.status})` : ''}, ${vector.localSecret ? 'with' : 'without'} a local secret: ${vector.outcome}`;
    it(label, async () => {
      let target = url;
      if (vector.status === null) {
        // Nothing listens there: a port just released.
        const gone = https.createServer();
        gone.listen(0, '127.0.0.1');
        await once(gone, 'listening');
        target = `https://127.0.0.1:${(gone.address() as AddressInfo).port}/verify`;
        gone.close();
        await once(gone, 'close');
      } else {
        answer = { status: vector.status, body: vector.body ?? '' };
      }
      const verifier = createRemoteVerifier({
        url: target,
        ca: [ca.certPem],
        clientCertificate: () => hub,
        ...(vector.localSecret ? { fallback: local } : {}),
      });
      const result = await verifier.verify(token).then(
        (claims) => ({ ok: true as const, claims }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      verifier.close();
      if (vector.outcome === 'accepted') {
        expect(result.ok, String(!result.ok && result.err)).toBe(true);
        // The reference re-marshals the claims through its struct; the same claims, key order aside.
        if (result.ok) expect(result.claims).toEqual(hubClaims(vector.claimsJson!));
      } else {
        expect(result.ok).toBe(false);
        if (!result.ok) expect(AuthError.is(result.err)).toBe(true);
      }
    });
  }
});
