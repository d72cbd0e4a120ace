/**
 * `nexus-proxy init --systemd`: a hardened systemd unit for a node. The node runs as an unprivileged
 * system user and gets only `CAP_NET_BIND_SERVICE` (to bind 80/443). `ProtectSystem=strict` leaves it one
 * writable directory, `/var/lib/<name>` (`StateDirectory=`): relative paths in the config resolve against
 * the config file's directory, so an ACME node must set `acmeCacheDir` to an absolute path in there.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { SYSTEMD_SANDBOX } from '@nexus-proxy/backend-client/cli-support';
import { CliError } from './errors.js';

/** Default configuration file the unit starts the node with. */
export const DEFAULT_SYSTEMD_CONFIG_FILE = '/etc/nexus-proxy/config.yaml';
/** Default system user (and group) the node runs as. */
export const DEFAULT_SYSTEMD_USER = 'nexus';
/** Default unit name, without `.service`; also the state directory's name under `/var/lib`. */
export const DEFAULT_SYSTEMD_UNIT_NAME = 'nexus-proxy';
/** Default stop timeout, seconds: the CLI's 10 s drain grace plus margin. */
export const DEFAULT_SYSTEMD_TIMEOUT_STOP_SECONDS = 30;
/** Default file `init --systemd` writes. */
export const DEFAULT_SYSTEMD_UNIT_FILE = `${DEFAULT_SYSTEMD_UNIT_NAME}.service`;

/** Options of {@link renderSystemdUnit}. */
export interface SystemdUnitOptions {
  /** Node configuration file (absolute). Default: `/etc/nexus-proxy/config.yaml`. */
  configFile?: string;
  /** System user and group to run as (create it first). Default: `nexus`. */
  user?: string;
  /** Unit name without `.service`; names the state directory too. Default: `nexus-proxy`. */
  name?: string;
  /** Time systemd waits after SIGTERM before SIGKILL, seconds. Default: `30`. */
  timeoutStopSeconds?: number;
}

/** Renders the unit file text. Throws `CliError` (`NEXUS_ERR_USAGE`) on a relative config path or an unusable user / name. */
export function renderSystemdUnit(options: SystemdUnitOptions = {}): string {
  const configFile = options.configFile ?? DEFAULT_SYSTEMD_CONFIG_FILE;
  const user = options.user ?? DEFAULT_SYSTEMD_USER;
  const name = options.name ?? DEFAULT_SYSTEMD_UNIT_NAME;
  const timeoutStop = options.timeoutStopSeconds ?? DEFAULT_SYSTEMD_TIMEOUT_STOP_SECONDS;
  if (!configFile.startsWith('/') || /[\s"'\\$%;]/.test(configFile)) {
    throw new CliError(
      'NEXUS_ERR_USAGE',
      `systemd: the config file must be an absolute path without spaces or quotes (got ${configFile})`,
    );
  }
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw new CliError('NEXUS_ERR_USAGE', `systemd: invalid user name ${JSON.stringify(user)}`);
  if (!/^[A-Za-z0-9_.@-]{1,200}$/.test(name) || name.startsWith('.')) {
    throw new CliError('NEXUS_ERR_USAGE', `systemd: invalid unit name ${JSON.stringify(name)}`);
  }
  if (!Number.isInteger(timeoutStop) || timeoutStop < 1) {
    throw new CliError('NEXUS_ERR_USAGE', 'systemd: timeoutStopSeconds must be a positive integer');
  }
  const configDir = configFile.slice(0, configFile.lastIndexOf('/')) || '/';
  return `# ${name}.service: a Nexus Proxy node (written by \`nexus-proxy init --systemd\`).
#
# Install (as root):
#   useradd --system --home-dir /var/lib/${name} --shell /usr/sbin/nologin ${user}
#   install -d -m 0750 -o root -g ${user} ${configDir}
#   nexus-proxy init -o ${configFile}
#   chgrp ${user} ${configFile} && chmod 0640 ${configFile}
#   With ACME (hubPublicHostname), set in the config: acmeCacheDir: /var/lib/${name}/acme
#   (the only writable directory: relative paths resolve against ${configDir}, which is read-only).
#   cp ${name}.service /etc/systemd/system/ && systemctl daemon-reload
#   systemctl enable --now ${name}
# Reload the configuration: systemctl reload ${name}   (SIGHUP)
# Logs:                     journalctl -u ${name} -f

[Unit]
Description=Nexus Proxy edge node
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=${user}
Group=${user}
ExecStart=/usr/bin/env nexus-proxy serve -c ${configFile}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains open streams (nexus-proxy serve --grace, 10 s by default) before the node exits.
KillSignal=SIGTERM
TimeoutStopSec=${timeoutStop}
Restart=on-failure
RestartSec=2
Environment=NODE_ENV=production
# The one writable directory: put acmeCacheDir here.
StateDirectory=${name}
StateDirectoryMode=0750
WorkingDirectory=/var/lib/${name}
LimitNOFILE=65536
UMask=0077

# Bind 80/443 without root, and nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE

# Sandbox (the same as the backend client's unit).
${SYSTEMD_SANDBOX}

[Install]
WantedBy=multi-user.target
`;
}

/** Writes the unit to `file`; refuses to overwrite unless `force`. */
export function writeSystemdUnit(file: string, force = false, options: SystemdUnitOptions = {}): void {
  if (existsSync(file) && !force)
    throw new CliError('NEXUS_ERR_FILE_EXISTS', `${file} already exists (use --force to overwrite)`);
  writeFileSync(file, renderSystemdUnit(options), { mode: 0o644 });
}
