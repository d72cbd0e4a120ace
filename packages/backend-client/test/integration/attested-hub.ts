/**
 * A current-era hub for tests, on the real multiplexer (`MuxSession` role `hub`): it verifies the stage-0
 * token (HS256, `iss` "authorizer", `aud` ∋ "nexus"), sends `handshake_challenge` with 32 random bytes as
 * base64url, checks that stage 1 carries that nonce and the same claim sets, then runs the session;
 * `reauth()` sends a `reauth_challenge` and checks the answer the same way (docs/protocol.md §1.2).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { MuxSession } from '@nexus-proxy/mux-protocol';
import { type JWTPayload, jwtVerify } from 'jose';
import type { WebSocket } from 'ws';
import { TestHub } from './test-hub.js';

/** One attested backend session as the hub sees it. */
export class AttestedSession extends EventEmitter {
  readonly ws: WebSocket;
  readonly claims: JWTPayload[] = [];
  /** Text frames from the backend after the handshake, in order, with the bytes of DATA seen before each. */
  readonly answers: Array<{ token: string; dataBytesBefore: number }> = [];
  mux: MuxSession | undefined;
  dataBytes = 0;
  readonly #key: Uint8Array;

  constructor(ws: WebSocket, key: Uint8Array) {
    super();
    this.ws = ws;
    this.#key = key;
  }

  /** Verifies `token` as the hub does; with `nonce`, requires `session_nonce` and stage 0's claim sets. */
  async verify(token: string, nonce?: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, this.#key, { issuer: 'authorizer', audience: 'nexus' });
    if (nonce !== undefined) {
      if (payload.session_nonce !== nonce)
        throw new Error(`session_nonce ${String(payload.session_nonce)} ≠ ${nonce}`);
      const first = this.claims[0]!;
      for (const claim of [
        'hostnames',
        'tcp_ports',
        'udp_routes',
        'outbound_allowed',
        'allowed_outbound_ports',
        'weight',
      ]) {
        if (JSON.stringify(payload[claim]) !== JSON.stringify(first[claim]))
          throw new Error(`${claim} changed`);
      }
    } else if ('session_nonce' in payload) {
      throw new Error('stage-0 token carries a session_nonce');
    }
    this.claims.push(payload);
    return payload;
  }

  /** The next text frame from the backend (its answer), within `graceMs`. */
  nextText(graceMs: number): Promise<{ token: string; dataBytesBefore: number }> {
    const seen = this.answers.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('text', onText);
        reject(new Error(`no answer within ${graceMs} ms`));
      }, graceMs);
      const onText = (): void => {
        if (this.answers.length <= seen) return;
        clearTimeout(timer);
        this.off('text', onText);
        resolve(this.answers[seen]!);
      };
      this.on('text', onText);
    });
  }

  /** One re-authentication round: challenge, answer within `graceMs`, verified. */
  async reauth(graceMs = 5_000): Promise<JWTPayload & { dataBytesBefore: number }> {
    const nonce = randomBytes(32).toString('base64url');
    const answer = this.nextText(graceMs);
    this.ws.send(JSON.stringify({ type: 'reauth_challenge', nonce }));
    const { token, dataBytesBefore } = await answer;
    return { ...(await this.verify(token, nonce)), dataBytesBefore };
  }
}

/** A TLS WebSocket hub that speaks the current era's handshake before starting each session. */
export class AttestedHub extends EventEmitter {
  readonly hub: TestHub;
  readonly sessions: AttestedSession[] = [];
  /** Handshakes the hub refused, with why. */
  readonly refused: string[] = [];

  private constructor(hub: TestHub) {
    super();
    this.hub = hub;
  }

  static async start(cert: { cert: string; key: string }, secret: string): Promise<AttestedHub> {
    const testHub = await TestHub.start(cert);
    const hub = new AttestedHub(testHub);
    const key = new TextEncoder().encode(secret);
    testHub.wss.removeAllListeners('connection');
    testHub.wss.on('connection', (ws) => {
      const session = new AttestedSession(ws, key);
      let stage = 0;
      let nonce = '';
      const refuse = (err: unknown): void => {
        hub.refused.push((err as Error).message);
        ws.close(1008, (err as Error).message.slice(0, 100));
      };
      ws.on('message', (data: Buffer, isBinary) => {
        if (stage === 0) {
          stage = 1;
          if (isBinary) return refuse(new Error('binary stage-0 frame'));
          session.verify(data.toString('utf8')).then(() => {
            nonce = randomBytes(32).toString('base64url');
            ws.send(JSON.stringify({ type: 'handshake_challenge', nonce }));
          }, refuse);
          return;
        }
        if (stage === 1) {
          stage = 2;
          if (isBinary) return refuse(new Error('binary stage-1 frame'));
          session.verify(data.toString('utf8'), nonce).then(() => {
            const mux = new MuxSession({
              role: 'hub',
              transport: {
                send: (message) => ws.send(message, { binary: true }, () => mux.transportDrained()),
                get bufferedAmount() {
                  return ws.bufferedAmount;
                },
              },
            });
            session.mux = mux;
            ws.once('close', () => mux.close('session_ended'));
            hub.sessions.push(session);
            hub.emit('session', session);
          }, refuse);
          return;
        }
        if (isBinary) {
          session.dataBytes += data.length;
          session.mux?.receive(data);
        } else {
          session.answers.push({ token: data.toString('utf8'), dataBytesBefore: session.dataBytes });
          session.emit('text');
        }
      });
    });
    return hub;
  }

  get url(): string {
    return this.hub.url;
  }

  get ca(): string {
    return this.hub.ca;
  }

  async session(index = this.sessions.length): Promise<AttestedSession> {
    while (this.sessions.length <= index) await once(this, 'session');
    return this.sessions[index]!;
  }

  close(): Promise<void> {
    return this.hub.close();
  }
}
