/**
 * What keeps the mesh's dials cheap (docs/mesh.md "Scaling"): one TLS client context per trust
 * configuration, shared by every dial, and a bound on the dials in flight with jittered first dials, so a
 * node starting with many peers neither builds a context per dial (Node's bundled roots plus the CA file,
 * tens of ms of CPU each) nor opens every handshake at once.
 */
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { Backoff, type BackoffSettings } from '@nexus-proxy/common';
import { WebSocket } from 'ws';
import type { CertificateAndKey } from './certificates.js';
import { NexusError, NexusErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import type { PeerAuthResult } from './peer-auth.js';
import type { PeerLink } from './peer-link.js';

/** Most peer dials (TCP + TLS + WebSocket handshake) in flight at once: `8`. */
export const DEFAULT_PEER_MAX_CONCURRENT_DIALS = 8;
/** First dials after `start()` are spread over up to this long (uniform jitter): `250` ms. */
export const DEFAULT_PEER_INITIAL_DIAL_JITTER = 250;

/**
 * The client context of peer dials: built from the hub certificate and the trusted CAs, rebuilt only when
 * either is replaced (a reload: a new certificate, or `setTrust` and its new authenticator). Both are
 * compared by identity.
 */
export class DialContextCache {
  #material: Readonly<CertificateAndKey> | undefined;
  #trust: object | undefined;
  #context: SecureContext | undefined;
  /** Contexts built so far (metrics, tests). */
  created = 0;

  /**
   * The context for this certificate and trust; `caPem` is read only when a context is built (`undefined`
   * = Node's bundled roots).
   */
  get(
    material: Readonly<CertificateAndKey>,
    trust: { caPem(): readonly string[] | undefined },
  ): SecureContext {
    if (this.#context === undefined || material !== this.#material || trust !== this.#trust) {
      const ca = trust.caPem();
      this.#context = createSecureContext({
        cert: material.certPem,
        key: material.keyPem,
        ...(ca !== undefined ? { ca: [...ca] } : {}),
      });
      this.#material = material;
      this.#trust = trust;
      this.created++;
    }
    return this.#context;
  }
}

/**
 * A bound on concurrent dials. `run` starts a dial now or when a slot frees; the dial calls the `release`
 * it is given exactly once, when it opened or failed. The queue holds each waiting dialer once, so it is
 * bounded by the number of configured peers.
 */
export class DialLimiter {
  readonly #max: number;
  readonly #queue: Array<(release: () => void) => void> = [];
  #inFlight = 0;
  /** Most dials ever in flight at once (metrics, tests). */
  peak = 0;

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  run(dial: (release: () => void) => void): void {
    if (this.#inFlight >= this.#max) {
      this.#queue.push(dial);
      return;
    }
    this.#start(dial);
  }

  /** Drops the dials that have not started (the mesh closed). */
  clear(): void {
    this.#queue.length = 0;
  }

  #start(dial: (release: () => void) => void): void {
    this.#inFlight++;
    this.peak = Math.max(this.peak, this.#inFlight);
    let released = false;
    dial(() => {
      if (released) return;
      released = true;
      this.#inFlight--;
      const next = this.#queue.shift();
      if (next !== undefined) this.#start(next);
    });
  }
}

/** One configured peer URL, dialled until the mesh closes or `setPeers` removes it. */
export class PeerDialer {
  readonly url: string;
  readonly backoff: Backoff;
  link: PeerLink | undefined;
  ws: WebSocket | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Set when the URL was removed: the dialer never dials again. */
  stopped = false;
  /** Set when its link was closed for the pair's other link (mesh-pairs.ts): dial again once that ends. */
  parkedBy: PeerLink | undefined;

  constructor(url: string, reconnect: BackoffSettings, random: () => number) {
    this.url = url;
    this.backoff = new Backoff(reconnect, random);
  }
}

/** SHA-256 fingerprints of the certificates of a link's TLS handshake: this node's and the peer's. */
export type LinkFingerprints = { localFingerprint?: string; remoteFingerprint?: string };

/** What `openPeerSocket` reports: exactly one of the two, once. */
export interface PeerSocketHandlers {
  /**
   * The WebSocket is open (the dial's slot is released first); `fingerprints` are the SHA-256 fingerprints
   * of the certificates of its TLS handshake, this node's and the peer's.
   */
  opened(ws: WebSocket, fingerprints: LinkFingerprints): void;
  /** The dial failed or the peer refused it; `err` says why when known. */
  failed(err: Error | undefined): void;
}

/**
 * Opens one WebSocket to a peer with the shared client context. `release` (the dial limiter's slot) is
 * called exactly once, when the socket opened or closed; an HTTP answer instead of an upgrade is a
 * `NEXUS_ERR_PEER` failure.
 */
export function openPeerSocket(
  url: string,
  options: { secureContext: SecureContext; maxPayload: number; handshakeTimeout: number },
  release: () => void,
  handlers: PeerSocketHandlers,
): WebSocket {
  const ws = new WebSocket(url, { ...options, perMessageDeflate: false, followRedirects: false });
  let released = false;
  const releaseOnce = (): void => {
    if (released) return;
    released = true;
    release();
  };
  let lastError: Error | undefined;
  let opened = false;
  let fingerprints: LinkFingerprints = {};
  ws.once('upgrade', (res) => {
    const socket = res.socket as TLSSocket;
    const local = socket.getCertificate?.();
    const remote = socket.getPeerCertificate?.();
    fingerprints = {
      ...(local && 'fingerprint256' in local ? { localFingerprint: local.fingerprint256 } : {}),
      ...(remote?.fingerprint256 ? { remoteFingerprint: remote.fingerprint256 } : {}),
    };
  });
  ws.on('error', (err) => {
    lastError = err;
  });
  ws.once('open', () => {
    opened = true;
    releaseOnce();
    handlers.opened(ws, fingerprints);
  });
  ws.once('unexpected-response', (_req, res) => {
    lastError = new NexusError(NexusErrorCode.Peer, `peer answered HTTP ${res.statusCode}`);
    ws.terminate();
  });
  ws.once('close', () => {
    releaseOnce();
    if (!opened) handlers.failed(lastError); // an open link's own close handler reconnects
  });
  return ws;
}

/** What {@link dialPeerOnce} needs from the mesh. */
export interface DialOnceHooks {
  limiter: DialLimiter;
  /** The dial options, or `undefined` when the mesh closed meanwhile. */
  options(): { secureContext: SecureContext; maxPayload: number; handshakeTimeout: number } | undefined;
  /** The mesh's peer check (chain and trusted suffixes), applied to the listener's certificate. */
  verify(socket: TLSSocket): Promise<PeerAuthResult>;
  /** Makes the open, verified WebSocket a link; `undefined` when the mesh closed meanwhile. */
  adopt(ws: WebSocket, url: string, fingerprints: LinkFingerprints): PeerLink | undefined;
  log: Logger;
}

/**
 * Dials `url` once, within the dial bound, without redialling (links opened on demand, docs/mesh.md
 * "Discovery on NATS"). The URL came from a shared store, so the listener's certificate must pass the
 * same check as an inbound peer's; nothing is read from the socket before the link exists. Resolves with
 * the link, or `undefined` when the dial failed or the certificate was refused.
 */
export function dialPeerOnce(url: string, hooks: DialOnceHooks): Promise<PeerLink | undefined> {
  return new Promise((resolve) => {
    hooks.limiter.run((release) => {
      const options = hooks.options();
      if (options === undefined) {
        release();
        resolve(undefined);
        return;
      }
      let socket: TLSSocket | undefined;
      const ws = openPeerSocket(url, options, release, {
        opened: (open, fingerprints) => {
          open.pause(); // the peer's first announce waits for the link
          const verified = socket === undefined ? undefined : hooks.verify(socket);
          void Promise.resolve(verified).then((result) => {
            const link =
              result?.ok === true && open.readyState === WebSocket.OPEN
                ? hooks.adopt(open, url, fingerprints)
                : undefined;
            if (link === undefined) {
              const reason = result?.ok === false ? result.reason : 'closed before it was verified';
              hooks.log.warn({ url, reason }, 'refusing on-demand peer');
              open.terminate();
            } else open.resume();
            resolve(link);
          });
        },
        failed: (err) => {
          hooks.log.warn({ url, err: err?.message }, 'cannot reach peer');
          resolve(undefined);
        },
      });
      ws.once('upgrade', (res) => {
        socket = res.socket as TLSSocket;
      });
    });
  });
}
