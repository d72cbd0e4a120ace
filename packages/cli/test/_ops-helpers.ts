/**
 * Shared set-up of the operations tests, on top of the repository's node harness
 * (`@nexus-proxy/test-harness`: PKI, services, end users, waiting): a work directory with the hub
 * certificate and a node configuration file for `nexus-proxy serve`, backend clients for a served node,
 * admin requests, a `nexus-proxy serve` child process whose JSON log lines can be awaited, and the fixture
 * of a test that runs `serve()` in-process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BackendClient, createBackendClient } from '@nexus-proxy/backend-client';
import { type CertificateAndKey, mintBackendToken } from '@nexus-proxy/core';
import { createTempDir, createTestPki, waitUntil, writeCertificateFiles } from '@nexus-proxy/test-harness';
import { stringify } from 'yaml';
import type { RunningNode } from '../src/serve.js';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const SECRET_A = 'secret-a-0123456789-0123456789-0123456789';
export const SECRET_B = 'secret-b-9876543210-9876543210-9876543210';

/** A temporary directory with a CA and a hub certificate for 127.0.0.1 written to files. */
export interface Workdir {
  dir: string;
  ca: CertificateAndKey;
  hub: CertificateAndKey;
  certFile: string;
  keyFile: string;
  /** Issues another hub certificate (same CA). */
  issueHub(): Promise<CertificateAndKey>;
  remove(): void;
}

export async function createWorkdir(): Promise<Workdir> {
  const files = createTempDir('nexus-ops-');
  const pki = await createTestPki('Nexus Ops Test CA');
  const { certFile, keyFile } = writeCertificateFiles(files, pki.hub);
  return {
    dir: files.dir,
    ca: pki.ca,
    hub: pki.hub,
    certFile,
    keyFile,
    issueHub: () => pki.issue(['hub.test'], ['127.0.0.1']),
    remove: files.remove,
  };
}

/** Writes `config.yaml` (hub and relay listeners on 127.0.0.1:0) and returns its path. */
export function writeNodeConfig(work: Workdir, extra: Record<string, unknown> = {}): string {
  const file = join(work.dir, 'config.yaml');
  writeFileSync(
    file,
    stringify({
      backendListenAddress: '127.0.0.1:0',
      listeners: [
        { port: 0, mode: 'tls', host: '127.0.0.1' },
        { port: 0, mode: 'http', host: '127.0.0.1' },
      ],
      backendsJWTSecrets: [SECRET_A],
      hubTlsCertFile: work.certFile,
      hubTlsKeyFile: work.keyFile,
      ...extra,
    }),
  );
  return file;
}

/** Mints a token for `hostnames` with `secret`. */
export function token(secret: string, hostnames: string[]): Promise<string> {
  return mintBackendToken({ secret, hostnames });
}

/** Starts a backend client that sends every stream to `servicePort`. */
export function backend(
  hubPort: number,
  caPem: string,
  tokenText: string,
  servicePort: number,
): BackendClient {
  const client = createBackendClient({
    nodes: [`wss://127.0.0.1:${hubPort}/connect`],
    token: tokenText,
    tls: { ca: caPem },
    reconnect: { initialDelayMs: 50, maxDelayMs: 200, jitter: 0.25 },
    connectHandler: () => netConnect({ host: '127.0.0.1', port: servicePort, allowHalfOpen: true }),
  });
  client.connect();
  return client;
}

/** GET on the admin listener. */
export function adminGet(
  port: number,
  path: string,
): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }),
      );
    }).on('error', reject);
  });
}

/** A log line of the child (pino JSON). */
export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** `nexus-proxy serve` in a child process, with its JSON log lines parsed. */
export interface ServeChild {
  child: ChildProcess;
  lines: LogLine[];
  /** Everything written to stderr. */
  stderr(): string;
  /** Resolves with the first line (already seen or future) that `match` accepts. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string | null>;
  hubPort: number;
  httpPort: number;
  adminPort: number | undefined;
  kill(): void;
}

export async function spawnServe(args: string[]): Promise<ServeChild> {
  const child = spawn(process.execPath, [CLI, 'serve', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let err = '';
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    err += chunk;
    partial += chunk;
    let nl = partial.indexOf('\n');
    while (nl !== -1) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        // not a log line
      }
      nl = partial.indexOf('\n');
    }
  });
  child.stdout?.resume();
  const exited = new Promise<number | string | null>((r) => child.on('exit', (c, s) => r(c ?? s)));
  const waitFor = async (
    match: (line: LogLine) => boolean,
    timeoutMs = 10_000,
    from = 0,
  ): Promise<LogLine> => {
    let found: LogLine | undefined;
    await waitUntil(
      () => {
        found = lines.slice(from).find(match);
        return found !== undefined || child.exitCode !== null;
      },
      timeoutMs,
      'a log line',
    );
    if (found === undefined) throw new Error(`child exited: ${err}`);
    return found;
  };
  const listening = await waitFor((l) => l.msg === 'nexus listening', 15_000);
  const hub = String(listening.hub);
  const listeners = listening.listeners as string[];
  const http = listeners.find((l) => l.startsWith('http:')) ?? '';
  const admin = lines.find((l) => l.msg === 'admin listener listening');
  return {
    child,
    lines,
    stderr: () => err,
    waitFor,
    exited,
    hubPort: Number(hub.slice(hub.lastIndexOf(':') + 1)),
    httpPort: Number(http.slice(http.lastIndexOf(':') + 1)),
    adminPort: admin === undefined ? undefined : Number(admin.port),
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * What a test that runs a live node holds: its work directory, the node and its backend clients.
 * `reset()` (in `afterEach`) closes the clients, then the node, and removes the directory.
 */
export class LiveNodeFixture {
  work: Workdir | undefined;
  node: RunningNode | undefined;
  readonly clients: BackendClient[] = [];

  async reset(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.close();
    await this.node?.close();
    this.node = undefined;
    this.work?.remove();
    this.work = undefined;
  }
}
