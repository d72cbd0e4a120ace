/**
 * `nexus-proxy check -c FILE`: what `serve -c FILE` would refuse, found without starting a node — the
 * schema and the cross-field rules, the files the configuration names (the hub's certificate and key:
 * readable, valid now and belonging together; the peer CA; the admin token file; the ACME cache
 * directory), and every port it would bind (free and bindable by this user). One line per check; the
 * exit code says what kind of problem came first, for scripts (see {@link CHECK_EXIT}).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import {
  type ListenAddress,
  listenServer,
  loadConfig,
  loadHubTlsFiles,
  NexusError,
  noopLogger,
  type ResolvedNexusConfig,
  readConfiguredFile,
} from '@nexus-proxy/core';
import { isExpectedError, oneLine } from '@nexus-proxy/backend-client/cli-support';

/** Exit codes of `nexus-proxy check`. */
export const CHECK_EXIT = {
  /** Everything checked is fine (warnings may have been printed). */
  ok: 0,
  /** The configuration is invalid: syntax, a key, a cross-field rule, or a file it names. */
  config: 1,
  /** The configuration is fine, but this machine cannot run it now: a port is taken or not bindable, a directory is not writable. */
  environment: 2,
} as const;

export interface CheckReport {
  /** One of {@link CHECK_EXIT}. */
  exitCode: number;
  /** `ok …`, `warning …`, `error …`, one per line. */
  lines: string[];
}

const DAY_MS = 86_400_000;

function described(err: unknown): string {
  return isExpectedError(err) ? oneLine(err.message) : String((err as Error)?.message ?? err);
}

/** Binds `at` for a moment (then releases it); throws the one-line `NEXUS_ERR_LISTEN` error of the node. */
async function probePort(at: ListenAddress, what: string, key: string): Promise<void> {
  const server = createServer();
  await listenServer(server, at.port, at.host, noopLogger, what, key);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** The nearest existing directory at or above `dir`, and whether this user may write into it. */
async function writableDirectory(dir: string): Promise<{ dir: string; writable: boolean }> {
  let current = path.resolve(dir);
  for (;;) {
    try {
      if ((await stat(current)).isDirectory()) {
        const writable = await access(current, constants.W_OK | constants.X_OK).then(
          () => true,
          () => false,
        );
        return { dir: current, writable };
      }
    } catch {
      // not there yet: try its parent
    }
    const parent = path.dirname(current);
    if (parent === current) return { dir: current, writable: false };
    current = parent;
  }
}

/** The addresses `serve` would bind, with what they are and the key that sets them. */
function bindings(config: ResolvedNexusConfig): Array<{ at: ListenAddress; what: string; key: string }> {
  const list = config.listeners.map((l) => ({
    at: { host: l.host, port: l.port },
    what: `${l.mode === 'tls' ? 'TLS' : 'HTTP'} relay listener`,
    key: 'relayPorts (or listeners)',
  }));
  list.push({ at: config.backendListen, what: 'hub', key: 'backendListenAddress' });
  const mesh = config.peers.length > 0 || config.peerAuthentication.trustedDomainSuffixes.length > 0;
  if (mesh && config.peerListen !== undefined) {
    list.push({ at: config.peerListen, what: 'peer listener', key: 'peerListenAddress' });
  }
  if (config.admin !== undefined) list.push({ at: config.admin, what: 'admin listener', key: 'admin' });
  return list;
}

function formatAddress(at: ListenAddress): string {
  const host = at.host === undefined ? '*' : at.host.includes(':') ? `[${at.host}]` : at.host;
  return `${host}:${at.port}`;
}

/** Checks the configuration file `file` as `serve -c file` would use it. */
export async function checkConfig(file: string, now: () => number = Date.now): Promise<CheckReport> {
  const lines: string[] = [];
  let config: ResolvedNexusConfig;
  try {
    config = await loadConfig(file);
  } catch (err) {
    return { exitCode: CHECK_EXIT.config, lines: [`error  ${described(err)}`] };
  }
  lines.push(
    `ok     ${file}: valid (${config.listeners.length} relay listeners, hub ${formatAddress(config.backendListen)})`,
  );
  for (const warning of config.warnings) lines.push(`warning ${warning}`);

  // Files: a problem here is the configuration's (exit 1), found before any port is probed.
  const fileErrors: string[] = [];
  if (config.tls.mode === 'files') {
    try {
      const context = await loadHubTlsFiles(config.tls);
      const info = context.info();
      const daysLeft = Math.floor((info.notAfter.getTime() - now()) / DAY_MS);
      if (info.notAfter.getTime() <= now()) {
        fileErrors.push(
          `error  hubTlsCertFile ${config.tls.certFile} expired on ${info.notAfter.toISOString()}: renew it`,
        );
      } else if (info.notBefore.getTime() > now()) {
        fileErrors.push(
          `error  hubTlsCertFile ${config.tls.certFile} is not valid before ${info.notBefore.toISOString()}: check the clock or the certificate`,
        );
      } else {
        lines.push(
          `ok     hubTlsCertFile and hubTlsKeyFile belong together; valid until ${info.notAfter.toISOString()} (${daysLeft} day${daysLeft === 1 ? '' : 's'})`,
        );
      }
    } catch (err) {
      fileErrors.push(`error  ${described(err)}`);
    }
  }
  const otherFiles = [
    { key: 'peerAuthentication.caFile', file: config.peerAuthentication.caFile },
    { key: 'admin.tokenFile', file: config.adminToken.tokenFile },
  ];
  for (const { key, file } of otherFiles) {
    if (file === undefined) continue;
    try {
      await readConfiguredFile(file, key);
      lines.push(`ok     ${key} ${file} is readable`);
    } catch (err) {
      fileErrors.push(`error  ${described(err)}`);
    }
  }
  if (fileErrors.length > 0) return { exitCode: CHECK_EXIT.config, lines: [...lines, ...fileErrors] };

  // This machine: directories to write and ports to bind (exit 2).
  const envErrors: string[] = [];
  if (config.tls.mode === 'acme') {
    const { dir, writable } = await writableDirectory(config.tls.cacheDir);
    if (writable) lines.push(`ok     acmeCacheDir ${config.tls.cacheDir} can be written (in ${dir})`);
    else {
      envErrors.push(
        `error  acmeCacheDir ${config.tls.cacheDir}: ${dir} is not writable by this user: change acmeCacheDir or the directory's owner`,
      );
    }
  }
  for (const { at, what, key } of bindings(config)) {
    if (at.port === 0) {
      lines.push(`ok     ${what} ${formatAddress(at)}: any free port`);
      continue;
    }
    try {
      await probePort(at, what, key);
      lines.push(`ok     ${what} ${formatAddress(at)} is free`);
    } catch (err) {
      if (!NexusError.is(err)) throw err;
      envErrors.push(`error  ${oneLine(err.message)}`);
    }
  }
  if (envErrors.length > 0) return { exitCode: CHECK_EXIT.environment, lines: [...lines, ...envErrors] };
  return { exitCode: CHECK_EXIT.ok, lines };
}
