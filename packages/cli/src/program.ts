/** The `nexus-proxy` command line (commander). Thin: every command calls into `@nexus-proxy/core`. */
import { backendClientConfigJsonSchema } from '@nexus-proxy/backend-client';
import { loadConfig, mintBackendToken, nexusConfigJsonSchema } from '@nexus-proxy/core';
import { DEBUG_ENV, debugRequested, describeFailure } from '@nexus-proxy/backend-client/cli-support';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { ADMIN_TOKEN_ENV, resolveAdminToken } from './admin.js';
import { checkConfig } from './check.js';
import { readNamedFile } from './files.js';
import { COMPLETION_SHELLS, completionScript } from './completion.js';
import { addInitCommand } from './installer.js';
import { LOG_FORMATS, LOG_LEVELS } from './logger.js';
import { EMBEDDED_PORTS, serve } from './serve.js';
import { DEFAULT_ADMIN_ADDRESS, fetchStatus, formatStatus } from './status.js';
import { VERSION } from './version.js';

/** Environment variable `nexus-proxy token` reads the secret from (not visible in `ps`, unlike `--secret`). */
export const SECRET_ENV = 'NEXUS_JWT_SECRET';

function integer(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export interface ProgramIo {
  out?: (text: string) => void;
}

/** Builds the commander program; `parseAsync(argv)` runs it. */
export function createProgram(io: ProgramIo = {}): Command {
  const out = io.out ?? ((text: string) => process.stdout.write(`${text}\n`));
  const program = new Command('nexus-proxy')
    .description('Nexus Proxy: a privacy-first passthrough edge proxy (routes TLS by SNI, HTTP by Host).')
    .version(VERSION)
    .option('--debug', `print stack traces of failures (or set ${DEBUG_ENV}=1)`);

  program
    .command('serve')
    .description('run a node (without -c: the embedded default on 127.0.0.1, ports 8443/8080/8444)')
    .option('-c, --config <file>', 'YAML configuration file (reference keys work unchanged)')
    .option('--demo', 'embedded default plus a demo backend for demo.localhost, with curl commands')
    .option('--state-dir <dir>', 'state directory of the embedded default', '.nexus')
    .addOption(
      new Option(
        '--log-level <level>',
        "log level (default: the configuration's logLevel, else info)",
      ).choices(LOG_LEVELS),
    )
    .addOption(
      new Option('--log-format <format>', 'log output: readable lines on a terminal, else JSON')
        .choices(LOG_FORMATS)
        .default('auto'),
    )
    .option('--grace <ms>', 'time streams get to finish on SIGTERM/SIGINT', integer('--grace'), 10_000)
    .option(
      '--tls-port <port>',
      'embedded default: TLS relay port',
      integer('--tls-port'),
      EMBEDDED_PORTS.tls,
    )
    .option(
      '--http-port <port>',
      'embedded default: HTTP relay port',
      integer('--http-port'),
      EMBEDDED_PORTS.http,
    )
    .option('--hub-port <port>', 'embedded default: hub port', integer('--hub-port'), EMBEDDED_PORTS.hub)
    .option(
      '--admin <addr>',
      'admin listener (/metrics, /healthz, /readyz, /status); a bare port binds 127.0.0.1, e.g. 9090',
    )
    .option(
      '--admin-token-file <file>',
      `bearer token /metrics and /status require (or ${ADMIN_TOKEN_ENV}, or admin.token in the config)`,
    )
    .action(async (opts, command: Command) => {
      await serve({
        ports: { tls: opts.tlsPort, http: opts.httpPort, hub: opts.hubPort },
        ignoredFlags: opts.config === undefined ? [] : flagsConfigOverrides(command),
        debug: debugRequested(process.argv) || program.opts().debug === true,
        config: opts.config,
        demo: opts.demo === true,
        stateDir: opts.stateDir,
        logLevel: opts.logLevel,
        logFormat: opts.logFormat,
        graceMs: opts.grace,
        admin: opts.admin,
        adminTokenFile: opts.adminTokenFile,
        print: out,
      });
    });

  program
    .command('token')
    .description(
      'mint a seed-era backend JWT (HS256: hostnames, the legacy hostname claim, iss "authorizer", aud ["nexus"]); ' +
        'Nexus nodes (auth.backendEra: auto) and seed-era reference nodes accept it without a challenge; ' +
        'current-era clients mint their own tokens per handshake stage',
    )
    .option('-c, --config <file>', 'take the secret from this node configuration')
    .option(
      '--secret <secret>',
      `the node's backendsJWTSecret (visible in ps: prefer --secret-file or ${SECRET_ENV})`,
    )
    .option('--secret-file <file>', 'read the secret from a file')
    .option('--hostname <name>', 'hostname or *.wildcard to serve (repeatable)', collect, [])
    .option('--weight <n>', 'weight in the round robin', integer('--weight'))
    .option('--ttl <seconds>', 'lifetime in seconds (sets exp); default: no expiry', integer('--ttl'))
    .action(async (opts) => {
      let secret: string | undefined = opts.secret;
      if (secret === undefined && opts.secretFile !== undefined)
        secret = readNamedFile(opts.secretFile, '--secret-file').trim();
      if (secret === undefined && process.env[SECRET_ENV]) secret = process.env[SECRET_ENV].trim();
      if (secret === undefined && opts.config !== undefined)
        secret = (await loadConfig(opts.config)).backendsJWTSecrets[0];
      if (secret === undefined)
        throw new InvalidArgumentError(`give --secret-file, ${SECRET_ENV}, -c <config> or --secret`);
      if (opts.hostname.length === 0) throw new InvalidArgumentError('give at least one --hostname');
      out(
        await mintBackendToken({
          secret,
          hostnames: opts.hostname,
          weight: opts.weight,
          ttlSeconds: opts.ttl,
        }),
      );
    });

  addInitCommand(program, out);

  program
    .command('status')
    .description("print a running node's backends, routes, peers and streams (from its admin listener)")
    .option('--admin <addr>', 'admin listener address', DEFAULT_ADMIN_ADDRESS)
    .option('--admin-token-file <file>', `file holding the admin bearer token (or ${ADMIN_TOKEN_ENV})`)
    .option('--json', 'print the raw JSON snapshot')
    .action(async (opts) => {
      const token = resolveAdminToken(opts.adminTokenFile !== undefined ? { file: opts.adminTokenFile } : {});
      const status = await fetchStatus(opts.admin, undefined, token);
      out(opts.json === true ? JSON.stringify(status, null, 2) : formatStatus(status));
    });

  program
    .command('check')
    .description(
      'check a configuration without starting a node: keys, certificate and key files, ports (exit 0 ok, 1 invalid configuration, 2 this machine cannot run it)',
    )
    .requiredOption('-c, --config <file>', 'the YAML configuration file to check')
    .action(async (opts) => {
      const report = await checkConfig(opts.config);
      for (const line of report.lines) out(line);
      process.exitCode = report.exitCode;
    });

  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'the shell').choices(COMPLETION_SHELLS))
    .action((shell: string) => {
      out(completionScript(program, shell).trimEnd());
    });

  program
    .command('config')
    .description('configuration tools')
    .command('schema')
    .description('print the JSON Schema of the node configuration (for editors and CI checks)')
    .option('--backend', "print the backend client's configuration schema instead")
    .action((opts) => {
      const schema = opts.backend === true ? backendClientConfigJsonSchema() : nexusConfigJsonSchema();
      out(JSON.stringify(schema, null, 2));
    });

  return program;
}

/** Flags of `serve` that only shape the embedded default, so a `-c` file makes them do nothing. */
const EMBEDDED_ONLY_FLAGS = ['tlsPort', 'httpPort', 'hubPort', 'stateDir'] as const;

/** The embedded-default flags given on the command line (`--tls-port`, …), which `-c` overrides. */
function flagsConfigOverrides(command: Command): string[] {
  return EMBEDDED_ONLY_FLAGS.filter((name) => command.getOptionValueSource(name) === 'cli').map(
    (name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
  );
}

/**
 * Runs the CLI with `argv` (as `process.argv`). An expected failure prints one line (the stack with
 * `--debug`) and sets exit code 1.
 */
export async function runCli(argv: string[] = process.argv): Promise<void> {
  try {
    await createProgram().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`${describeFailure('nexus-proxy', err, debugRequested(argv))}\n`);
    process.exitCode = 1;
  }
}
