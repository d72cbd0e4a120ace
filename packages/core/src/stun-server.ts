/**
 * The node's STUN Binding server (`stunPort`, docs/edge.md "STUN"): a device behind NAT asks it for its
 * public address and port and gets them back in XOR-MAPPED-ADDRESS (RFC 8489). The server keeps no state
 * but two rate windows; every datagram it does not answer is counted by reason.
 *
 * A UDP answer goes to whatever source address the datagram claims, so the server is a reflector that
 * an attacker can aim at a spoofed victim. Three things keep that harmless: an answer is at most 2.6×
 * the smallest request (40 or 52 bytes against 20), only Binding requests are answered (never a
 * response, so two servers cannot be made to ping-pong), and answers are capped per second node-wide
 * and per destination address (IPv6: per /64).
 */
import type dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { addressGroup } from './address-group.js';
import { NexusError, NexusErrorCode } from './errors.js';
import { type Logger, noopLogger } from './logger.js';
import { bindUdpSocket } from './udp-bind.js';
import {
  bindingSuccess,
  bindingUnknownAttributes,
  parseStunRequest,
  type StunDropReason,
} from './stun-message.js';

/** Largest datagram read as a request, bytes; larger ones are dropped (`oversize`). */
export const STUN_MAX_REQUEST_BYTES = 1_500;
/** Addresses whose answers are counted at once in one window; past it, new addresses are refused. */
export const STUN_MAX_TRACKED_ADDRESSES = 65_536;
/** Length of a rate window, ms. */
const WINDOW_MS = 1_000;

/** The answer rates, read for every datagram (so a reload applies at once). */
export interface StunRateLimits {
  /** Answers per second, node-wide. */
  readonly stunMaxResponsesPerSecond: number;
  /** Answers per second to one address (IPv6: one /64). */
  readonly stunMaxResponsesPerAddressPerSecond: number;
}

/** Options of {@link StunServer}. */
export interface StunServerOptions {
  /** UDP port; `0` picks a free one. */
  port: number;
  /** Address to bind. Default: every interface, IPv4 and IPv6 (one dual-stack socket). */
  host?: string;
  /** Answer rates. */
  limits: StunRateLimits;
  /** Addresses counted at once per window. Default: {@link STUN_MAX_TRACKED_ADDRESSES}. */
  maxTrackedAddresses?: number;
  /** pino-compatible logger; a `component: 'stun'` child is used. Default: no-op. */
  logger?: Logger;
}

/** Why a datagram got no answer. */
export type StunServerDropReason =
  | StunDropReason
  /** Larger than {@link STUN_MAX_REQUEST_BYTES}. */
  | 'oversize'
  /** Over the node-wide answer rate. */
  | 'rate-limited'
  /** Over the answer rate of its source address, or too many addresses in the window. */
  | 'address-rate-limited'
  /** The answer could not be sent (the source was not a usable address or port). */
  | 'send-failed';

/** Counters since the server was created. */
export interface StunServerStats {
  /** Datagrams received. */
  received: number;
  /** Binding success responses sent. */
  responses: number;
  /** 420 (Unknown Attribute) error responses sent. */
  errorResponses: number;
  /** Datagrams not answered, by reason. */
  dropped: Record<StunServerDropReason, number>;
}

const DROP_REASONS: readonly StunServerDropReason[] = [
  'malformed',
  'not-stun',
  'not-binding-request',
  'bad-attribute',
  'oversize',
  'rate-limited',
  'address-rate-limited',
  'send-failed',
];

/** A STUN Binding server on one UDP port. */
export class StunServer {
  readonly #options: StunServerOptions;
  readonly #log: Logger;
  readonly #maxTracked: number;
  #socket: dgram.Socket | undefined;
  #closed = false;
  #windowStart = Number.NEGATIVE_INFINITY;
  #windowAnswers = 0;
  readonly #perAddress = new Map<string, number>();
  readonly #stats: StunServerStats = {
    received: 0,
    responses: 0,
    errorResponses: 0,
    dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<StunServerDropReason, number>,
  };

  constructor(options: StunServerOptions) {
    this.#options = options;
    this.#log = (options.logger ?? noopLogger).child({ component: 'stun' });
    this.#maxTracked = options.maxTrackedAddresses ?? STUN_MAX_TRACKED_ADDRESSES;
  }

  /** Binds the port. Rejects with `NEXUS_ERR_LISTEN` when it cannot. */
  async listen(): Promise<AddressInfo> {
    if (this.#socket !== undefined || this.#closed) {
      throw new NexusError(NexusErrorCode.Listen, 'the STUN server is already listening or closed');
    }
    const { host, port } = this.#options;
    const socket = await bindUdpSocket('the STUN server', port, host);
    if (this.#closed) {
      socket.close();
      throw new NexusError(NexusErrorCode.Closed, 'the STUN server was closed while binding');
    }
    this.#socket = socket;
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    socket.on('error', (err) => this.#log.warn({ err: err.message }, 'STUN socket error'));
    const address = socket.address();
    this.#log.info({ address: address.address, port: address.port }, 'STUN server listening');
    return address;
  }

  /** The bound address, once listening. */
  address(): AddressInfo | undefined {
    return this.#socket?.address();
  }

  /** A copy of the counters. */
  stats(): StunServerStats {
    return { ...this.#stats, dropped: { ...this.#stats.dropped } };
  }

  /** Stops answering and releases the port. */
  close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#perAddress.clear();
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  #drop(reason: StunServerDropReason): void {
    this.#stats.dropped[reason]++;
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.#stats.received++;
    const answer = this.#answer(msg, rinfo);
    if (typeof answer === 'string') {
      this.#drop(answer);
      return;
    }
    const socket = this.#socket;
    if (socket === undefined) return;
    socket.send(answer.bytes, rinfo.port, rinfo.address, (err) => {
      if (err) this.#drop('send-failed');
      else if (answer.error) this.#stats.errorResponses++;
      else this.#stats.responses++;
    });
  }

  /** The answer to `msg`, or why there is none. */
  #answer(msg: Buffer, rinfo: dgram.RemoteInfo): { bytes: Buffer; error: boolean } | StunServerDropReason {
    if (msg.length > STUN_MAX_REQUEST_BYTES) return 'oversize';
    const parsed = parseStunRequest(msg);
    if (parsed.kind === 'drop') return parsed.reason;
    const refused = this.#admit(rinfo.address);
    if (refused !== undefined) return refused;
    if (parsed.unknownRequired.length > 0) {
      return { bytes: bindingUnknownAttributes(parsed.transactionId, parsed.unknownRequired), error: true };
    }
    try {
      return { bytes: bindingSuccess(parsed.transactionId, rinfo.address, rinfo.port), error: false };
    } catch {
      // Not an IP address: nothing a UDP socket reports, but never a reason to throw in the handler.
      return 'send-failed';
    }
  }

  /** Takes one answer from the node-wide and the per-address budgets, or names the one that is spent. */
  #admit(address: string): StunServerDropReason | undefined {
    const now = Date.now();
    if (now - this.#windowStart >= WINDOW_MS || now < this.#windowStart) {
      this.#windowStart = now;
      this.#windowAnswers = 0;
      this.#perAddress.clear();
    }
    const limits = this.#options.limits;
    if (this.#windowAnswers >= limits.stunMaxResponsesPerSecond) return 'rate-limited';
    const group = addressGroup(address);
    const sent = this.#perAddress.get(group);
    if (sent === undefined && this.#perAddress.size >= this.#maxTracked) return 'address-rate-limited';
    if ((sent ?? 0) >= limits.stunMaxResponsesPerAddressPerSecond) return 'address-rate-limited';
    this.#perAddress.set(group, (sent ?? 0) + 1);
    this.#windowAnswers++;
    return undefined;
  }
}
