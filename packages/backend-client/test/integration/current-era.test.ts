/**
 * The current era on real sockets (TLS WebSocket hub, real multiplexer): the attested handshake with the
 * HMAC and command providers, re-authentication answered while streams keep flowing, and every way the
 * handshake or a re-authentication can fail.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { MuxStream } from '@nexus-proxy/mux-protocol';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attestationClientOptions } from '../../src/attestation-config.js';
import { type BackendClient, createBackendClient } from '../../src/backend-client.js';
import type { BackendClientOptions } from '../../src/client-options.js';
import { parseBackendClientConfig } from '../../src/config.js';
import { HandshakeError, SessionError, TokenCommandError, TokenError } from '../../src/errors.js';
import type { DisconnectedEvent } from '../../src/node-connection.js';
import { resolvePortMappings } from '../../src/port-mappings.js';
import { AttestedHub, type AttestedSession } from './attested-hub.js';
import { startLocalService, waitFor } from './helpers.js';
import { type HubConnection, makeCertificate, TestHub } from './test-hub.js';

const cert = makeCertificate();
const SECRET = 'current-era-test-secret-0123456789abcdef';
const BACKEND = { name: 'device-7', hostnames: ['app.example.com'] };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let hub: AttestedHub;
let raw: TestHub;
let dir: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  hub = await AttestedHub.start(cert, SECRET);
  raw = await TestHub.start(cert);
  dir = await mkdtemp(join(tmpdir(), 'nexus-current-era-'));
});
afterAll(async () => {
  await hub.close();
  await raw.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  hub.sessions.length = 0;
  hub.refused.length = 0;
  raw.connections.length = 0;
});

function client(url: string, options: Partial<BackendClientOptions>): BackendClient {
  const c = createBackendClient({
    nodes: [url],
    tls: { ca: cert.cert },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    closeGraceMs: 0,
    portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
    ...options,
  } as BackendClientOptions);
  cleanups.push(() => c.close());
  return c;
}

async function echoService() {
  const service = await startLocalService((socket) => socket.pipe(socket));
  cleanups.push(() => service.close());
  return service;
}

function open(session: AttestedSession): MuxStream {
  return session.mux!.openStream({
    connPort: 443,
    clientIp: '192.0.2.1:1234',
    hostname: 'app.example.com',
    isTls: true,
  });
}

/** Sends `payload` through an echo stream and resolves with what came back. */
async function echo(stream: MuxStream, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  const done = new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= payload.length) resolve();
    });
  });
  stream.write(payload);
  await done;
  return Buffer.concat(chunks);
}

/** The next `event` of `c` (unlike `events.once`, an 'error' meanwhile does not reject it). */
function next(c: BackendClient, event: 'disconnected'): Promise<DisconnectedEvent> {
  return new Promise((resolve) => c.once(event, resolve));
}

describe('current era: attested handshake (HMAC provider)', () => {
  it('sends stage 0, answers the challenge with its nonce, then serves streams', async () => {
    const service = await echoService();
    const c = client(hub.url, {
      tokenProvider: { hmacSecret: SECRET, handshakeMaxAgeSeconds: 30 },
      backend: { ...BACKEND, tcpPorts: [2222], weight: 3 },
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
    });
    const connected = once(c, 'connected');
    c.connect();
    const session = await hub.session();
    expect(await connected).toEqual([{ node: hub.url, era: 'current' }]);
    const [stage0, stage1] = session.claims;
    expect(stage0).toMatchObject({
      sub: 'device-7',
      hostnames: ['app.example.com'],
      tcp_ports: [2222],
      weight: 3,
    });
    expect(stage0).toMatchObject({ handshake_max_age_seconds: 30 });
    expect(stage0).not.toHaveProperty('session_nonce');
    expect(stage1!.session_nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(stage1).not.toHaveProperty('handshake_max_age_seconds');
    const payload = randomBytes(256 * 1024);
    expect(sha256(await echo(open(session), payload))).toBe(sha256(payload));
  });

  it('loads an attestation config (reference format) and attaches with it', async () => {
    const config = parseBackendClientConfig(`backends:
  - name: "edge-apps"
    hostnames: ["app.example.com"]
    nexusAddresses: ["${hub.url}"]
    weight: 2
    attestation:
      hmacSecret: "${SECRET}"
      tokenTTLSeconds: 45
      reauthIntervalSeconds: 900
      reauthGraceSeconds: 15
      policyVersion: "p-7"
    portMappings:
      443:
        default: "127.0.0.1:9"
`);
    const backend = config.backends[0]!;
    expect(backend.era).toBe('current');
    const c = client(hub.url, attestationClientOptions(backend, backend.attestation!));
    c.connect();
    const session = await hub.session();
    expect(session.claims[1]).toMatchObject({
      sub: 'edge-apps',
      weight: 2,
      reauth_interval_seconds: 900,
      reauth_grace_seconds: 15,
      policy_version: 'p-7',
    });
    expect(session.claims[1]!.exp! - session.claims[1]!.iat!).toBe(45);
  });
});

describe('current era: re-authentication', () => {
  it('answers every reauth_challenge with a fresh token while a bulk transfer keeps flowing, no byte lost', async () => {
    const service = await echoService();
    const c = client(hub.url, {
      tokenProvider: { hmacSecret: SECRET, reauthIntervalSeconds: 1 },
      backend: BACKEND,
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
    });
    let events = 0;
    c.on('reauth', () => events++);
    c.connect();
    const session = await hub.session();
    const payload = randomBytes(24 * 1024 * 1024);
    const transfer = echo(open(session), payload);
    let finished = false;
    void transfer.then(() => {
      finished = true;
    });
    const nonces = new Set<unknown>();
    while (!finished || nonces.size < 3) {
      // As a reference hub does: the next round an interval (1 s) after the answer. The transfer runs meanwhile.
      if (nonces.size > 0) await sleep(1_000);
      const claims = await session.reauth(5_000);
      nonces.add(claims.session_nonce);
      expect(claims).toMatchObject({
        sub: 'device-7',
        hostnames: ['app.example.com'],
        reauth_interval_seconds: 1,
      });
      expect(claims).not.toHaveProperty('handshake_max_age_seconds');
    }
    expect(sha256(await transfer)).toBe(sha256(payload));
    expect(nonces.size).toBeGreaterThanOrEqual(3);
    await waitFor(() => events === nonces.size, 2_000, 'reauth events');
    expect(c.stats().nodes[0]!.reauths).toBe(nonces.size);
    expect(c.stats().nodes[0]!.sessionsOpened).toBe(1);
  });

  it('answers ahead of the DATA it still has queued', async () => {
    const total = 48 * 1024 * 1024;
    const service = await startLocalService((socket) => {
      const chunk = Buffer.alloc(256 * 1024, 7);
      let left = total;
      const pump = (): void => {
        while (left > 0) {
          left -= chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    });
    cleanups.push(() => service.close());
    const c = client(hub.url, {
      tokenProvider: { hmacSecret: SECRET },
      backend: BACKEND,
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
    });
    c.connect();
    const session = await hub.session();
    const stream = open(session);
    let received = 0;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    stream.write('GET / HTTP/1.1\r\n\r\n');
    await waitFor(() => session.dataBytes > 1024 * 1024, 10_000, 'the download to start');
    const claims = await session.reauth(5_000);
    expect(claims.dataBytesBefore).toBeLessThan(total / 2);
    await waitFor(() => received >= total, 30_000, 'the whole download');
    expect(received).toBe(total);
  });

  it('ends the session with a clear log line when the reauth token cannot be issued, then reconnects', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    let failReauth = true;
    const c = client(hub.url, {
      tokenProvider: async (request) => {
        if (request.stage === 'reauth' && failReauth) throw new Error('authorizer unreachable');
        const { createHmacTokenProvider } = await import('../../src/hmac-token-provider.js');
        return createHmacTokenProvider({ hmacSecret: SECRET })(request);
      },
      backend: BACKEND,
      logger,
    });
    const errors: Error[] = [];
    c.on('error', (err) => errors.push(err));
    const disconnected = next(c, 'disconnected');
    c.connect();
    const first = await hub.session();
    const closed = once(first.ws, 'close');
    first.ws.send(JSON.stringify({ type: 'reauth_challenge', nonce: randomBytes(32).toString('base64url') }));
    const [code] = await closed;
    expect(code).toBe(1011);
    expect(await disconnected).toMatchObject({ reason: 'reauth_failed' });
    expect(errors[0]).toBeInstanceOf(TokenError);
    expect(errors[0]!.message).toContain('authorizer unreachable');
    expect(lines.find((l) => String(l.msg).includes('re-authentication'))).toMatchObject({
      level: 50, // error
      msg: 'cannot answer the hub’s re-authentication challenge; ending the session',
      code: 'NEXUS_ERR_TOKEN',
      component: 'backend-client',
    });
    failReauth = false;
    const second = await hub.session(1);
    expect((await second.reauth()).sub).toBe('device-7');
  });

  it('ends the session on a reauth_challenge without a nonce; ignores other text frames', async () => {
    const service = await echoService();
    const c = client(hub.url, {
      tokenProvider: { hmacSecret: SECRET },
      backend: BACKEND,
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
    });
    c.connect();
    const session = await hub.session();
    session.ws.send('not json at all');
    session.ws.send(JSON.stringify({ type: 'handshake_challenge', nonce: 'late' }));
    session.ws.send(JSON.stringify({ type: 'something_new', nonce: 'x' }));
    session.ws.send(JSON.stringify({ type: 'something_big', padding: 'p'.repeat(30_000) }));
    const payload = randomBytes(64 * 1024);
    expect(sha256(await echo(open(session), payload))).toBe(sha256(payload));
    expect(session.answers).toEqual([]);
    const disconnected = next(c, 'disconnected');
    session.ws.send(JSON.stringify({ type: 'reauth_challenge', nonce: '' }));
    expect((await disconnected).reason).toBe('reauth_failed');
  });
});

/**
 * A real attestor in miniature: HS256 over the claims it is asked for, with node:crypto only; with
 * `ATTESTOR_LOG` set it appends each stage it ran for to that file.
 */
async function writeAttestor(): Promise<string> {
  const file = join(dir, 'attestor.mjs');
  await writeFile(
    file,
    `import { createHmac } from 'node:crypto';
     import { appendFileSync } from 'node:fs';
     const e = process.env;
     if (e.ATTESTOR_LOG) appendFileSync(e.ATTESTOR_LOG, e.NEXUS_ATTESTATION_STAGE + '\\n');
     const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
     const now = Math.floor(Date.now() / 1000);
     const claims = { hostnames: e.NEXUS_HOSTNAMES.split(','), weight: Number(e.NEXUS_WEIGHT),
       ...(e.NEXUS_SESSION_NONCE ? { session_nonce: e.NEXUS_SESSION_NONCE } : {}),
       iss: 'authorizer', sub: e.NEXUS_BACKEND_NAME, aud: ['nexus'], exp: now + 30, iat: now, stage: e.NEXUS_ATTESTATION_STAGE };
     const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
     const sig = createHmac('sha256', e.ATTESTOR_SECRET).update(body).digest('base64url');
     console.log(JSON.stringify({ token: body + '.' + sig, expiry: new Date((now + 30) * 1000).toISOString() }));`,
  );
  return file;
}

describe('current era: command provider', () => {
  it('attaches and re-authenticates with tokens a program signs from NEXUS_* variables', async () => {
    const file = await writeAttestor();
    const c = client(hub.url, {
      tokenProvider: {
        command: process.execPath,
        args: [file],
        env: { ATTESTOR_SECRET: SECRET },
        timeoutSeconds: 10,
      },
      backend: BACKEND,
    });
    c.connect();
    const session = await hub.session();
    expect(session.claims.map((x) => x.stage)).toEqual(['handshake', 'attest']);
    const answer = await session.reauth();
    expect(answer).toMatchObject({ stage: 'reauth', sub: 'device-7' });
  });

  it('a hub flooding reauth_challenge frames runs the attestor once for them and is cut off with 1008', async () => {
    const file = await writeAttestor();
    const stages = join(dir, 'flood-stages.log');
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const c = client(hub.url, {
      tokenProvider: {
        command: process.execPath,
        args: [file],
        env: { ATTESTOR_SECRET: SECRET, ATTESTOR_LOG: stages },
        timeoutSeconds: 10,
      },
      backend: BACKEND,
      logger,
    });
    const errors: Error[] = [];
    c.on('error', (err) => errors.push(err));
    const disconnected = next(c, 'disconnected');
    c.connect();
    const session = await hub.session();
    const closed = once(session.ws, 'close');
    for (let i = 0; i < 500; i++) {
      session.ws.send(
        JSON.stringify({ type: 'reauth_challenge', nonce: randomBytes(32).toString('base64url') }),
      );
    }
    const [code, reason] = await closed;
    expect([code, reason.toString()]).toEqual([1008, 'reauth challenge flood']);
    expect(await disconnected).toMatchObject({ reason: 'reauth_flood', code: 1008 });
    expect(errors.find((e) => e instanceof SessionError)?.message).toBe(
      'the hub sent 9 reauth_challenge frames in a row before its previous one was answered or within 500 ms of the answer',
    );
    expect(lines.find((l) => String(l.msg).includes('floods'))).toMatchObject({
      level: 50, // error
      msg: 'the hub floods re-authentication challenges; closing the session',
    });
    await hub.session(1); // it reconnects (handshake and attest run the attestor again)
    const ran = () => readFileSync(stages, 'utf8').trim().split('\n');
    await waitFor(() => ran().includes('reauth'), 10_000, 'the one reauth run');
    expect(ran().filter((stage) => stage === 'reauth')).toEqual(['reauth']);
    expect(session.answers.length).toBeLessThanOrEqual(1);
  });

  it('a failing command fails the handshake with a TokenCommandError and is retried with backoff', async () => {
    const file = join(dir, 'broken.mjs');
    await writeFile(file, `console.error('tpm not ready'); process.exit(4);`);
    const c = client(raw.url, {
      tokenProvider: { command: process.execPath, args: [file] },
      backend: BACKEND,
    });
    const errors: Error[] = [];
    c.on('error', (err) => errors.push(err));
    c.connect();
    await waitFor(() => errors.length >= 2, 10_000, 'two failed attempts');
    expect(errors[0]).toBeInstanceOf(TokenCommandError);
    expect(errors[0]!.message).toContain('exited with status 4: tpm not ready');
    expect(raw.connections).toEqual([]); // the token comes first: no connection is opened for nothing
  });
});

describe('current era: a hub that does not send a proper challenge', () => {
  async function attempt(
    misbehave: (conn: HubConnection) => void,
    options: Partial<BackendClientOptions> = {},
  ): Promise<{ error: Error; conn: HubConnection }> {
    const c = client(raw.url, { tokenProvider: { hmacSecret: SECRET }, backend: BACKEND, ...options });
    const failed = once(c, 'error') as Promise<[Error]>;
    c.connect();
    const conn = await raw.connection();
    const stage0 = await conn.token;
    expect(stage0.binary).toBe(false);
    misbehave(conn);
    const [error] = await failed;
    await raw.connection(1); // and it tries again
    return { error, conn };
  }

  it.each([
    [
      'a binary frame',
      (conn: HubConnection) => conn.ws.send(Buffer.from([2, 0x7b, 0x7d])),
      'expected a text handshake_challenge from the hub, got a binary frame',
    ],
    [
      'the wrong type (a reauth_challenge before the handshake_challenge)',
      (conn: HubConnection) => conn.ws.send('{"type":"reauth_challenge","nonce":"abc"}'),
      'expected a handshake_challenge from the hub, got "reauth_challenge"',
    ],
    [
      'an empty nonce',
      (conn: HubConnection) => conn.ws.send('{"type":"handshake_challenge","nonce":""}'),
      'the hub sent a "handshake_challenge" challenge without a nonce',
    ],
    ['no nonce', (conn: HubConnection) => conn.ws.send('{"type":"handshake_challenge"}'), 'without a nonce'],
    [
      'not JSON',
      (conn: HubConnection) => conn.ws.send('hello'),
      'the hub sent a text frame that is not JSON',
    ],
    [
      'a nonce over 512 characters',
      (conn: HubConnection) =>
        conn.ws.send(JSON.stringify({ type: 'handshake_challenge', nonce: 'n'.repeat(513) })),
      'whose nonce is not a nonce',
    ],
    [
      'a text frame over 1 KiB',
      (conn: HubConnection) =>
        conn.ws.send(JSON.stringify({ type: 'handshake_challenge', nonce: 'n', pad: 'p'.repeat(2_000) })),
      'the hub sent a text frame of 2051 bytes (a challenge is at most 1024)',
    ],
    [
      'a nonce of control characters',
      (conn: HubConnection) => conn.ws.send('{"type":"handshake_challenge","nonce":"a\\u0000b"}'),
      'whose nonce is not a nonce',
    ],
  ])('%s fails the handshake with a HandshakeError', async (_name, misbehave, message) => {
    const { error, conn } = await attempt(misbehave);
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error.message).toContain(message);
    await conn.closed;
  });

  it('a reauth_challenge while the stage-1 token is issued fails the handshake; the late token is not sent', async () => {
    let release: () => void = () => {};
    const texts: string[] = [];
    const { error, conn } = await attempt(
      (c) => {
        c.ws.on('message', (data, isBinary) => {
          if (!isBinary) texts.push(data.toString());
        });
        c.ws.send(JSON.stringify({ type: 'handshake_challenge', nonce: 'n'.repeat(43) }));
        c.ws.send(JSON.stringify({ type: 'reauth_challenge', nonce: 'r'.repeat(43) }));
      },
      {
        tokenProvider: (request) =>
          request.stage === 'attest'
            ? new Promise<string>((resolve) => {
                release = () => resolve('aaa.bbb.attest');
              })
            : 'aaa.bbb.stage0',
      },
    );
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error.message).toBe('the hub sent a frame before the stage-1 token');
    release();
    await conn.closed;
    expect(texts).toEqual([]);
  });

  it('no challenge within the wait fails the handshake', async () => {
    const started = Date.now();
    const { error } = await attempt(() => {}, { challengeTimeoutMs: 300 });
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error.message).toBe('no handshake_challenge from the hub within 300 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('the hub closing with 1008 after stage 0 reports its reason', async () => {
    const { error } = await attempt((conn) => conn.ws.close(1008, 'stage0 token validation failed'));
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error.message).toBe('the hub closed the handshake (1008: stage0 token validation failed)');
  });

  it('a stage-1 token that cannot be issued closes with 1011 and is reported', async () => {
    const codes: number[] = [];
    const { error } = await attempt(
      (c) => {
        c.ws.once('close', (code) => codes.push(code));
        c.ws.send(JSON.stringify({ type: 'handshake_challenge', nonce: 'n'.repeat(43) }));
      },
      {
        tokenProvider: (request) => {
          if (request.stage === 'attest') throw new Error('quote failed');
          return 'aaa.bbb.ccc';
        },
      },
    );
    expect(error).toBeInstanceOf(TokenError);
    expect(error.message).toBe('token provider failed at stage attest: quote failed');
    await waitFor(() => codes.length > 0, 3_000, 'the close');
    expect(codes).toEqual([1011]);
  });
});
