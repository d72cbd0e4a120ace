// `--netns-tcp-buffers <max>`: run the benchmark in a fresh network namespace whose TCP socket buffers are
// capped at <max> (the third field of net.ipv4.tcp_rmem and tcp_wmem), the setting an operator applies on
// a host that relays many concurrent bulk streams (docs/operations.md, "Tuning a host for many concurrent
// streams"). tcp_rmem / tcp_wmem are per network namespace, so the host's own values are never touched;
// tcp_mem (the machine-wide pressure threshold) is global and is only read. `keep` runs in a fresh
// namespace with the values it inherits from the host's, the baseline to compare with. Root only.
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';

/** Set in the re-executed runner, inside the new namespace: the maximum to apply, or `keep`. */
export const NETNS_ENV = 'NEXUS_BENCH_NETNS_TCP_BUFFERS';
/** Set with it: the namespace the runner was started in, which the re-executed runner must not be in. */
const PARENT_ENV = 'NEXUS_BENCH_NETNS_PARENT';
const ownNamespace = () => readlinkSync('/proc/self/ns/net');
/** tcp_mem is global and shown only in the host's namespace: passed on for the output (proc-stats.mjs). */
const TCP_MEM_ENV = 'NEXUS_BENCH_TCP_MEM';
const tcpMem = () => {
  try {
    return process.env[TCP_MEM_ENV] ?? readFileSync('/proc/sys/net/ipv4/tcp_mem', 'utf8').trim();
  } catch {
    return '';
  }
};
const RMEM = '/proc/sys/net/ipv4/tcp_rmem';
const WMEM = '/proc/sys/net/ipv4/tcp_wmem';

const fields = (file) => readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);

/** The three fields with the maximum replaced (the default lowered to it if above). */
function capped([min, def, max], cap) {
  const top = cap === 'keep' ? max : cap;
  return [Math.min(min, top), Math.min(def, top), top];
}

/** The TCP buffer settings in force in this process's namespace, for the output. */
export function tcpBufferSettings() {
  const read = (file) => {
    try {
      return fields(file).join(' ');
    } catch {
      return undefined;
    }
  };
  return {
    tcp_rmem: read(RMEM),
    tcp_wmem: read(WMEM),
    tcp_mem: read('/proc/sys/net/ipv4/tcp_mem') ?? process.env[TCP_MEM_ENV]?.split(/\s+/).join(' '),
    tcp_moderate_rcvbuf: read('/proc/sys/net/ipv4/tcp_moderate_rcvbuf'),
  };
}

/**
 * Outside: re-execute this runner in a fresh network namespace (`unshare -n`, loopback up) and return its
 * exit code. Returns a message instead when that cannot be done here.
 * @param {number | 'keep'} cap @param {string[]} argv the runner's arguments without the flag
 */
export function reexecInNamespace(cap, script, argv) {
  if (process.platform !== 'linux') return { error: '--netns-tcp-buffers needs Linux network namespaces' };
  if (process.getuid?.() !== 0) {
    return {
      error:
        '--netns-tcp-buffers needs root (it creates a network namespace and sets tcp_rmem / tcp_wmem in it; ' +
        "the host's own settings are not changed): run it as root, or without the flag",
    };
  }
  const inner = 'ip link set lo up && exec "$0" "$@"';
  const r = spawnSync(
    'unshare',
    ['-n', 'sh', '-c', inner, process.execPath, ...process.execArgv, script, ...argv],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        [NETNS_ENV]: String(cap),
        [PARENT_ENV]: ownNamespace(),
        [TCP_MEM_ENV]: tcpMem(),
      },
    },
  );
  if (r.error !== undefined) return { error: `--netns-tcp-buffers: cannot run unshare (${r.error.message})` };
  return { status: r.status ?? 1 };
}

/**
 * Inside: apply the cap to this namespace's tcp_rmem / tcp_wmem. Refuses unless this is not the namespace
 * the runner was started in (so the sysctls of the namespace it was started in are never written).
 * @param {string} value the environment variable's value
 */
export function applyInNamespace(value) {
  const parent = process.env[PARENT_ENV];
  if (parent === undefined || parent === ownNamespace()) {
    throw new Error(
      `${NETNS_ENV} is set outside a namespace of its own: refusing to change this one's sysctls`,
    );
  }
  const cap = value === 'keep' ? 'keep' : Number(value);
  if (cap !== 'keep' && !(Number.isInteger(cap) && cap >= 4096))
    throw new Error(`bad ${NETNS_ENV}: ${value}`);
  writeFileSync(RMEM, capped(fields(RMEM), cap).join(' '));
  writeFileSync(WMEM, capped(fields(WMEM), cap).join(' '));
}
