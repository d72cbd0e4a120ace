import { readFile } from 'node:fs/promises';
import type { Logger } from '@nexus-proxy/common';
import { Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import { attestationClientOptions } from './attestation-config.js';
import { type BackendClient, createBackendClient } from './backend-client.js';
import type { BackendClientOptions } from './client-options.js';
import { loadBackendClientConfig, type ResolvedBackendConfig } from './config.js';
import { InvalidOptionsError } from './errors.js';
import { type PortMappingsInput, resolvePortMappings } from './port-mappings.js';
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

/** Parses `argv` (as in `process.argv`); exits with usage on bad flags, like any commander program. */
export function parseCliFlags(argv: readonly string[]): CliFlags {
  const program = new Command()
    .name('nexus-backend')
    .description('Attach this machine to Nexus nodes and serve their streams from local services.')
    .version(VERSION)
    .option(
      '-c, --config <file>',
      'backend client YAML (reference format: backends[] with nexusAddresses, …)',
    )
    .option('--node <address>', 'hub address, wss://node:8443/connect or node:8443 (repeatable)', collect, [])
    .option('--token <jwt>', `backend JWT (visible in ps: prefer --token-file or ${TOKEN_ENV})`)
    .option('--token-file <file>', 'file holding the backend JWT, re-read before every connect')
    .option(
      '--map <port=host:port>',
      'relay port to local service, e.g. 443=127.0.0.1:8443 (repeatable)',
      mapping,
      [],
    )
    .option('--ca <file>', 'PEM CA certificate(s) to trust for the hubs (adds to --config caFile)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .showHelpAfterError();
  program.parse(argv as string[]);
  return program.opts<CliFlags>();
}

function tokenFromFile(file: string): () => Promise<string> {
  return async () => (await readFile(file, 'utf8')).trim();
}

/**
 * One set of `createBackendClient` options per backend: from `--config` (one per `backends[]` entry) or
 * from the flags. Throws `InvalidOptionsError` for an invalid file or flag combination.
 */
export async function buildClientOptions(flags: CliFlags, logger: Logger): Promise<BackendClientOptions[]> {
  const extraCa = flags.ca !== undefined ? await readFile(flags.ca, 'utf8') : undefined;
  if (flags.config !== undefined) {
    if (flags.node.length > 0 || flags.map.length > 0 || flags.token !== undefined) {
      throw new InvalidOptionsError('--config', 'cannot be combined with --node, --map and --token');
    }
    const config = await loadBackendClientConfig(flags.config);
    for (const warning of config.warnings) logger.warn(warning);
    return Promise.all(config.backends.map((backend) => fromBackendConfig(backend, extraCa, logger)));
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
  const mappings: PortMappingsInput = {};
  for (const entry of flags.map) {
    const eq = entry.indexOf('=');
    mappings[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return [
    {
      nodes: flags.node,
      token: flags.token ?? (flags.tokenFile !== undefined ? tokenFromFile(flags.tokenFile) : envToken!),
      portMappings: resolvePortMappings(mappings, '--map'),
      ...(extraCa !== undefined ? { tls: { ca: extraCa } } : {}),
      logger,
    },
  ];
}

async function fromBackendConfig(
  backend: ResolvedBackendConfig,
  extraCa: string | undefined,
  logger: Logger,
): Promise<BackendClientOptions> {
  const ca: string[] = [];
  if (backend.caFile !== undefined) ca.push(await readFile(backend.caFile, 'utf8'));
  if (extraCa !== undefined) ca.push(extraCa);
  return {
    nodes: [...backend.nexusAddresses],
    // Seed era: the token as written; current era: a token provider and the claims it signs.
    ...(backend.attestation !== undefined
      ? attestationClientOptions(backend, backend.attestation)
      : { token: backend.authToken ?? tokenFromFile(backend.authTokenFile!) }),
    portMappings: backend.portMappings,
    healthChecks: backend.healthChecks,
    ...(ca.length > 0 ? { tls: { ca } } : {}),
    logger: logger.child({ backend: backend.name }),
  };
}

/** A running `nexus-backend`: its clients and a `close()` that stops them all. */
export interface CliHandle {
  clients: BackendClient[];
  close(): Promise<void>;
}

/**
 * Runs `nexus-backend`: one client per backend, connected at once; SIGINT/SIGTERM close them
 * gracefully (a second signal exits at once). Returns the handle (tests call `close()`).
 */
export async function runCli(
  argv: readonly string[],
  options: { logger?: Logger; handleSignals?: boolean } = {},
): Promise<CliHandle> {
  const flags = parseCliFlags(argv);
  const logger: Logger = options.logger ?? pino({ name: 'nexus-backend', level: flags.logLevel });
  const clientOptions = await buildClientOptions(flags, logger);
  const clients = clientOptions.map((o) => createBackendClient(o));
  for (const client of clients) {
    client.on('stream-open', (s) => logger.debug(s, 'stream open'));
    client.on('stream-close', (s) => logger.debug(s, 'stream closed'));
    client.connect();
  }
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= Promise.all(clients.map((c) => c.close())).then(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
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
  if (options.handleSignals ?? true) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  logger.info(
    { version: VERSION, backends: clients.length, nodes: clients.flatMap((c) => c.options.nodes) },
    'nexus-backend started',
  );
  return { clients, close };
}
