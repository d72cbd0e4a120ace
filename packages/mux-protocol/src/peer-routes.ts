/**
 * Route synchronisation between Nexus nodes (docs/protocol.md §2.6): the capability a Nexus node adds to
 * its first announce on a link (`nexus`, a key the reference ignores), and the three text messages it sends
 * only to a peer that advertised it — `route_delta` (added and removed routes with a per-sender sequence),
 * `route_state` (the full table in parts, the last one marked) and `route_resync` (the receiver asks for the
 * full table after a gap).
 */
import { field, isIntegerIn } from './_json.js';
import { MuxProtocolError } from './errors.js';
import type { DecodeResult } from './frame.js';

/** Version of the route-delta capability this package speaks: `1`. */
export const ROUTE_DELTAS_VERSION = 1;

/** An epoch: 1–64 lower-case hex digits (a node writes 32, random per mesh instance). */
const EPOCH = /^[0-9a-f]{1,64}$/;

/**
 * What a Nexus node advertises in its first announce on a link (the `nexus` key). The reference peer
 * ignores the key, so it still reads the announce as a full-state announce.
 */
export interface PeerCapabilities {
  /** Route-delta protocol version spoken (`1`); `0` or absent = full-state announces only. */
  deltas: number;
  /** The sender's epoch: random per mesh instance, the scope of `seq` (and part of its identity). */
  epoch: string;
  /** The sender's route sequence number the announce's `hostnames` correspond to. */
  seq: number;
  /** The largest peer message the sender accepts, bytes (what a sender to it splits at). */
  max_message_bytes?: number;
  /** True when `hostnames` is only the first part of the table (it did not fit one message). */
  partial?: boolean;
  /**
   * The largest TUNNEL_DATA payload the sender offers to send and accept, bytes (docs/protocol.md §1.11,
   * §2.6); absent: 32 768.
   */
  max_data_payload?: number;
}

/** Routes added and removed since the sender's previous sequence number (`seq − 1`). */
export interface RouteDeltaMessage {
  type: 'route_delta';
  epoch: string;
  seq: number;
  /** The sender's announce counter at this change (as `version` of an announce; `0` omitted). */
  version: number;
  added: string[];
  removed: string[];
}

/** One part of the sender's full table as of `seq`; parts are numbered from 0, the last has `last: true`. */
export interface RouteStateMessage {
  type: 'route_state';
  epoch: string;
  seq: number;
  /** As in {@link RouteDeltaMessage}. */
  version: number;
  part: number;
  hostnames: string[];
  last: boolean;
}

/** The receiver lost track (a gap, or a new epoch) and asks for a `route_state`; says what it last applied. */
export interface RouteResyncMessage {
  type: 'route_resync';
  epoch?: string;
  seq?: number;
}

/** The Nexus-only peer messages. */
export type RouteSyncMessage = RouteDeltaMessage | RouteStateMessage | RouteResyncMessage;

/** The `type`s of {@link RouteSyncMessage}. */
export const ROUTE_SYNC_TYPES: ReadonlySet<string> = new Set(['route_delta', 'route_state', 'route_resync']);

function invalid(message: string): { ok: false; error: MuxProtocolError } {
  return { ok: false, error: new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', message) };
}

function stringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((h) => typeof h === 'string');
}

/** The `nexus` value of an announce, in a fixed key order. */
export function encodeCapabilities(caps: PeerCapabilities): string {
  const out: Record<string, unknown> = { deltas: caps.deltas, epoch: caps.epoch, seq: caps.seq };
  if (caps.max_message_bytes !== undefined) out.max_message_bytes = caps.max_message_bytes;
  if (caps.partial === true) out.partial = true;
  if (caps.max_data_payload !== undefined) out.max_data_payload = caps.max_data_payload;
  return JSON.stringify(out);
}

/**
 * Reads the `nexus` value of an announce. `undefined` when absent; an error when it is not an object with
 * a non-negative integer `deltas` and `seq` and a hex `epoch` (and, when present, positive integers
 * `max_message_bytes` and `max_data_payload` and a boolean `partial`).
 */
export function decodeCapabilities(value: unknown): DecodeResult<PeerCapabilities | undefined> {
  if (value === undefined) return { ok: true, value: undefined };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return invalid('"nexus" must be an object');
  }
  const o = value as Record<string, unknown>;
  const deltas = field(o, 'deltas') ?? 0;
  const epoch = field(o, 'epoch') ?? '';
  const seq = field(o, 'seq') ?? 0;
  const max = field(o, 'max_message_bytes');
  const partial = field(o, 'partial') ?? false;
  const payload = field(o, 'max_data_payload');
  if (!isIntegerIn(deltas, 0, Number.MAX_SAFE_INTEGER)) return invalid('"nexus.deltas" must be an integer');
  if (typeof epoch !== 'string' || (deltas > 0 && !EPOCH.test(epoch))) {
    return invalid('"nexus.epoch" must be hex');
  }
  if (!isIntegerIn(seq, 0, Number.MAX_SAFE_INTEGER)) return invalid('"nexus.seq" must be an integer');
  if (max !== undefined && !isIntegerIn(max, 1, Number.MAX_SAFE_INTEGER)) {
    return invalid('"nexus.max_message_bytes" must be a positive integer');
  }
  if (typeof partial !== 'boolean') return invalid('"nexus.partial" must be a boolean');
  if (payload !== undefined && !isIntegerIn(payload, 1, Number.MAX_SAFE_INTEGER)) {
    return invalid('"nexus.max_data_payload" must be a positive integer');
  }
  const caps: PeerCapabilities = { deltas, epoch, seq };
  if (max !== undefined) caps.max_message_bytes = max;
  if (partial) caps.partial = true;
  if (payload !== undefined) caps.max_data_payload = payload;
  return { ok: true, value: caps };
}

/** Serialises a route-sync message (keys in the order of docs/protocol.md §2.6, empty lists left out). */
export function encodeRouteSyncMessage(message: RouteSyncMessage): string {
  switch (message.type) {
    case 'route_delta': {
      const out: Record<string, unknown> = { type: message.type, epoch: message.epoch, seq: message.seq };
      if (message.version !== 0) out.version = message.version;
      if (message.added.length > 0) out.added = message.added;
      if (message.removed.length > 0) out.removed = message.removed;
      return JSON.stringify(out);
    }
    case 'route_state': {
      const out: Record<string, unknown> = {
        type: message.type,
        epoch: message.epoch,
        seq: message.seq,
      };
      if (message.version !== 0) out.version = message.version;
      out.part = message.part;
      if (message.hostnames.length > 0) out.hostnames = message.hostnames;
      if (message.last) out.last = true;
      return JSON.stringify(out);
    }
    default: {
      const out: Record<string, unknown> = { type: message.type };
      if (message.epoch !== undefined) out.epoch = message.epoch;
      if (message.seq !== undefined) out.seq = message.seq;
      return JSON.stringify(out);
    }
  }
}

/**
 * Decodes the fields of a route-sync message whose `type` is one of {@link ROUTE_SYNC_TYPES}. Never
 * throws: a missing or ill-typed field is `MUX_ERR_INVALID_PEER_MESSAGE`.
 */
export function decodeRouteSyncMessage(
  type: string,
  object: Record<string, unknown>,
): DecodeResult<RouteSyncMessage> {
  const epoch = field(object, 'epoch');
  const seq = field(object, 'seq');
  if (type === 'route_resync') {
    if (epoch !== undefined && (typeof epoch !== 'string' || !EPOCH.test(epoch))) {
      return invalid('"epoch" must be hex');
    }
    if (seq !== undefined && !isIntegerIn(seq, 0, Number.MAX_SAFE_INTEGER)) {
      return invalid('"seq" must be a non-negative integer');
    }
    const resync: RouteResyncMessage = { type: 'route_resync' };
    if (epoch !== undefined) resync.epoch = epoch as string;
    if (seq !== undefined) resync.seq = seq as number;
    return { ok: true, value: resync };
  }
  if (typeof epoch !== 'string' || !EPOCH.test(epoch)) return invalid('"epoch" must be hex');
  if (!isIntegerIn(seq, 0, Number.MAX_SAFE_INTEGER)) return invalid('"seq" must be a non-negative integer');
  const version = field(object, 'version') ?? 0;
  if (!isIntegerIn(version, 0, Number.MAX_SAFE_INTEGER)) {
    return invalid('"version" must be a non-negative integer');
  }
  if (type === 'route_delta') {
    const added = field(object, 'added') ?? [];
    const removed = field(object, 'removed') ?? [];
    if (!stringList(added) || !stringList(removed)) {
      return invalid('"added" and "removed" must be arrays of strings');
    }
    return { ok: true, value: { type: 'route_delta', epoch, seq, version, added, removed } };
  }
  const part = field(object, 'part') ?? 0;
  const hostnames = field(object, 'hostnames') ?? [];
  const last = field(object, 'last') ?? false;
  if (!isIntegerIn(part, 0, Number.MAX_SAFE_INTEGER)) return invalid('"part" must be a non-negative integer');
  if (!stringList(hostnames)) return invalid('"hostnames" must be an array of strings');
  if (typeof last !== 'boolean') return invalid('"last" must be a boolean');
  return { ok: true, value: { type: 'route_state', epoch, seq, version, part, hostnames, last } };
}
