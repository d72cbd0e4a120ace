/**
 * A current-era backend written for the hub's tests (docs/protocol.md §1.9, §1.10): a WebSocket that sends
 * a stage-0 token, answers the `handshake_challenge` with a stage-1 token bound to its nonce, then runs a
 * backend-role `MuxSession` relaying every stream to a local TCP service, and answers each
 * `reauth_challenge`. Hooks let a test change the stage-1 or re-authentication claims, delay answers, or
 * send the stage-0 token as a binary frame.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { type MuxStream, MuxSession } from '@nexus-proxy/mux-protocol';
import { type JWTPayload, SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { createWsTransport } from '../../src/ws-transport.js';

/** Claims of a current-era token (besides the ones the helper sets: `iss`, `aud`, `iat`, `exp`). */
export type CurrentClaimsInput = JWTPayload & {
  hostnames?: string[];
  weight?: number;
  tcp_ports?: number[];
  udp_routes?: Array<{ port: number; flow_idle_timeout_seconds?: number }>;
};

/** Options of {@link connectCurrentEraBackend}. */
export interface CurrentEraBackendOptions {
  hubPort: number;
  /** CA the hub's certificate chains to (PEM). */
  ca: string;
  secret: string;
  /** Stage-0 claims (stage 1 and re-authentication repeat them unless changed by the hooks). */
  claims: CurrentClaimsInput;
  /** Local TCP service every stream is relayed to. Default: none (streams are destroyed). */
  servicePort?: number;
  /** Changes the stage-1 claims (the nonce is already set). */
  stage1?: (claims: CurrentClaimsInput) => CurrentClaimsInput;
  /** Wait before sending the stage-1 token, ms. Default: 0. */
  stage1DelayMs?: number;
  /** Changes the claims of re-authentication round `round` (1, 2, …). */
  reauth?: (claims: CurrentClaimsInput, round: number) => CurrentClaimsInput;
  /** Wait before answering re-authentication round `round`, ms. Default: 0. */
  reauthDelayMs?: (round: number) => number;
  /** Send the stage-0 token as a binary frame. */
  binaryStage0?: boolean;
  /**
   * Takes every binary message instead of the helper's `MuxSession` (a test that speaks the wire itself,
   * such as the reference's backend behaviour); `send` writes a binary message.
   */
  onBinary?: (message: Buffer, send: (message: Uint8Array) => void) => void;
  /** `iat` of the stage-0 token, seconds. Default: now. */
  stage0IssuedAt?: number;
}

/** A connected current-era backend. */
export interface CurrentEraBackend {
  ws: WebSocket;
  /** The backend's mux session (role `backend`), e.g. for `openOutbound`. */
  mux: MuxSession;
  /** The text messages received from the hub, parsed, in order. */
  challenges: Array<{ type: string; nonce: string }>;
  /** The raw text of the first challenge (golden checks). */
  firstChallengeText: Promise<string>;
  /** How the WebSocket ended (code, reason). */
  closed: Promise<{ code: number; reason: string }>;
  /** Re-authentication rounds answered. */
  readonly reauthAnswers: number;
  close(): Promise<void>;
}

/** Signs `claims` as a current-era token (`iss: authorizer`, `aud: [nexus]`). */
export function signCurrentToken(secret: string, claims: CurrentClaimsInput, iat?: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ weight: 0, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('authorizer')
    .setAudience(['nexus'])
    .setIssuedAt(iat ?? now)
    .setExpirationTime((iat ?? now) + 300)
    .sign(new TextEncoder().encode(secret));
}

/** Opens the WebSocket and starts the handshake; resolves once open (not once registered). */
export async function connectCurrentEraBackend(o: CurrentEraBackendOptions): Promise<CurrentEraBackend> {
  const ws = new WebSocket(`wss://127.0.0.1:${o.hubPort}/connect`, { ca: o.ca, perMessageDeflate: false });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await Promise.race([once(ws, 'open'), closed]);
  const challenges: Array<{ type: string; nonce: string }> = [];
  let reauthAnswers = 0;
  let resolveFirst: (text: string) => void = () => {};
  const firstChallengeText = new Promise<string>((r) => {
    resolveFirst = r;
  });
  const transport = createWsTransport(ws);
  const mux = new MuxSession({
    role: 'backend',
    transport,
    pauseTransport: () => transport.pause(),
    resumeTransport: () => transport.resume(),
  });
  transport.onDrain(() => mux.transportDrained());
  mux.on('stream', (stream: MuxStream) => {
    if (o.servicePort === undefined) {
      stream.destroy();
      return;
    }
    const socket = netConnect(o.servicePort, '127.0.0.1');
    socket.on('error', () => stream.destroy());
    stream.on('error', () => socket.destroy());
    stream.pipe(socket);
    socket.pipe(stream);
  });
  const send = (text: string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(text);
  };
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) {
      if (o.onBinary !== undefined) o.onBinary(data, (m) => ws.send(m));
      else mux.receive(data);
      return;
    }
    const text = data.toString();
    const message = JSON.parse(text) as { type: string; nonce: string };
    challenges.push(message);
    if (message.type === 'handshake_challenge') {
      resolveFirst(text);
      const claims = { ...o.claims, session_nonce: message.nonce };
      void signCurrentToken(o.secret, o.stage1 ? o.stage1(claims) : claims).then((token) =>
        setTimeout(() => send(token), o.stage1DelayMs ?? 0),
      );
    } else if (message.type === 'reauth_challenge') {
      const round = challenges.filter((c) => c.type === 'reauth_challenge').length;
      const claims = { ...o.claims, session_nonce: message.nonce };
      const delay = o.reauthDelayMs?.(round) ?? 0;
      void signCurrentToken(o.secret, o.reauth ? o.reauth(claims, round) : claims).then((token) =>
        setTimeout(() => {
          reauthAnswers++;
          send(token);
        }, delay),
      );
    }
  });
  ws.on('close', () => mux.close('transport_closed'));
  const stage0 = await signCurrentToken(o.secret, o.claims, o.stage0IssuedAt);
  if (ws.readyState === WebSocket.OPEN) ws.send(o.binaryStage0 ? Buffer.from(stage0) : stage0);
  return {
    ws,
    mux,
    challenges,
    firstChallengeText,
    closed,
    get reauthAnswers() {
      return reauthAnswers;
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await closed;
    },
  };
}
