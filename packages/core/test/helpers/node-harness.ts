/**
 * A whole node on loopback for end-to-end tests: `createNexus` with a test CA, relay listeners on port 0,
 * real backend clients (`@nexus-proxy/backend-client`) dialling the hub over TLS, local services, and the
 * helpers those tests share (SHA-256 transfers, slow readers, raw TLS/HTTP clients, memory sampling,
 * handle counting). Everything runs in the test process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as createNetServer,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import {
  type BackendClient,
  type ConnectHandler,
  createBackendClient,
  type DisconnectedEvent,
  type KeepaliveOptions,
  type ReconnectOptions,
  type ResolvedPortMappings,
  resolvePortMappings,
  type StreamOpenEvent as ClientStreamOpenEvent,
} from '@nexus-proxy/backend-client';
import { mintBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import type { NexusConfigInput } from '../../src/config.js';
import type { BackendConnectedEvent, BackendDisconnectedEvent } from '../../src/hub.js';
import {
  createNexus,
  type Nexus,
  type NexusAddresses,
  type RouteMissEvent,
  type SniffFailedEvent,
  type StreamCloseEvent,
  type StreamOpenEvent,
} from '../../src/nexus.js';

/** The JWT secret of every harness node. */
export const TEST_SECRET = 'node-harness-secret-that-is-long-enough-0123456789';

// ───────────────────────────── certificates ─────────────────────────────

/** A test CA, the hub's certificate (127.0.0.1 + `hub.test`), and leaves for backend services. */
export interface TestPki {
  ca: CertificateAndKey;
  hub: CertificateAndKey;
  /** Issues a service certificate for `dnsNames`, signed by the test CA. */
  issue(dnsNames: string[]): Promise<CertificateAndKey>;
}

/** Makes a fresh CA and hub certificate (ECDSA P-256, ~50 ms). */
export async function createTestPki(commonName = 'Nexus Harness CA'): Promise<TestPki> {
  const ca = await createCertificateAuthority({ commonName });
  const hub = await issueCertificate(ca, { dnsNames: ['hub.test'], ipAddresses: ['127.0.0.1'] });
  return { ca, hub, issue: (dnsNames) => issueCertificate(ca, { dnsNames }) };
}

// ───────────────────────────── node ─────────────────────────────

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  pki: TestPki;
  /** Relay listeners on 127.0.0.1:0, in order. Default: `['tls', 'http']`. */
  listeners?: Array<'tls' | 'http'>;
  /** Extra configuration keys (merged over the harness defaults: hub on 127.0.0.1:0, files TLS). */
  config?: Partial<NexusConfigInput>;
}

/** Options of {@link NodeHarness.attachBackend}. */
export interface AttachBackendOptions {
  /** Hostnames (and `*.suffix` wildcards) put in the token, besides the client's own `backend-N.harness.test`. */
  hostnames: string[];
  /** Token weight. Default: 1. */
  weight?: number;
  /** Where streams go: a port on 127.0.0.1 (every relay port maps to it), a handler, or mappings. */
  service?: number;
  connectHandler?: ConnectHandler;
  portMappings?: ResolvedPortMappings;
  /** Hub address to dial instead of the node's (e.g. a fault proxy in front of it). */
  hubUrl?: string;
  /** Reconnect backoff. Default: 50–200 ms, no jitter wait beyond ±25 %. */
  reconnect?: ReconnectOptions;
  keepalive?: KeepaliveOptions;
  /** Wait until the node registered the session. Default: `true`. */
  waitRegistered?: boolean;
}

/** A backend client attached to a harness node. */
export interface TestBackend {
  client: BackendClient;
  /** Streams the client opened, in order. */
  streams: ClientStreamOpenEvent[];
  /** Sessions that ended, in order. */
  disconnects: DisconnectedEvent[];
  /** The name only this client serves (`backend-N.harness.test`). */
  tag: string;
  /** The hub's session id of the latest registration (set once registered). */
  sessionId: string | undefined;
  /** Resolves on the next `backend-connected` of the node for this client. */
  nextRegistration(): Promise<BackendConnectedEvent>;
  close(): Promise<void>;
}

/** A running node plus what it reported. */
export interface NodeHarness {
  nexus: Nexus;
  addresses: NexusAddresses;
  hubUrl: string;
  hubPort: number;
  /** Port of the first TLS / HTTP listener. */
  tlsPort: number;
  httpPort: number;
  events: {
    streamOpen: StreamOpenEvent[];
    streamClose: StreamCloseEvent[];
    routeMiss: RouteMissEvent[];
    sniffFailed: SniffFailedEvent[];
    backendConnected: BackendConnectedEvent[];
    backendDisconnected: BackendDisconnectedEvent[];
  };
  token(hostnames: string[], weight?: number): Promise<string>;
  attachBackend(options: AttachBackendOptions): Promise<TestBackend>;
  /** Closes every backend client, then the node (grace 0), then removes its files. */
  close(): Promise<void>;
}

/** Fast reconnects for tests. */
export const TEST_RECONNECT: ReconnectOptions = { initialDelayMs: 50, maxDelayMs: 200, jitter: 0.25 };

/** Starts a node on loopback with files-mode hub TLS from `pki`. */
export async function startNode(options: StartNodeOptions): Promise<NodeHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-harness-'));
  const certFile = join(dir, 'hub.crt');
  const keyFile = join(dir, 'hub.key');
  writeFileSync(certFile, options.pki.hub.certPem);
  writeFileSync(keyFile, options.pki.hub.keyPem);
  const modes = options.listeners ?? ['tls', 'http'];
  const nexus = createNexus({
    backendListenAddress: '127.0.0.1:0',
    backendsJWTSecret: TEST_SECRET,
    hubTlsCertFile: certFile,
    hubTlsKeyFile: keyFile,
    listeners: modes.map((mode) => ({ port: 0, mode, host: '127.0.0.1' })),
    ...options.config,
  });
  const events: NodeHarness['events'] = {
    streamOpen: [],
    streamClose: [],
    routeMiss: [],
    sniffFailed: [],
    backendConnected: [],
    backendDisconnected: [],
  };
  nexus.on('stream-open', (e) => events.streamOpen.push(e));
  nexus.on('stream-close', (e) => events.streamClose.push(e));
  nexus.on('route-miss', (e) => events.routeMiss.push(e));
  nexus.on('sniff-failed', (e) => events.sniffFailed.push(e));
  nexus.on('backend-connected', (e) => events.backendConnected.push(e));
  nexus.on('backend-disconnected', (e) => events.backendDisconnected.push(e));
  const addresses = await nexus.listen();
  const hubPort = addresses.hub.port;
  const hubUrl = `wss://127.0.0.1:${hubPort}/connect`;
  const portOf = (mode: 'tls' | 'http') =>
    addresses.listeners.find((l) => l.mode === mode)?.address.port ?? -1;
  const backends: TestBackend[] = [];
  let backendCount = 0;

  const token = (hostnames: string[], weight?: number) =>
    mintBackendToken({ secret: TEST_SECRET, hostnames, ...(weight !== undefined ? { weight } : {}) });

  const attachBackend = async (o: AttachBackendOptions): Promise<TestBackend> => {
    const mappings =
      o.portMappings ??
      (o.service !== undefined
        ? resolvePortMappings(
            Object.fromEntries(
              addresses.listeners.map((l) => [l.address.port, `127.0.0.1:${o.service}`] as const),
            ),
          )
        : undefined);
    const tag = `backend-${++backendCount}.harness.test`;
    const client = createBackendClient({
      nodes: [o.hubUrl ?? hubUrl],
      token: await token([...o.hostnames, tag], o.weight),
      tls: { ca: options.pki.ca.certPem },
      ...(mappings !== undefined ? { portMappings: mappings } : {}),
      ...(o.connectHandler !== undefined ? { connectHandler: o.connectHandler } : {}),
      reconnect: o.reconnect ?? TEST_RECONNECT,
      ...(o.keepalive !== undefined ? { keepalive: o.keepalive } : {}),
      closeGraceMs: 0,
    });
    client.on('error', () => {});
    let waiters: Array<(e: BackendConnectedEvent) => void> = [];
    const backend: TestBackend = {
      client,
      streams: [],
      disconnects: [],
      tag,
      sessionId: undefined,
      nextRegistration: () => new Promise((resolve) => waiters.push(resolve)),
      close: () => client.close({ graceMs: 0 }),
    };
    client.on('stream-open', (e) => backend.streams.push(e));
    client.on('disconnected', (e) => backend.disconnects.push(e));
    // The hub acknowledges nothing in v1 (docs/protocol.md §1.2): each client's token also lists a name of its
    // own (`backend-N.harness.test`), so the node's registrations can be told apart.
    const onRegistered = (e: BackendConnectedEvent): void => {
      if (!e.hostnames.includes(tag)) return;
      backend.sessionId = e.id;
      const w = waiters;
      waiters = [];
      for (const resolve of w) resolve(e);
    };
    nexus.on('backend-connected', onRegistered);
    backends.push(backend);
    const registered = backend.nextRegistration();
    client.connect();
    if (o.waitRegistered ?? true) await registered;
    return backend;
  };

  let closed: Promise<void> | undefined;
  return {
    nexus,
    addresses,
    hubUrl,
    hubPort,
    tlsPort: portOf('tls'),
    httpPort: portOf('http'),
    events,
    token,
    attachBackend,
    close() {
      closed ??= (async () => {
        await Promise.all(backends.map((b) => b.close()));
        await nexus.close({ graceMs: 0 });
        rmSync(dir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

// ───────────────────────────── local services ─────────────────────────────

/** A local TCP or TLS service on 127.0.0.1:0 that tracks its sockets. */
export interface TestService {
  port: number;
  server: Server;
  /** Sockets accepted so far (open or not). */
  accepted: Socket[];
  close(): Promise<void>;
}

/**
 * Starts a service. `tls` makes it terminate TLS with that certificate (the end user's TLS session ends
 * here, never at the node). Sockets are created with `allowHalfOpen: true`.
 */
export async function startService(
  onConnection: (socket: Socket) => void,
  options: { tls?: CertificateAndKey } = {},
): Promise<TestService> {
  const accepted: Socket[] = [];
  const track = (socket: Socket) => {
    accepted.push(socket);
    socket.on('error', () => {});
    onConnection(socket);
  };
  const server: Server =
    options.tls !== undefined
      ? createTlsServer({ cert: options.tls.certPem, key: options.tls.keyPem, allowHalfOpen: true }, track)
      : createNetServer({ allowHalfOpen: true }, track);
  // Raw TCP sockets too: a TLS server reports a socket only after its handshake.
  const raw = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    accepted,
    async close() {
      for (const s of accepted) s.destroy();
      for (const s of raw) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads the HTTP request head from `socket` (paused afterwards), then calls `respond` with it and the rest. */
export function onHttpRequest(socket: Socket, respond: (head: string, rest: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    socket.off('data', onData);
    socket.pause();
    respond(buf.subarray(0, end + 4).toString('latin1'), buf.subarray(end + 4));
  };
  socket.on('data', onData);
}

// ───────────────────────────── bytes ─────────────────────────────

/** Hex SHA-256 of a buffer. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A Readable of `prefix` then `total` random bytes (fresh chunks, produced on demand, so 300 MB never sit
 * in memory) that hashes what it emits.
 */
export class RandomSource extends Readable {
  readonly #hash = createHash('sha256');
  #left: number;
  #prefix: Buffer | undefined;
  constructor(
    readonly total: number,
    options: { prefix?: Buffer; chunkSize?: number } = {},
  ) {
    super();
    this.#left = total;
    this.#prefix = options.prefix;
    this.chunkSize = options.chunkSize ?? 64 * 1024;
  }
  readonly chunkSize: number;
  override _read(): void {
    if (this.#prefix !== undefined) {
      const prefix = this.#prefix;
      this.#prefix = undefined;
      this.#hash.update(prefix);
      this.push(prefix);
      return;
    }
    if (this.#left === 0) {
      this.push(null);
      return;
    }
    const n = Math.min(this.chunkSize, this.#left);
    this.#left -= n;
    const chunk = randomBytes(n);
    this.#hash.update(chunk);
    this.push(chunk);
  }
  /** SHA-256 of everything emitted (call once, after the end). */
  digest(): string {
    return this.#hash.digest('hex');
  }
}

/**
 * Consumes a socket, hashing every byte. `throttle(bytesPerSecond)` makes it a slow reader (it pauses the
 * socket between 50 ms slots), `pause()` stops reading entirely, `full()` reads at full speed again.
 */
export class HashingReader {
  bytes = 0;
  readonly #hash = createHash('sha256');
  #digest: string | undefined;
  #rate = 0;
  #slotBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #waiters: Array<{ bytes: number; resolve: (digest: string) => void }> = [];
  /** Resolves with the hex digest at the socket's EOF (FIN). Rejects on a socket error. */
  readonly ended: Promise<string>;
  constructor(readonly socket: Duplex) {
    this.ended = new Promise((resolve, reject) => {
      socket.once('end', () => {
        this.#clear();
        resolve(this.digest());
      });
      socket.once('error', reject);
    });
    this.ended.catch(() => {});
    socket.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.#hash.update(chunk);
      if (this.#waiters.length > 0) {
        const ready = this.#waiters.filter((w) => this.bytes >= w.bytes);
        this.#waiters = this.#waiters.filter((w) => this.bytes < w.bytes);
        for (const w of ready) w.resolve(this.digest());
      }
      if (this.#rate > 0) {
        this.#slotBytes += chunk.length;
        if (this.#slotBytes >= this.#rate / 20) this.#waitSlot();
      }
    });
  }
  /** Hex digest of everything read; no bytes may be read after the first call. */
  digest(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
  /** Resolves with the digest once `bytes` bytes were read. */
  untilBytes(bytes: number): Promise<string> {
    if (this.bytes >= bytes) return Promise.resolve(this.digest());
    return new Promise((resolve) => this.#waiters.push({ bytes, resolve }));
  }
  /** Read about `bytesPerSecond`. */
  throttle(bytesPerSecond: number): void {
    this.#stopped = false;
    this.#rate = bytesPerSecond;
    this.#slotBytes = 0;
    this.socket.resume();
  }
  /** Stop reading. */
  pause(): void {
    this.#stopped = true;
    this.#clear();
    this.socket.pause();
  }
  /** Read at full speed. */
  full(): void {
    this.#stopped = false;
    this.#rate = 0;
    this.#clear();
    this.socket.resume();
  }
  #waitSlot(): void {
    this.socket.pause();
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#slotBytes = 0;
      if (!this.#stopped) this.socket.resume();
    }, 50);
  }
  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Writes `source` into `socket` with backpressure (no end). Resolves once the last byte is handed over. */
export async function pump(source: Readable, socket: Socket): Promise<void> {
  for await (const chunk of source) {
    if (!socket.write(chunk as Buffer)) await drained(socket);
  }
}

/** Resolves at the socket's next `'drain'`; rejects if it closes first. */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off('drain', onDrain);
      reject(new Error('socket closed while writing'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

// ───────────────────────────── end-user clients ─────────────────────────────

/** A plain TCP end user that records every byte and how the connection ended. */
export interface RawClient {
  socket: Socket;
  received(): Buffer;
  /** Resolves at close: `end` = FIN seen, `error` = the error code (ECONNRESET…). */
  closed: Promise<{ fin: boolean; error: string | undefined }>;
}

export async function rawConnect(
  port: number,
  options: { allowHalfOpen?: boolean } = {},
): Promise<RawClient> {
  const socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen ?? false });
  const chunks: Buffer[] = [];
  let fin = false;
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => {
    fin = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error = err.code ?? err.message;
  });
  const closed = new Promise<{ fin: boolean; error: string | undefined }>((resolve) =>
    socket.once('close', () => resolve({ fin, error })),
  );
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** One HTTP/1.1 exchange over a raw socket (`Connection: close`): the whole response as text. */
export async function httpGet(port: number, host: string, path = '/'): Promise<string> {
  const client = await rawConnect(port);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await client.closed;
  return client.received().toString('latin1');
}

/**
 * A Duplex over a TCP socket that sends every write in `pieceBytes` pieces, `gapMs` apart, with Nagle off:
 * a TLS client on top of it sends its ClientHello as many TCP segments.
 */
export class SplittingDuplex extends Duplex {
  constructor(
    readonly inner: Socket,
    readonly pieceBytes: number,
    readonly gapMs = 1,
  ) {
    super();
    inner.setNoDelay(true);
    inner.on('data', (c: Buffer) => {
      if (!this.push(c)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('close', () => this.destroy());
    inner.on('error', () => {});
  }
  override _read(): void {
    this.inner.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let offset = 0;
    const next = (): void => {
      if (offset >= chunk.length || this.inner.destroyed) {
        cb();
        return;
      }
      this.inner.write(chunk.subarray(offset, offset + this.pieceBytes));
      offset += this.pieceBytes;
      setTimeout(next, this.gapMs);
    };
    next();
  }
  override _final(cb: () => void): void {
    this.inner.end(cb);
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

/** A TLS end user for `servername` trusting `ca`; resolves after the handshake. */
export async function tlsEndUser(port: number, servername: string, ca: string): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

// ───────────────────────────── process probes ─────────────────────────────

/** Peak and baseline of `process.memoryUsage()` over a sampling period, bytes. */
export interface MemorySummary {
  baseRss: number;
  peakRss: number;
  baseArrayBuffers: number;
  peakArrayBuffers: number;
  /** The largest settled post-GC sample (see `live()`): what was still referenced, not garbage. */
  liveRss: number;
  liveArrayBuffers: number;
  samples: number;
}

/** A running {@link sampleMemory}. */
export interface MemorySampler {
  /** Takes a settled post-GC sample now (the summary keeps the largest); resolves with it. */
  live(): Promise<NodeJS.MemoryUsage>;
  /** Stops sampling after a last settled post-GC sample. */
  stop(): Promise<MemorySummary>;
}

let gcFunction: (() => void) | undefined;
/** Runs a full garbage collection (V8's `gc`, exposed at run time), so memory samples show live data. */
export function forceGc(): void {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

/**
 * `process.memoryUsage()` after a full GC that has settled: V8 frees the backing stores of collected
 * ArrayBuffers on a background thread, so a reading taken right after one `gc()` may still count them.
 */
export async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  forceGc();
  await delay(20);
  forceGc();
  return process.memoryUsage();
}

/** Samples memory every `intervalMs` until `stop()`; the baseline is a settled post-GC sample. */
export async function sampleMemory(intervalMs = 20): Promise<MemorySampler> {
  const base = await settledMemory();
  const summary: MemorySummary = {
    baseRss: base.rss,
    peakRss: base.rss,
    baseArrayBuffers: base.arrayBuffers,
    peakArrayBuffers: base.arrayBuffers,
    liveRss: base.rss,
    liveArrayBuffers: base.arrayBuffers,
    samples: 1,
  };
  const record = (m: NodeJS.MemoryUsage): void => {
    summary.peakRss = Math.max(summary.peakRss, m.rss);
    summary.peakArrayBuffers = Math.max(summary.peakArrayBuffers, m.arrayBuffers);
    summary.samples++;
  };
  const timer = setInterval(() => record(process.memoryUsage()), intervalMs);
  const live = async (): Promise<NodeJS.MemoryUsage> => {
    const m = await settledMemory();
    record(m);
    summary.liveRss = Math.max(summary.liveRss, m.rss);
    summary.liveArrayBuffers = Math.max(summary.liveArrayBuffers, m.arrayBuffers);
    return m;
  };
  return {
    live,
    async stop() {
      await live();
      clearInterval(timer);
      return summary;
    },
  };
}

/** Counts of `process.getActiveResourcesInfo()` by kind (TCPSocketWrap, Timeout, …). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Resolves after `ms` (only for pacing real traffic; state changes are awaited with `vi.waitFor`). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const MiB = 1024 * 1024;
