import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@nexus-proxy/common';
import { unreadableFileDetail } from '@nexus-proxy/common';
import { Command, InvalidArgumentError, Option } from 'commander';
import { attestationClientOptions } from './attestation-config.js';
import type { BackendClient } from './backend-client.js';
import { type BackendReloadSummary, BackendSet, type BackendSpec } from './cli-backends.js';
import { DEBUG_ENV, debugRequested, errorFields } from './cli-errors.js';
import { createCliLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat } from './cli-logger.js';
import type { BackendClientOptions } from './client-options.js';
import { loadBackendClientConfig, type ResolvedBackendConfig } from './config.js';
import { InvalidOptionsError } from './errors.js';
import { type PortMappingsInput, resolvePortMappings } from './port-mappings.js';
import { renderBackendSystemdUnit } from './systemd-unit.js';
import { VERSION } from './version.js';

/**
 * Environment variable holding the backend JWT when neither `--token` nor `--token-file` is given (unlike
 * `--token`, not visible in `ps`).
 */
export const TOKEN_ENV = 'NEXUS_BACKEND_TOKEN';

/** Parsed command line of `nexus-backend`. */
export interface CliFlags {
  /** Reference client YAML file. */
  config?: string;
  /** Hub addresses (repeatable `--node`). */
  node: string[];
  /** Backend JWT. */
  token?: string;
  /** File holding the JWT, re-read before every connect. */
  tokenFile?: string;
  /** `port=host:port` mappings (repeatable `--map`). */
  map: string[];
  /** PEM file of the CA that signs the hubs' certificates. */
  ca?: string;
  /** pino level. */
  logLevel: string;
  /** `auto` (readable on a terminal, else JSON), `pretty` or `json`. */
  logFormat: LogFormat;
  /** Stack traces for failures. */
  debug?: boolean;
  /** Print a systemd unit for `--config` instead of running. */
  systemdUnit?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function mapping(value: string, previous: string[]): string[] {
  if (!/^\d{1,5}=.+:\d{1,5}$/.test(value)) {
    throw new InvalidArgumentError('expected PORT=HOST:PORT, e.g. 443=127.0.0.1:8443');
  }
  return [...previous, value];
}

/** The `nexus-backend` commander program (parsing only; `runCli` runs it). */
export function createCliProgram(): Command {
  return new Command()
    .name('nexus-backend')
    .description('Attach this machine to Nexus nodes and serve their streams from local services.')
    .version(VERSION)
    .option(
      '-c, --config <file>',
      'backend client YAML (reference format: backends[] with nexusAddresses, …); SIGHUP reloads it',
    )
    .option('--node <address>', 'hub address, wss://node:8443/connect or node:8443 (repeatable)', collect, [])
    .option('--token <jwt>', `backend JWT (visible in ps: prefer --token-file or ${TOKEN_ENV})`)
    .option('--token-file <file>', 'file holding the backend JWT, re-read before every connect')
    .option(
      '--map <port=host:port>',
      "node's relay port to local service, e.g. 443=127.0.0.1:8443 (repeatable); an unmapped node port uses 443 (TLS) or 80 (HTTP)",
      mapping,
      [],
    )
    .option('--ca <file>', 'PEM CA certificate(s) to trust for the hubs (adds to --config caFile)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(
      new Option('--log-format <format>', 'log output: readable lines on a terminal, else JSON')
        .choices(LOG_FORMATS)
        .default('auto'),
    )
    .option('--debug', `print stack traces of failures (or set ${DEBUG_ENV}=1)`)
    .option('--systemd-unit', 'print a hardened systemd unit that runs this --config, and exit')
    .showHelpAfterError();
}

/** Parses `argv` (as in `process.argv`); exits with usage on bad flags, like any commander program. */
export function parseCliFlags(argv: readonly string[]): CliFlags {
  const program = createCliProgram();
  program.parse(argv as string[]);
  return program.opts<CliFlags>();
}

function tokenFromFile(file: string): () => Promise<string> {
  return async () => (await readFile(file, 'utf8')).trim();
}

/** Reads a file the command line or the configuration names; the error names `key` and the fix. */
async function readNamedFile(file: string, key: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidOptionsError(key, unreadableFileDetail(file, err));
  }
}

/**
 * One backend per `backends[]` entry of `--config`, or one from the flags (named `cli`). Throws
 * `InvalidOptionsError` for an invalid file or flag combination, naming the key or flag.
 */
export async function buildBackends(flags: CliFlags, logger: Logger): Promise<BackendSpec[]> {
  const extraCa = flags.ca !== undefined ? await readNamedFile(flags.ca, '--ca') : undefined;
  if (flags.config !== undefined) {
    if (flags.node.length > 0 || flags.map.length > 0 || flags.token !== undefined) {
      throw new InvalidOptionsError('--config', 'cannot be combined with --node, --map and --token');
    }
    const config = await loadBackendClientConfig(flags.config);
    for (const warning of config.warnings) logger.warn(warning);
    return Promise.all(
      config.backends.map((backend, i) => fromBackendConfig(backend, `backends[${i}]`, extraCa, logger)),
    );
  }
  if (flags.node.length === 0)
    throw new InvalidOptionsError(
      '--node',
      'is required without --config (give --node with --token and --map)',
    );
  const envToken = process.env[TOKEN_ENV]?.trim() || undefined;
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw new InvalidOptionsError('--token', 'and --token-file cannot both be given');
  }
  if (flags.token === undefined && flags.tokenFile === undefined && envToken === undefined) {
    throw new InvalidOptionsError('--token', `is missing: give --token-file, ${TOKEN_ENV} or --token`);
  }
  if (flags.map.length === 0)
    throw new InvalidOptionsError('--map', 'is required: give at least one --map PORT=HOST:PORT');
  // Read before every connect; read now too, so that a wrong path fails at start, in one line.
  if (flags.tokenFile !== undefined) await readNamedFile(flags.tokenFile, '--token-file');
  const mappings: PortMappingsInput = {};
  for (const entry of flags.map) {
    const eq = entry.indexOf('=');
    mappings[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const options: BackendClientOptions = {
    nodes: flags.node,
    token: flags.token ?? (flags.tokenFile !== undefined ? tokenFromFile(flags.tokenFile) : envToken!),
    portMappings: resolvePortMappings(mappings, '--map'),
    ...(extraCa !== undefined ? { tls: { ca: extraCa } } : {}),
    logger,
  };
  return [{ name: 'cli', connection: '', options }];
}

/**
 * One set of `createBackendClient` options per backend: from `--config` (one per `backends[]` entry) or
 * from the flags. Throws `InvalidOptionsError` for an invalid file or flag combination.
 */
export async function buildClientOptions(flags: CliFlags, logger: Logger): Promise<BackendClientOptions[]> {
  return (await buildBackends(flags, logger)).map((b) => b.options);
}

async function fromBackendConfig(
  backend: ResolvedBackendConfig,
  at: string,
  extraCa: string | undefined,
  logger: Logger,
): Promise<BackendSpec> {
  const ca: string[] = [];
  if (backend.caFile !== undefined) ca.push(await readNamedFile(backend.caFile, `${at}.caFile`));
  if (extraCa !== undefined) ca.push(extraCa);
  if (
    backend.attestation === undefined &&
    backend.authToken === undefined &&
    backend.authTokenFile !== undefined
  ) {
    await readNamedFile(backend.authTokenFile, `${at}.authTokenFile`);
  }
  const options: BackendClientOptions = {
    nodes: [...backend.nexusAddresses],
    // Seed era: the token as written; current era: a token provider and the claims it signs.
    ...(backend.attestation !== undefined
      ? attestationClientOptions(backend, backend.attestation)
      : { token: backend.authToken ?? tokenFromFile(backend.authTokenFile!) }),
    portMappings: backend.portMappings,
    healthChecks: backend.healthChecks,
    // Bound for the first of nexusAddresses only, as in the reference client.
    ...(backend.socks5ListenAddr !== undefined ? { socks5ListenAddr: backend.socks5ListenAddr } : {}),
    ...(ca.length > 0 ? { tls: { ca } } : {}),
    logger: logger.child({ backend: backend.name }),
  };
  // What the sessions depend on: everything but the port mappings and health checks (hub addresses,
  // token or token file, era and attestation, claims, CA). A token file's content is re-read before
  // every connect anyway.
  const { portMappings: _mappings, healthChecks: _health, ...settings } = backend;
  const connection = JSON.stringify([settings, ca]);
  return { name: backend.name, connection, options };
}

/** A running `nexus-backend`: its clients, `reload()` (what SIGHUP does) and `close()`. */
export interface CliHandle {
  /** The running clients (a reload can replace some). */
  readonly clients: BackendClient[];
  /**
   * Re-reads `--config` and applies it (see `BackendSet.apply`). Rejects, keeping everything as it was,
   * when the file is unreadable or invalid; the failure is logged either way.
   */
  reload(): Promise<BackendReloadSummary>;
  close(): Promise<void>;
}

/**
 * Runs `nexus-backend`: one client per backend, connected at once; SIGINT/SIGTERM close them
 * gracefully (a second signal exits at once); SIGHUP reloads `--config`. Returns the handle (tests call
 * `close()`).
 */
export async function runCli(
  argv: readonly string[],
  options: { logger?: Logger; handleSignals?: boolean } = {},
): Promise<CliHandle> {
  const flags = parseCliFlags(argv);
  if (flags.systemdUnit === true) {
    if (flags.config === undefined) {
      throw new InvalidOptionsError('--systemd-unit', 'needs --config: the unit runs nexus-backend -c FILE');
    }
    await loadBackendClientConfig(flags.config); // a unit for a file that does not load would not start
    process.stdout.write(renderBackendSystemdUnit({ configFile: path.resolve(flags.config) }));
    return {
      clients: [],
      reload: () => Promise.reject(new InvalidOptionsError('--systemd-unit', 'runs nothing')),
      close: async () => {},
    };
  }
  const debug = flags.debug === true || debugRequested(argv);
  const logger: Logger =
    options.logger ??
    createCliLogger({ name: 'nexus-backend', level: flags.logLevel, format: flags.logFormat });
  const backends = new BackendSet(logger);
  backends.start(await buildBackends(flags, logger));

  const reload = async (): Promise<BackendReloadSummary> => {
    try {
      if (flags.config === undefined) {
        throw new InvalidOptionsError('SIGHUP', 'reloads --config, and this process runs from flags');
      }
      const summary = await backends.apply(await buildBackends(flags, logger));
      logger.info({ ...summary }, 'configuration reloaded');
      return summary;
    } catch (err) {
      logger.error(errorFields(err, debug), 'configuration reload failed: keeping the running configuration');
      throw err;
    }
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= backends.close().then(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onHangup);
    });
    return closing;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing !== undefined) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down');
    void close().then(() => logger.info('stopped'));
  };
  const onHangup = (signal: NodeJS.Signals): void => {
    if (closing !== undefined) return;
    logger.info({ signal, config: flags.config }, 'reloading the configuration');
    reload().catch(() => {}); // logged by reload()
  };
  if (options.handleSignals ?? true) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onHangup);
  }
  const clients = backends.clients;
  logger.info(
    { version: VERSION, backends: clients.length, nodes: clients.flatMap((c) => c.options.nodes) },
    'nexus-backend started',
  );
  return {
    get clients() {
      return backends.clients;
    },
    reload,
    close,
  };
}
