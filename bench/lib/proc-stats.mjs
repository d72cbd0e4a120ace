// Figures of processes and of the kernel read from /proc (Linux): CPU time (user + system of all threads),
// read and write system calls, TCP socket memory. The same figures for the proxy's children, the service
// and the load-generator workers, taken from outside without asking them. Elsewhere (no /proc) every
// reading is NaN.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of the stat fields (`getconf CLK_TCK`, 100 on Linux). */
const TICKS_PER_SECOND = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number.parseInt(out.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU seconds (user + system) used by `pid` so far, or NaN when it cannot be read. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds of each pid in `pids` (an object name → pid or pid[]), summed per name. */
export function cpuOf(pids) {
  const out = {};
  for (const [name, pid] of Object.entries(pids)) {
    out[name] = Array.isArray(pid) ? pid.reduce((s, p) => s + cpuSeconds(p), 0) : cpuSeconds(pid);
  }
  return out;
}

/**
 * Kernel memory held by TCP sockets machine-wide, in MiB (`mem` of /proc/net/sockstat, pages), and the
 * threshold where the kernel starts to squeeze socket buffers (`tcp_mem` pressure), or NaN. In a network
 * namespace other than the host's, tcp_mem (global) is not in /proc/sys: the runner that created the
 * namespace passes it in NEXUS_BENCH_TCP_MEM (bench/lib/netns.mjs).
 */
export function tcpMemory() {
  const read = (file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  const pages = Number(/^TCP:.* mem (\d+)/m.exec(read('/proc/net/sockstat') ?? '')?.[1] ?? Number.NaN);
  const tcpMem = read('/proc/sys/net/ipv4/tcp_mem') ?? process.env.NEXUS_BENCH_TCP_MEM ?? '';
  const pressure = Number(tcpMem.trim().split(/\s+/)[1] ?? Number.NaN);
  return { mib: (pages * 4096) / 2 ** 20, pressureMib: (pressure * 4096) / 2 ** 20 };
}

/**
 * Machine-wide TCP counters of the kernel (/proc/net/netstat, /proc/net/snmp): time under memory
 * pressure (ms), retransmission timeouts, retransmitted segments, packets dropped from receive queues.
 * Differences over a window show whether the kernel, not the processes, held the streams back.
 */
export function tcpCounters() {
  const values = {};
  try {
    for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
      const lines = readFileSync(file, 'utf8').split('\n');
      for (let i = 0; i + 1 < lines.length; i += 2) {
        const keys = lines[i].split(' ');
        const numbers = lines[i + 1].split(' ');
        for (let k = 1; k < keys.length; k++) values[keys[0] + keys[k]] = Number(numbers[k]);
      }
    }
  } catch {
    // No /proc: every counter NaN.
  }
  const read = (key) => values[key] ?? Number.NaN;
  // Packets dropped because a CPU's input backlog was full (`netdev_max_backlog`): on loopback every
  // segment passes through it, and a burst of segments from many sockets at once overflows it.
  let backlogDrops = Number.NaN;
  try {
    backlogDrops = 0;
    for (const line of readFileSync('/proc/net/softnet_stat', 'utf8').trim().split('\n')) {
      backlogDrops += Number.parseInt(line.split(' ')[1], 16);
    }
  } catch {
    backlogDrops = Number.NaN;
  }
  return {
    backlogDrops,
    pressureMs: read('TcpExt:TCPMemoryPressuresChrono'),
    timeouts: read('TcpExt:TCPTimeouts'),
    retransmits: read('Tcp:RetransSegs'),
    receiveQueueDrops: read('TcpExt:TCPRcvQDrop'),
    // Receive windows closed (advertised as zero) by a reader that does not keep up.
    zeroWindows: read('TcpExt:TCPToZeroWindowAdv'),
  };
}

/**
 * What waits in the kernel between a local server on 127.0.0.1:`port` and its clients (`ss -tnm`), in
 * MiB: `send`, queued in the server's sockets (`wmem_queued`: written, not yet taken by the other end),
 * and `receive`, in its clients' sockets (`rmem_alloc`: received, not yet read); `sockets`, the server's
 * established sockets. NaN without `ss`.
 */
export function socketQueues(port) {
  const sum = (filter, field) => {
    const out = spawnSync('ss', ['-tnmH', 'state', 'established', filter], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (out.status !== 0) return { bytes: Number.NaN, count: Number.NaN };
    let bytes = 0;
    let count = 0;
    for (const m of out.stdout.matchAll(/skmem:\(([^)]*)\)/g)) {
      const value = new RegExp(`(?:^|,)${field}(\\d+)`).exec(m[1]);
      bytes += Number(value?.[1] ?? 0);
      count++;
    }
    return { bytes, count };
  };
  const send = sum(`( sport = :${port} )`, 'w');
  const receive = sum(`( dport = :${port} )`, 'r');
  return { send: send.bytes / 2 ** 20, receive: receive.bytes / 2 ** 20, sockets: send.count };
}

/** The soft limit on open files of this process (and of the children it starts), or NaN. */
export function openFileLimit() {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' });
  const text = (out.stdout ?? '').trim();
  return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number.parseInt(text, 10);
}

/** Read and write system calls made by `pid` so far (`syscr`, `syscw` of /proc/<pid>/io), or NaN. */
export function syscalls(pid) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return { reads: Number.NaN, writes: Number.NaN };
  }
}
