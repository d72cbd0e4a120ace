/**
 * `nexus-proxy init`: the installer. Creates the configuration and state directories, writes the
 * configuration (generated secret, the hub's public hostname, the ACME cache in the state directory),
 * checks that the hostname's A/AAAA records point at this machine, and with `--systemd` creates the
 * system user, installs the unit and (`--enable`) starts it. Every flag can come from the environment
 * (`NEXUS_HOST`, `NEXUS_EMAIL`, `NEXUS_DIR`, `NEXUS_STATE_DIR`, `NEXUS_USER`, `NEXUS_ROOT`, `NEXUS_SKIP_DNS`,
 * `NEXUS_SYSTEMD`, `NEXUS_ENABLE`); a flag wins over its variable.
 *
 * `--root` writes every path under a prefix (image builds, tests). `systemctl` and `useradd` are looked up
 * on `PATH`: that lookup is the one seam the tests use (a recording fake `systemctl` first on `PATH`).
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { Resolver } from 'node:dns/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { normalizeHostname } from '@nexus-proxy/sni';
import type { Command } from 'commander';
import { CliError } from './errors.js';
import { DEFAULT_CONFIG_DIR, DEFAULT_NODE_STATE_DIR, writeConfigTemplate } from './init.js';
import {
  DEFAULT_SYSTEMD_UNIT_FILE,
  DEFAULT_SYSTEMD_UNIT_NAME,
  DEFAULT_SYSTEMD_USER,
  writeSystemdUnit,
} from './systemd.js';

/** Time one DNS query may take, ms. */
export const DNS_TIMEOUT_MS = 3_000;

/** Options of {@link runInit}, after flags and environment are merged ({@link resolveInitOptions}). */
export interface InitOptions {
  /** The hub's public DNS name (`--hostname`, `NEXUS_HOST`). */
  hostname: string;
  /** ACME account contact (`--email`, `NEXUS_EMAIL`). */
  email?: string;
  /** Configuration directory as the node sees it. Default: `/etc/nexus-proxy`. */
  dir: string;
  /** State directory as the node sees it. Default: `/var/lib/nexus-proxy`. */
  stateDir: string;
  /** Prefix every written path goes under. Default: `/`. */
  root: string;
  /** Write the configuration here instead of `<root><dir>/config.yaml`. */
  output?: string;
  /** Skip the A/AAAA check. */
  skipDns: boolean;
  /** DNS server to ask (`host` or `host:port`) instead of the system's. */
  resolver?: string;
  /** Create the system user and install the unit. */
  systemd: boolean;
  /** With `systemd`: `systemctl daemon-reload` and `systemctl enable --now`. */
  enable: boolean;
  /** System user the unit runs as. Default: `nexus`. */
  user: string;
  /** Overwrite existing files. */
  force: boolean;
  /** `PATH` and the rest of the environment the system commands run with. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Progress lines. Default: stdout. */
  print?: (line: string) => void;
}

/** What {@link runInit} did. */
export interface InitResult {
  configFile: string;
  stateDir: string;
  /** The addresses the hostname resolved to (empty when the check was skipped). */
  dnsAddresses: string[];
  unitFile?: string;
}

/** Names that are documentation placeholders or can never get a public certificate. */
const PLACEHOLDER = /(^|\.)(example\.(com|net|org)|example|invalid|localhost)$/;

/**
 * The normalized hostname, or `CliError` (`NEXUS_ERR_USAGE`) for an invalid name, an IP address, a
 * wildcard, or a placeholder (`example.com`, `.example`, `.invalid`, `localhost`).
 */
export function checkInitHostname(input: string): string {
  const name = normalizeHostname(input);
  if (
    name === undefined ||
    name.startsWith('[') ||
    /^\d+\.\d+\.\d+\.\d+$/.test(name) ||
    !name.includes('.')
  ) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `--hostname: ${JSON.stringify(input)} is not a public DNS name (give the name backends dial, e.g. nexus1.your-domain.net)`,
    );
  }
  if (PLACEHOLDER.test(name)) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `--hostname: ${name} is a placeholder; give this node's real public DNS name (NEXUS_HOST)`,
    );
  }
  return name;
}

/** Addresses of this machine's interfaces. */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/**
 * Checks that `hostname` has A/AAAA records and that one of them is an address of this machine. Resolves
 * with the addresses; throws `CliError` (`NEXUS_ERR_DNS`) naming what it found and how to skip the check.
 */
export async function checkHostnameDns(hostname: string, resolverAddress?: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
  if (resolverAddress !== undefined) resolver.setServers([resolverAddress]);
  const answers = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
  const found = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
  const skip = 'skip the check with --skip-dns (NEXUS_SKIP_DNS=1)';
  if (found.length === 0) {
    const codes = answers.map((a) =>
      a.status === 'rejected' ? (a.reason as { code?: string }).code : 'none',
    );
    const missing = codes.every((c) => c === 'ENODATA' || c === 'ENOTFOUND' || c === 'none');
    throw new CliError(
      'NEXUS_ERR_DNS',
      missing
        ? `${hostname} has no A or AAAA record: point one at this machine, or ${skip}`
        : `cannot resolve ${hostname} (${codes.join(', ')}): check the DNS servers, or ${skip}`,
    );
  }
  const local = localAddresses();
  if (!found.some((a) => local.has(a))) {
    throw new CliError(
      'NEXUS_ERR_DNS',
      `${hostname} resolves to ${found.join(', ')}, not to an address of this machine ` +
        `(${[...local].join(', ')}): fix its A/AAAA record, or behind NAT or a cloud 1:1 address ${skip}`,
    );
  }
  return found;
}

/** A `NEXUS_*` yes/no variable: unset or empty = `undefined`. */
function envFlag(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const value = env[name]?.trim().toLowerCase();
  if (value === undefined || value === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new CliError('NEXUS_ERR_USAGE', `${name} must be 1 or 0 (got ${JSON.stringify(env[name])})`);
}

/** The flags of `nexus-proxy init` as commander parses them. */
export interface InitFlags {
  hostname?: string;
  email?: string;
  dir?: string;
  stateDir?: string;
  root?: string;
  output?: string;
  skipDns?: boolean;
  resolver?: string;
  systemd?: boolean;
  enable?: boolean;
  user?: string;
  force?: boolean;
}

/** Merges flags over the environment's `NEXUS_*` variables and the defaults; validates paths. */
export function resolveInitOptions(
  flags: InitFlags,
  env: NodeJS.ProcessEnv = process.env,
): Omit<InitOptions, 'hostname'> & { hostname: string | undefined } {
  const pick = (flag: string | undefined, name: string): string | undefined => {
    const fromEnv = env[name]?.trim();
    return flag ?? (fromEnv === '' ? undefined : fromEnv);
  };
  // Read (and so checked) even when a flag wins.
  const skipDns = envFlag(env, 'NEXUS_SKIP_DNS');
  const systemd = envFlag(env, 'NEXUS_SYSTEMD');
  const enable = envFlag(env, 'NEXUS_ENABLE');
  const options = {
    hostname: pick(flags.hostname, 'NEXUS_HOST'),
    email: pick(flags.email, 'NEXUS_EMAIL'),
    dir: pick(flags.dir, 'NEXUS_DIR') ?? DEFAULT_CONFIG_DIR,
    stateDir: pick(flags.stateDir, 'NEXUS_STATE_DIR') ?? DEFAULT_NODE_STATE_DIR,
    root: pick(flags.root, 'NEXUS_ROOT') ?? '/',
    output: flags.output,
    skipDns: flags.skipDns ?? skipDns ?? false,
    resolver: flags.resolver,
    systemd: flags.systemd ?? systemd ?? false,
    enable: flags.enable ?? enable ?? false,
    user: pick(flags.user, 'NEXUS_USER') ?? DEFAULT_SYSTEMD_USER,
    force: flags.force ?? false,
    env,
  };
  for (const [flag, path] of [
    ['--dir', options.dir],
    ['--state-dir', options.stateDir],
    ['--root', options.root],
  ] as const) {
    if (!isAbsolute(path) || /[\s"'\\$%;]/.test(path)) {
      throw new CliError(
        'NEXUS_ERR_USAGE',
        `${flag} must be an absolute path without spaces or quotes (got ${path})`,
      );
    }
  }
  if (options.enable && !options.systemd) throw new CliError('NEXUS_ERR_USAGE', '--enable needs --systemd');
  if (options.systemd && options.stateDir !== `/var/lib/${DEFAULT_SYSTEMD_UNIT_NAME}`) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `--state-dir: the systemd unit may write only /var/lib/${DEFAULT_SYSTEMD_UNIT_NAME} (its StateDirectory); drop --state-dir`,
    );
  }
  if (options.email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(options.email)) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `--email: ${JSON.stringify(options.email)} is not an e-mail address`,
    );
  }
  if (options.email !== undefined && PLACEHOLDER.test(options.email.split('@')[1]!.toLowerCase())) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `--email: ${options.email} is a placeholder; give a real contact (NEXUS_EMAIL)`,
    );
  }
  return options;
}

/** Runs `command` from `PATH`; `CliError` (`NEXUS_ERR_COMMAND`) with its stderr when it fails. */
function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else {
        const detail = stderr.trim().split('\n')[0] || err.message;
        reject(
          new CliError('NEXUS_ERR_COMMAND', `${command} ${args.join(' ')} failed: ${detail}`, { cause: err }),
        );
      }
    });
  });
}

/** uid and gid of `user` from `<root>/etc/passwd`, if it is there. */
function lookupUser(root: string, user: string): { uid: number; gid: number } | undefined {
  const file = join(root, 'etc/passwd');
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid !== undefined && gid !== undefined)
      return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Creates a directory (and its parents) and sets its mode, also when it existed. */
function makeDir(path: string, mode: number): void {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
}

/** Installs a node as described in the module comment. */
export async function runInit(options: InitOptions): Promise<InitResult> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const env = options.env ?? process.env;
  const hostname = checkInitHostname(options.hostname);
  const at = (path: string) => join(options.root, path);
  const configFile = options.output ?? at(join(options.dir, 'config.yaml'));
  // Before anything is written: an existing configuration holds the secret every backend token uses.
  if (existsSync(configFile) && !options.force) {
    throw new CliError('NEXUS_ERR_FILE_EXISTS', `${configFile} already exists (use --force to overwrite)`);
  }
  let dnsAddresses: string[] = [];
  if (options.skipDns) print(`DNS check of ${hostname} skipped`);
  else {
    dnsAddresses = await checkHostnameDns(hostname, options.resolver);
    print(`DNS: ${hostname} → ${dnsAddresses.join(', ')} (this machine)`);
  }

  let owner: { uid: number; gid: number } | undefined;
  if (options.systemd) {
    owner = lookupUser(options.root, options.user);
    if (owner === undefined) {
      const rootArgs = options.root === '/' ? [] : ['--root', options.root];
      await runCommand(
        'useradd',
        [
          ...rootArgs,
          '--system',
          '--user-group',
          '--home-dir',
          options.stateDir,
          '--shell',
          '/usr/sbin/nologin',
          options.user,
        ],
        env,
      );
      owner = lookupUser(options.root, options.user);
      print(
        owner !== undefined
          ? `created the system user ${options.user}`
          : `warning: ${options.user} is not in ${join(options.root, 'etc/passwd')} after useradd: give it read access to the config yourself`,
      );
    }
  }
  // chown needs root; without it the files stay the installing user's.
  const chown = (path: string, uid: number, gid: number) => {
    if (owner !== undefined && process.getuid?.() === 0) chownSync(path, uid, gid);
  };

  const configDir = dirname(configFile);
  makeDir(configDir, 0o750);
  const stateDir = at(options.stateDir);
  const acmeDir = join(stateDir, 'acme');
  makeDir(stateDir, 0o750);
  makeDir(acmeDir, 0o700);
  writeConfigTemplate(
    configFile,
    { hostname, email: options.email, acmeCacheDir: join(options.stateDir, 'acme') },
    true,
  );
  chmodSync(configFile, owner !== undefined ? 0o640 : 0o600);
  if (owner !== undefined) {
    chown(configDir, 0, owner.gid);
    chown(configFile, 0, owner.gid);
    chown(stateDir, owner.uid, owner.gid);
    chown(acmeDir, owner.uid, owner.gid);
  }
  print(`wrote ${configFile} (a new backend secret; ACME for ${hostname}, cache in ${acmeDir})`);

  let unitFile: string | undefined;
  if (options.systemd) {
    unitFile = at(join('etc/systemd/system', DEFAULT_SYSTEMD_UNIT_FILE));
    mkdirSync(dirname(unitFile), { recursive: true, mode: 0o755 });
    writeSystemdUnit(unitFile, options.force, {
      configFile: options.output === undefined ? join(options.dir, 'config.yaml') : configFile,
      user: options.user,
    });
    print(`wrote ${unitFile}`);
    if (options.enable) {
      await runCommand('systemctl', ['daemon-reload'], env);
      await runCommand('systemctl', ['enable', '--now', DEFAULT_SYSTEMD_UNIT_FILE], env);
      print(`started ${DEFAULT_SYSTEMD_UNIT_NAME} (journalctl -u ${DEFAULT_SYSTEMD_UNIT_NAME} -f)`);
    } else {
      print(`start it with: systemctl daemon-reload && systemctl enable --now ${DEFAULT_SYSTEMD_UNIT_NAME}`);
    }
  }
  print(
    `mint a backend token: nexus-proxy token -c ${options.output ?? join(options.dir, 'config.yaml')} --hostname app.your-domain`,
  );
  return { configFile, stateDir, dnsAddresses, unitFile };
}

/** Adds `init` to `program`. */
export function addInitCommand(program: Command, out: (line: string) => void): void {
  program
    .command('init')
    .description('install a node: directories, config.yaml with a generated secret, DNS check, systemd unit')
    .option('--hostname <name>', "the hub's public DNS name, certified by ACME (NEXUS_HOST)")
    .option('--email <address>', 'ACME account contact (NEXUS_EMAIL)')
    .option('--dir <dir>', `configuration directory (NEXUS_DIR; default ${DEFAULT_CONFIG_DIR})`)
    .option(
      '--state-dir <dir>',
      `state directory, ACME cache (NEXUS_STATE_DIR; default ${DEFAULT_NODE_STATE_DIR})`,
    )
    .option('-o, --output <file>', 'write the configuration here instead of <dir>/config.yaml')
    .option('--skip-dns', "don't check that the hostname's A/AAAA records point here (NEXUS_SKIP_DNS=1)")
    .option('--resolver <server>', "DNS server to ask (e.g. the zone's authoritative one), host or host:port")
    .option('--systemd', 'create the system user and install the systemd unit (NEXUS_SYSTEMD=1)')
    .option('--enable', 'with --systemd: systemctl enable --now the unit (NEXUS_ENABLE=1)')
    .option('--user <name>', `system user of the unit (NEXUS_USER; default ${DEFAULT_SYSTEMD_USER})`)
    .option('--root <dir>', 'write every path under this prefix (image builds; NEXUS_ROOT)')
    .option('--force', 'overwrite existing files (a new secret: existing backend tokens stop working)')
    .action(async (flags: InitFlags) => {
      const options = resolveInitOptions(flags);
      if (options.hostname === undefined) {
        // Without a hostname, --systemd alone writes only the unit (installs by hand or by config management).
        if (options.systemd && !options.enable) {
          const file = flags.output ?? DEFAULT_SYSTEMD_UNIT_FILE;
          writeSystemdUnit(file, options.force, {
            user: options.user,
            configFile: join(options.dir, 'config.yaml'),
          });
          out(`wrote ${file}`);
          return;
        }
        throw new CliError(
          'NEXUS_ERR_USAGE',
          "init needs this node's public DNS name: --hostname nexus1.your-domain (or NEXUS_HOST)",
        );
      }
      await runInit({ ...options, hostname: options.hostname, print: out });
    });
}
