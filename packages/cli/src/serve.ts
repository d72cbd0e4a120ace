/**
 * `nexus-proxy serve`: load the configuration (or the embedded default), create the node, listen, and map
 * signals to operations: SIGTERM/SIGINT drain and close, SIGHUP reloads the configuration file. The admin
 * listener (metrics, health, status) starts when configured. No routing or protocol logic lives here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  createNexus,
  HubTlsContext,
  type ListenAddress,
  loadConfig,
  loadHubTlsFiles,
  mintBackendToken,
  type Nexus,
  type NexusAddresses,
  type NexusConfigInput,
  type NexusReloadResult,
  type ResolvedNexusConfig,
  resolveNexusConfig,
} from '@nexus-proxy/core';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import { type AdminServer, createAdminServer, resolveAdminToken } from './admin.js';
import { createDashboard, type DashboardOptions } from './dashboard.js';
import { DEMO_HOSTNAME, type Demo, startDemo } from './demo.js';
import { errorFields } from '@nexus-proxy/backend-client/cli-support';
import { createCliLogger, type LogFormat } from './logger.js';
import { createNexusMetrics, type NexusMetrics } from './metrics.js';
import { DEFAULT_STATE_DIR, ensureNodeState, type NodeState } from './state.js';
import { buildStatus, nodeReadiness, parseAdminAddress } from './status.js';
import { VERSION } from './version.js';
import { CliError } from './errors.js';

/** Ports of the embedded default (unprivileged, loopback only). */
export const EMBEDDED_PORTS = { tls: 8443, http: 8080, hub: 8444 } as const;

export interface ServeOptions {
  /** Config file; none = the embedded default. */
  config?: string;
  /** Start the demo backend and services (embedded default only). */
  demo?: boolean;
  /** State directory of the embedded default. Default: `.nexus`. */
  stateDir?: string;
  /** Override the log level of the configuration. */
  logLevel?: string;
  logFormat?: LogFormat;
  /** Grace period of a SIGTERM/SIGINT drain, ms. Default: 10 000. */
  graceMs?: number;
  /** Ports of the embedded default (tests use 0). */
  ports?: { tls: number; http: number; hub: number };
  /** Where the human-readable instructions go. Default: stdout. */
  print?: (text: string) => void;
  /** Install SIGINT/SIGTERM (drain and exit) and SIGHUP (reload) handlers. Default: true. */
  handleSignals?: boolean;
  /**
   * Admin listener address, overriding the configuration's `admin` (`127.0.0.1:9090`; a bare port means
   * 127.0.0.1). Default: the configuration's, else off.
   */
  admin?: string;
  /**
   * File holding the admin bearer token (`--admin-token-file`); before `NEXUS_ADMIN_TOKEN` and the
   * configuration's `admin.tokenFile` / `admin.token`. Default: none.
   */
  adminTokenFile?: string;
  /** Write JSON log lines here instead of stderr (embedding, tests). */
  logDestination?: DestinationStream;
  /** Sampling and bounds of the admin listener's dashboard (docs/operations.md). Default: the defaults. */
  dashboard?: DashboardOptions;
  /** Log the stack of every failure (`--debug`). Default: one line for expected failures. */
  debug?: boolean;
  /** Flags given with `-c` that the configuration file overrides (`--tls-port`, …): a warning each. */
  ignoredFlags?: readonly string[];
}

export interface RunningNode {
  nexus: Nexus;
  addresses: NexusAddresses;
  demo?: Demo;
  logger: PinoLogger;
  metrics: NexusMetrics;
  /** The admin listener's address, when it runs. */
  adminAddress?: AddressInfo;
  /** True from the first close signal on (`/readyz` answers 503). */
  readonly draining: boolean;
  /**
   * Re-reads the configuration file and applies it (what SIGHUP does). Rejects, keeping the old
   * configuration, when the file is unreadable or invalid; the failure is logged either way.
   */
  reload(): Promise<NexusReloadResult>;
  /** Drain and close everything (demo first, then the node, then the admin listener). */
  close(): Promise<void>;
}

/** The embedded default configuration: loopback only, unprivileged ports, state-directory secret and cert. */
export function embeddedConfig(
  state: NodeState,
  ports: { tls: number; http: number; hub: number } = EMBEDDED_PORTS,
): NexusConfigInput {
  return {
    backendListenAddress: `127.0.0.1:${ports.hub}`,
    listeners: [
      { port: ports.tls, mode: 'tls', host: '127.0.0.1' },
      { port: ports.http, mode: 'http', host: '127.0.0.1' },
    ],
    backendsJWTSecret: state.secret,
    hubTlsCertFile: state.certFile,
    hubTlsKeyFile: state.keyFile,
  };
}

/** The current-era backend configuration the embedded default writes into its state directory. */
export const BACKEND_CONFIG_FILE = 'backend.yaml';

/**
 * A ready-to-run `nexus-backend` configuration for the embedded default, current era (docs/getting-started.md):
 * the backend `app` serving `app.localhost`, signing its own tokens with the state directory's secret
 * (`attestation.hmacSecretFile`), trusting the state directory's hub certificate, and relaying the TLS and
 * HTTP relay ports to 127.0.0.1:9443 and 127.0.0.1:9080.
 */
export function currentEraBackendConfig(o: {
  state: NodeState;
  hubUrl: string;
  tlsPort: number;
  httpPort: number;
  file: string;
}): string {
  const header = [
    '# A current-era backend for the node `nexus-proxy serve` runs from this state directory, written at',
    '# every start (copy it before editing). Run it with:',
    `#   nexus-backend -c ${o.file}`,
    '# A seed-era backend uses `authToken: <token>` (nexus-proxy token) instead of `attestation`.',
  ];
  // Every scalar is written as a JSON string, which YAML reads as the same string whatever it holds.
  const q = (text: string): string => JSON.stringify(text);
  return [
    ...header,
    'backends:',
    '  - name: "app"',
    '    hostnames: ["app.localhost"]',
    `    nexusAddresses: [${q(o.hubUrl)}]`,
    `    caFile: ${q(o.state.certFile)}`,
    '    attestation:',
    `      hmacSecretFile: ${q(join(o.state.dir, 'backend-secret'))}`,
    '    portMappings:',
    `      ${o.tlsPort}: "127.0.0.1:9443"`,
    `      ${o.httpPort}: "127.0.0.1:9080"`,
    '',
  ].join('\n');
}

/** Starts a node as `nexus-proxy serve` does; resolves once it listens. */
export async function serve(options: ServeOptions = {}): Promise<RunningNode> {
  const print = options.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  let config: ResolvedNexusConfig;
  let state: NodeState | undefined;
  if (options.config !== undefined) {
    if (options.demo)
      throw new CliError('NEXUS_ERR_USAGE', '--demo runs on the embedded default; drop -c/--config');
    config = await loadConfig(options.config);
  } else {
    state = await ensureNodeState(options.stateDir ?? DEFAULT_STATE_DIR);
    config = resolveNexusConfig(embeddedConfig(state, options.ports ?? EMBEDDED_PORTS));
  }
  const level = options.logLevel ?? config.logLevel;
  const logger = createCliLogger({ level, format: options.logFormat, destination: options.logDestination });
  const debug = options.debug === true;
  for (const flag of options.ignoredFlags ?? []) {
    logger.warn(
      { flag, config: options.config },
      `${flag} is ignored: it sets up the embedded default, and -c ${options.config} says where to listen`,
    );
  }
  const startedAt = Date.now();
  const nexus = createNexus(config, {
    logger,
    tlsContext:
      state === undefined
        ? undefined
        : new HubTlsContext({
            certPem: readFileSync(state.certFile, 'utf8'),
            keyPem: readFileSync(state.keyFile, 'utf8'),
          }),
  });
  const metrics = createNexusMetrics(nexus);
  const phase = { listening: false, draining: false };
  const readiness = () => nodeReadiness(nexus, phase);
  let admin: AdminServer | undefined;
  let adminAddress: AddressInfo | undefined;
  const adminAt: ListenAddress | undefined =
    options.admin !== undefined ? parseAdminAddress(options.admin) : config.admin;
  let addresses: NexusAddresses;
  try {
    // The hub's files are read and checked before the first port (the admin listener's) is bound.
    if (config.tls.mode === 'files' && state === undefined) await loadHubTlsFiles(config.tls);
    if (adminAt !== undefined) {
      // Up before the node, so /healthz answers and /readyz says `starting` during a slow start (ACME).
      const token = resolveAdminToken({
        ...(options.adminTokenFile !== undefined ? { file: options.adminTokenFile } : {}),
        configToken: config.adminToken.token,
        configTokenFile: config.adminToken.tokenFile,
      });
      const status = () =>
        buildStatus({
          nexus,
          metrics,
          readiness,
          draining: () => phase.draining,
          version: VERSION,
          startedAt,
        });
      admin = createAdminServer({
        host: adminAt.host,
        port: adminAt.port,
        ...(token !== undefined ? { token } : {}),
        metrics,
        readiness,
        status,
        dashboard: createDashboard(nexus, status, options.dashboard),
        logger,
      });
      adminAddress = await admin.listen();
    }
    addresses = await nexus.listen();
  } catch (err) {
    await admin?.close();
    await nexus.close({ graceMs: 0 });
    metrics.close();
    // The lines of the shutdown come out before the failure the caller prints.
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    throw err;
  }
  phase.listening = true;

  let demo: Demo | undefined;
  // Printed only after the signal handlers are installed: whoever reads it may signal us at once.
  let instructions: string | undefined;
  if (state !== undefined) {
    const tlsPort = addresses.listeners.find((l) => l.mode === 'tls')?.address.port ?? 0;
    const httpPort = addresses.listeners.find((l) => l.mode === 'http')?.address.port ?? 0;
    const hubUrl = `wss://127.0.0.1:${addresses.hub.port}/connect`;
    const hubCaPem = readFileSync(state.certFile, 'utf8');
    if (options.demo) {
      // The demo is ready when the node has registered its backend (the client's own 'connected' comes
      // before the node has checked the token), so the printed commands work at once.
      const registered = new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 30_000);
        const onConnected = (e: { hostnames: readonly string[] }): void => {
          if (!e.hostnames.includes(DEMO_HOSTNAME)) return;
          clearTimeout(t);
          nexus.off('backend-connected', onConnected);
          resolve();
        };
        nexus.on('backend-connected', onConnected);
      });
      demo = await startDemo({
        stateDir: state.dir,
        hubUrl,
        hubCaPem,
        secret: state.secret,
        tlsPort,
        httpPort,
        logger,
      });
      await registered;
      instructions = [
        '',
        `Nexus demo is running. The backend "${DEMO_HOSTNAME}" is attached through the hub at ${hubUrl}.`,
        '',
        "TLS passthrough (the certificate curl checks is the demo service's own, not the node's):",
        `  curl --cacert ${state.dir}/demo-service-cert.pem --resolve ${DEMO_HOSTNAME}:${tlsPort}:127.0.0.1 https://${DEMO_HOSTNAME}:${tlsPort}/`,
        'HTTP routed by Host:',
        `  curl --resolve ${DEMO_HOSTNAME}:${httpPort}:127.0.0.1 http://${DEMO_HOSTNAME}:${httpPort}/`,
        '',
        'Press Ctrl-C to stop.',
      ].join('\n');
    } else {
      const backendFile = join(state.dir, BACKEND_CONFIG_FILE);
      writeFileSync(
        backendFile,
        currentEraBackendConfig({ state, hubUrl, tlsPort, httpPort, file: backendFile }),
        { mode: 0o600 },
      );
      const token = await mintBackendToken({ secret: state.secret, hostnames: ['app.localhost'] });
      instructions = [
        '',
        `Nexus is running: TLS relay 127.0.0.1:${tlsPort}, HTTP relay 127.0.0.1:${httpPort}, hub ${hubUrl}.`,
        `State (secret, hub certificate, backend config): ${state.dir}`,
        '',
        'Attach a backend serving app.localhost from local HTTPS on 127.0.0.1:9443 and HTTP on 127.0.0.1:9080',
        `(current era: it signs its own short-lived tokens with ${state.dir}/backend-secret and answers the`,
        `hub's challenges; the targets are in ${backendFile}, rewritten at every start: copy it to edit it):`,
        `  nexus-backend -c ${backendFile}`,
        '',
        'A seed-era backend (one long-lived token, as seed-era clients use) instead: a token for app.localhost',
        `(mint others with: nexus-proxy token --secret-file ${state.dir}/backend-secret --hostname NAME):`,
        `  ${token}`,
        `  nexus-backend --node ${hubUrl} --ca ${state.certFile} --token ${token} \\`,
        `    --map ${tlsPort}=127.0.0.1:9443 --map ${httpPort}=127.0.0.1:9080`,
      ].join('\n');
    }
  }

  const reload = async (): Promise<NexusReloadResult> => {
    try {
      if (options.config === undefined) {
        throw new CliError('NEXUS_ERR_USAGE', 'the embedded default has no configuration file to reload');
      }
      const next = await loadConfig(options.config);
      const result = await nexus.reload(next);
      if (options.logLevel === undefined && next.logLevel !== logger.level) {
        logger.level = next.logLevel;
        result.applied.push('logLevel');
      }
      const adminNow = next.admin;
      if (options.admin === undefined && JSON.stringify(adminNow) !== JSON.stringify(config.admin)) {
        result.restartRequired.push('admin');
      }
      if (result.restartRequired.length > 0) {
        logger.warn(
          { restartRequired: result.restartRequired },
          'some changes take effect only after a restart',
        );
      }
      metrics.recordReload(true);
      return result;
    } catch (err) {
      metrics.recordReload(false);
      logger.error(errorFields(err, debug), 'configuration reload failed: keeping the running configuration');
      throw err;
    }
  };

  const signalHandlers: Array<[NodeJS.Signals, (signal: NodeJS.Signals) => void]> = [];
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    phase.draining = true;
    closed ??= (async () => {
      for (const [signal, handler] of signalHandlers) process.off(signal, handler);
      await demo?.close();
      await nexus.close({ graceMs: options.graceMs });
      await admin?.close();
      metrics.close();
      logger.flush?.();
    })();
    return closed;
  };

  if (options.handleSignals !== false) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      logger.info({ signal, graceMs: options.graceMs }, 'draining and shutting down');
      close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    const onHangup = (signal: NodeJS.Signals) => {
      if (phase.draining) return;
      logger.info({ signal, config: options.config }, 'reloading the configuration');
      reload().catch(() => {}); // logged by reload()
    };
    signalHandlers.push(['SIGINT', onSignal], ['SIGTERM', onSignal], ['SIGHUP', onHangup]);
    for (const [signal, handler] of signalHandlers) process.on(signal, handler);
  }
  if (instructions !== undefined) print(instructions);
  return {
    nexus,
    addresses,
    demo,
    logger,
    metrics,
    adminAddress,
    get draining() {
      return phase.draining;
    },
    reload,
    close,
  };
}
