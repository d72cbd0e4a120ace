/**
 * Relaying a UDP flow between two datagram streams (docs/edge.md "UDP relay"): a tunnel and the backend
 * stream it reached, on the destination node. Each datagram read from one is sent as one datagram on the
 * other, or dropped (and counted) when the other cannot take it: nothing waits, so a flow whose backend
 * is slow never holds back the link's other tunnels. When either side ends, the other is disconnected;
 * a flow idle for `idleTimeoutMs` ends both.
 */
import type { Duplex } from 'node:stream';
import { FlowTable } from '@nexus-proxy/common';

/** A datagram stream as this relay uses it (`MuxStream` of `@nexus-proxy/mux-protocol`). */
export interface DatagramStream extends Duplex {
  /** Queues one datagram; false when it was dropped. */
  sendDatagram(payload: Buffer): boolean;
  /** Ends both directions after what was queued. */
  disconnect(reason?: string): void;
  readonly id: string;
}

/** Whether `stream` carries datagrams (a `MuxStream` opened for `transport: "udp"`). */
export function isDatagramStream(stream: Duplex): stream is DatagramStream {
  return (
    typeof (stream as Partial<DatagramStream>).sendDatagram === 'function' &&
    (stream as { datagram?: unknown }).datagram === true
  );
}

/** What a relay counted, reported once when it ends. */
export interface DatagramRelayStats {
  /** Datagrams from `a` sent on `b`, and from `b` sent on `a`. */
  aToB: number;
  bToA: number;
  /** Datagrams dropped because the other side could not take them. */
  dropped: number;
  /** `timeout` (idle), `closed` (one side ended), or `shutdown`. */
  reason: string;
}

interface Relay {
  a: DatagramStream;
  b: DatagramStream;
  idleTimeoutMs: number;
  stats: DatagramRelayStats;
  done: boolean;
  onClose: ((stats: DatagramRelayStats) => void) | undefined;
  lastActive: number;
  lastMoved: number;
}

/**
 * Every datagram relay of the process under one reaper (a flow table without an LRU bound: tunnels are
 * bounded by their link, backend streams by their session).
 */
const relays = new FlowTable<Relay>({
  maxFlows: Number.MAX_SAFE_INTEGER,
  timeoutMs: (r) => (r.idleTimeoutMs > 0 ? r.idleTimeoutMs : Number.POSITIVE_INFINITY),
  timeoutKey: (r) => r.idleTimeoutMs,
  onEnd: (r, reason) => finish(r, reason === 'expired' ? 'timeout' : 'shutdown'),
});

/** Relays datagrams between `a` and `b` until either ends or the flow idles out (`0` = never). */
export function relayDatagrams(
  a: DatagramStream,
  b: DatagramStream,
  options: { idleTimeoutMs: number; onClose?: (stats: DatagramRelayStats) => void },
): void {
  const relay: Relay = {
    a,
    b,
    idleTimeoutMs: options.idleTimeoutMs,
    stats: { aToB: 0, bToA: 0, dropped: 0, reason: 'closed' },
    done: false,
    onClose: options.onClose,
    lastActive: 0,
    lastMoved: 0,
  };
  const key = `${a.id}/${b.id}`;
  relays.add(key, relay);
  const pipe = (from: DatagramStream, to: DatagramStream, forward: boolean) => {
    from.on('error', noop);
    from.on('data', (datagram: Buffer) => {
      relays.touch(key, relay);
      if (!to.sendDatagram(datagram)) relay.stats.dropped++;
      else if (forward) relay.stats.aToB++;
      else relay.stats.bToA++;
    });
    from.once('end', () => {
      relays.delete(key, relay);
      finish(relay, 'closed');
    });
  };
  pipe(a, b, true);
  pipe(b, a, false);
}

function finish(relay: Relay, reason: string): void {
  if (relay.done) return;
  relay.done = true;
  relay.stats.reason = reason;
  const wire = reason === 'timeout' ? 'timeout' : 'normal';
  for (const stream of [relay.a, relay.b]) {
    stream.disconnect(wire);
    // Its readable side may have ended already: let it close.
    if (!stream.writableEnded) stream.end();
  }
  relay.onClose?.(relay.stats);
}

function noop(): void {}
