/**
 * `nexus-backend --systemd-unit`: a hardened systemd unit that runs this command line's `--config` as an
 * unprivileged system user. A backend only dials out (to its hubs and its local services), so it gets no
 * capability at all; SIGHUP (`systemctl reload`) re-reads the configuration. The sandbox directives are
 * the ones the node's unit (`nexus-proxy init --systemd`) uses too.
 */
import { InvalidOptionsError } from './errors.js';

/**
 * The sandbox of both units (node and backend): a read-only system, no devices, kernel settings or new
 * privileges, only the system calls and address families a network service needs. `MemoryDenyWriteExecute`
 * stays off: V8's JIT needs writable executable memory.
 */
export const SYSTEMD_SANDBOX = `NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM`;

/** Default system user (and group) of the backend unit. */
export const DEFAULT_BACKEND_SYSTEMD_USER = 'nexus-backend';
/** Default unit name, without `.service`. */
export const DEFAULT_BACKEND_SYSTEMD_UNIT_NAME = 'nexus-backend';

/** Options of {@link renderBackendSystemdUnit}. */
export interface BackendSystemdUnitOptions {
  /** The backend client configuration file (absolute). */
  configFile: string;
  /** System user and group to run as. Default: `nexus-backend`. */
  user?: string;
  /** Unit name without `.service`. Default: `nexus-backend`. */
  name?: string;
}

/** The unit file's text. Throws `InvalidOptionsError` for a relative or unquotable path or a bad user/name. */
export function renderBackendSystemdUnit(options: BackendSystemdUnitOptions): string {
  const { configFile } = options;
  const user = options.user ?? DEFAULT_BACKEND_SYSTEMD_USER;
  const name = options.name ?? DEFAULT_BACKEND_SYSTEMD_UNIT_NAME;
  if (!configFile.startsWith('/') || /[\s"'\\$%;]/.test(configFile)) {
    throw new InvalidOptionsError(
      '--config',
      `must be an absolute path without spaces or quotes for a systemd unit (got ${configFile})`,
    );
  }
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw new InvalidOptionsError('user', `is not a valid user name: ${user}`);
  if (!/^[A-Za-z0-9_.@-]{1,200}$/.test(name) || name.startsWith('.')) {
    throw new InvalidOptionsError('name', `is not a valid unit name: ${name}`);
  }
  const configDir = configFile.slice(0, configFile.lastIndexOf('/')) || '/';
  return `# ${name}.service: a Nexus backend client (written by \`nexus-backend -c ${configFile} --systemd-unit\`).
#
# Install (as root):
#   useradd --system --no-create-home --shell /usr/sbin/nologin ${user}
#   install -d -m 0750 -o root -g ${user} ${configDir}
#   (put the configuration, its token file and CA file in ${configDir}, group ${user}, mode 0640)
#   nexus-backend -c ${configFile} --systemd-unit > /etc/systemd/system/${name}.service
#   systemctl daemon-reload && systemctl enable --now ${name}
# Reload the configuration: systemctl reload ${name}   (SIGHUP: new port mappings apply to new streams
#   without reconnecting; changed hub addresses, tokens or CA files reconnect that backend)
# Logs:                     journalctl -u ${name} -f

[Unit]
Description=Nexus backend client
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=${user}
Group=${user}
ExecStart=/usr/bin/env nexus-backend -c ${configFile}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM lets open streams finish (closeGraceMs) before the client exits.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=2
Environment=NODE_ENV=production
UMask=0077

# It only dials out: no capability at all.
CapabilityBoundingSet=
AmbientCapabilities=

# Sandbox.
${SYSTEMD_SANDBOX}

[Install]
WantedBy=multi-user.target
`;
}
