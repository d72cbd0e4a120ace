/**
 * The records of route discovery (docs/mesh.md "Discovery on NATS"): what a node writes under its identity
 * in the key-value bucket, and the checks every value read back passes before it can touch the routing
 * table. Values in the bucket are written by other nodes — or by anyone holding the bucket's credentials —
 * so each one is parsed as hostile input: bounded in size, in count and in shape.
 *
 * Key layout (one node, id `<id>`):
 * - `nodes.<id>`: `{"v":1,"url":"wss://…/mesh","gen":"…","chunks":k,"routes":n}` — the node's peer URL and
 *   the generation of its route list; rewritten every `ttl / 3` as the node's heartbeat.
 * - `routes.<id>.<i>` for `i < k`: `{"gen":"…","routes":["app.example.com","*.example.org",…]}` — the route
 *   list in chunks of at most {@link DISCOVERY_CHUNK_BYTES}, so 10 000 names of 253 characters fit under
 *   NATS's default 1 MiB message limit.
 */
import { createHash } from 'node:crypto';
import { validatePeerUrls } from './mesh-options.js';

/** Version of the node record's layout. */
export const DISCOVERY_RECORD_VERSION = 1;
/** Target size of one route chunk's JSON, bytes: 128 KiB. */
export const DISCOVERY_CHUNK_BYTES = 128 * 1024;
/** Largest value accepted from the bucket, bytes: 256 KiB (a chunk at its target plus one long name). */
export const DISCOVERY_MAX_VALUE_BYTES = 256 * 1024;
/** Most chunks one node's route list may span: `32` (4 MiB at most, 10 000 names of 253 characters take 20). */
export const DISCOVERY_MAX_CHUNKS = 32;
/** Longest route accepted in a chunk, characters (a DNS name is at most 253, `*.` and a port key fit). */
const MAX_ROUTE_CHARS = 260;
/** Node ids and generations: bucket key tokens, short and plain. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Prefix of node records. */
export const NODE_KEY_PREFIX = 'nodes.';
/** Prefix of route chunks. */
export const ROUTES_KEY_PREFIX = 'routes.';

/** A node's record (heartbeat): where to dial it and which route list generation is current. */
export interface NodeRecord {
  url: string;
  gen: string;
  chunks: number;
  routes: number;
}

/** One chunk of a node's route list. */
export interface RouteChunk {
  gen: string;
  routes: string[];
}

/** A bucket key, parsed: a node record, a route chunk, or something else (ignored). */
export type DiscoveryKey =
  | { kind: 'node'; nodeId: string }
  | { kind: 'chunk'; nodeId: string; index: number }
  | { kind: 'other' };

/** A parsed value, or why it was refused. */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The id of the node whose peer URL is `url`: stable across restarts, a plain key token. */
export function discoveryNodeId(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 24);
}

export function nodeKey(nodeId: string): string {
  return `${NODE_KEY_PREFIX}${nodeId}`;
}

export function chunkKey(nodeId: string, index: number): string {
  return `${ROUTES_KEY_PREFIX}${nodeId}.${index}`;
}

/** Parses a bucket key. */
export function parseDiscoveryKey(key: string): DiscoveryKey {
  const parts = key.split('.');
  if (parts.length === 2 && `${parts[0]}.` === NODE_KEY_PREFIX && TOKEN.test(parts[1] ?? '')) {
    return { kind: 'node', nodeId: parts[1] as string };
  }
  if (parts.length === 3 && `${parts[0]}.` === ROUTES_KEY_PREFIX && TOKEN.test(parts[1] ?? '')) {
    const index = Number(parts[2]);
    if (/^\d{1,2}$/.test(parts[2] ?? '') && index < DISCOVERY_MAX_CHUNKS) {
      return { kind: 'chunk', nodeId: parts[1] as string, index };
    }
  }
  return { kind: 'other' };
}

function parseJson(bytes: Uint8Array): Checked<Record<string, unknown>> {
  if (bytes.length > DISCOVERY_MAX_VALUE_BYTES) {
    return { ok: false, reason: `value of ${bytes.length} bytes exceeds ${DISCOVERY_MAX_VALUE_BYTES}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch {
    return { ok: false, reason: 'value is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: 'value is not a JSON object' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

function isCount(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

/** Reads a node record; `maxRoutes` is the node's cap on routes from one peer. */
export function parseNodeRecord(bytes: Uint8Array, maxRoutes: number): Checked<NodeRecord> {
  const json = parseJson(bytes);
  if (!json.ok) return json;
  const { v, url, gen, chunks, routes } = json.value;
  if (v !== DISCOVERY_RECORD_VERSION) return { ok: false, reason: 'unknown record version' };
  if (typeof gen !== 'string' || !TOKEN.test(gen)) return { ok: false, reason: 'gen is not a token' };
  if (!isCount(chunks, DISCOVERY_MAX_CHUNKS)) {
    return { ok: false, reason: `chunks is not an integer in [0, ${DISCOVERY_MAX_CHUNKS}]` };
  }
  if (!isCount(routes, Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'routes is not a count' };
  if (routes > maxRoutes) return { ok: false, reason: `${routes} routes exceed the cap of ${maxRoutes}` };
  if (typeof url !== 'string' || url.length > 2048) return { ok: false, reason: 'url is not a string' };
  let normalized: string;
  try {
    normalized = validatePeerUrls([url])[0] as string;
  } catch {
    return { ok: false, reason: 'url is not a wss:// URL' };
  }
  return { ok: true, value: { url: normalized, gen, chunks, routes } };
}

/** Reads a route chunk; routes are checked for shape here and for validity by the peer policy. */
export function parseRouteChunk(bytes: Uint8Array, maxRoutes: number): Checked<RouteChunk> {
  const json = parseJson(bytes);
  if (!json.ok) return json;
  const { gen, routes } = json.value;
  if (typeof gen !== 'string' || !TOKEN.test(gen)) return { ok: false, reason: 'gen is not a token' };
  if (!Array.isArray(routes)) return { ok: false, reason: 'routes is not a list' };
  if (routes.length > maxRoutes) {
    return { ok: false, reason: `${routes.length} routes exceed the cap of ${maxRoutes}` };
  }
  for (const route of routes) {
    if (typeof route !== 'string' || route.length === 0 || route.length > MAX_ROUTE_CHARS) {
      return { ok: false, reason: 'routes holds an entry that is not a name' };
    }
  }
  return { ok: true, value: { gen, routes: routes as string[] } };
}

/** Encodes a node record. */
export function encodeNodeRecord(record: NodeRecord): string {
  return JSON.stringify({ v: DISCOVERY_RECORD_VERSION, ...record });
}

/**
 * Splits a route list into chunk values (none for an empty list) of at most {@link DISCOVERY_CHUNK_BYTES} (a list whose names need
 * more than {@link DISCOVERY_MAX_CHUNKS} chunks keeps the first ones that fit: the caller caps the count
 * at `maxPeerRoutes` beforehand, which fits).
 */
export function encodeRouteChunks(gen: string, routes: readonly string[]): string[] {
  const chunks: string[] = [];
  const overhead = JSON.stringify({ gen, routes: [] }).length;
  let current: string[] = [];
  let size = overhead;
  for (const route of routes) {
    const cost = JSON.stringify(route).length + 1;
    if (current.length > 0 && size + cost > DISCOVERY_CHUNK_BYTES) {
      chunks.push(JSON.stringify({ gen, routes: current }));
      if (chunks.length >= DISCOVERY_MAX_CHUNKS) return chunks;
      current = [];
      size = overhead;
    }
    current.push(route);
    size += cost;
  }
  if (current.length > 0) chunks.push(JSON.stringify({ gen, routes: current }));
  return chunks;
}
