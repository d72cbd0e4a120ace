/**
 * Dialling an outbound target under the address policy (docs/edge.md "Outbound address policy"). A name
 * is resolved by the socket's own `lookup`, which we replace: it resolves every address, drops those the
 * policy refuses, and hands the socket only the allowed ones, so the address checked is the address
 * dialled (no second resolution between the check and the connect, and no rebinding). Each address of a
 * Happy Eyeballs attempt has passed the same check. An IP literal is checked before the socket exists.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { connect, isIP, type LookupFunction, type Socket } from 'node:net';
import { NexusError, NexusErrorCode, OutboundRefusedError } from './errors.js';
import type { OutboundAddressPolicy, OutboundRefusalReason } from './outbound-policy.js';

/** Resolves a name to all its addresses (`dns.lookup` with `all: true` by default). */
export type OutboundResolver = (hostname: string, family: 0 | 4 | 6) => Promise<LookupAddress[]>;

/** A refused address, for the caller's log line and metric. */
export interface OutboundRefusal {
  /** The target as asked (name or literal). */
  host: string;
  /** The address refused. */
  address: string;
  reason: OutboundRefusalReason;
}

/** Options of {@link connectOutbound}. */
export interface OutboundConnectOptions {
  /** IP literal (IPv6 without brackets) or DNS name. */
  host: string;
  port: number;
  policy: OutboundAddressPolicy;
  /** The connection must be up within, ms. */
  timeoutMs: number;
  /** Aborts the dial (the backend left). */
  signal?: AbortSignal;
  /** Name resolution. Default: the system resolver (`dns.lookup`, every address). */
  resolve?: OutboundResolver;
  /** Called for every address the policy refuses. */
  onRefused?: (refusal: OutboundRefusal) => void;
}

const systemResolve: OutboundResolver = (hostname, family) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, family }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

/**
 * Connects to `host:port` if the policy allows it: rejects with `OutboundRefusedError` when the address
 * (or every address of the name) is refused, and with a `NexusError` `NEXUS_ERR_OUTBOUND_DIAL` when an
 * allowed target cannot be reached in time.
 */
export function connectOutbound(options: OutboundConnectOptions): Promise<Socket> {
  const { host, port, policy } = options;
  const resolveName = options.resolve ?? systemResolve;
  if (isIP(host.split('%', 1)[0] ?? '') !== 0) {
    const verdict = policy.classify(host);
    if (!verdict.allowed) {
      options.onRefused?.({ host, address: host, reason: verdict.reason });
      return Promise.reject(refused(host, verdict.reason, host));
    }
  }
  // Only ever called for names: net skips the lookup for IP literals.
  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    const family = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
    resolveName(hostname, family).then(
      (addresses) => {
        const allowed: LookupAddress[] = [];
        let firstRefusal: { reason: OutboundRefusalReason; address: string } | undefined;
        for (const a of addresses) {
          const verdict = policy.classify(a.address);
          if (verdict.allowed) allowed.push({ address: a.address, family: verdict.family });
          else {
            firstRefusal ??= { reason: verdict.reason, address: a.address };
            options.onRefused?.({ host, address: a.address, reason: verdict.reason });
          }
        }
        const [first] = allowed;
        if (first === undefined) {
          const err =
            firstRefusal === undefined
              ? new NexusError(NexusErrorCode.OutboundDial, `${hostname} has no address`)
              : refused(hostname, firstRefusal.reason, firstRefusal.address);
          callback(err as NodeJS.ErrnoException, '', 0);
        } else if (lookupOptions.all === true) callback(null, allowed);
        else callback(null, first.address, first.family);
      },
      (err: Error) =>
        callback(
          new NexusError(NexusErrorCode.OutboundDial, `cannot resolve ${hostname}: ${err.message}`, {
            cause: err,
          }) as NodeJS.ErrnoException,
          '',
          0,
        ),
    );
  };

  return new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host, port, lookup });
    const finish = (err?: Error) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err === undefined) return resolve(socket);
      socket.destroy();
      reject(err);
    };
    const onConnect = () => finish();
    const onError = (err: Error) =>
      finish(
        NexusError.is(err)
          ? err
          : new NexusError(NexusErrorCode.OutboundDial, `cannot connect to ${host}:${port}: ${err.message}`, {
              cause: err,
            }),
      );
    const onAbort = () => finish(new NexusError(NexusErrorCode.OutboundDial, 'the dial was cancelled'));
    const timer = setTimeout(
      () => finish(new NexusError(NexusErrorCode.OutboundDial, `no connection to ${host}:${port} in time`)),
      options.timeoutMs,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function refused(host: string, reason: OutboundRefusalReason, address?: string): OutboundRefusedError {
  return new OutboundRefusedError(
    reason,
    `${host}${address !== undefined && address !== host ? ` (${address})` : ''} is refused by the outbound address policy: ${reason}`,
    address,
  );
}
