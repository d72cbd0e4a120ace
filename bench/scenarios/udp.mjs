// UDP through one node on one flow (docs/edge.md "UDP relay"): an end user sends numbered 100-byte
// datagrams to the node's UDP relay port, a backend client relays them to the service's UDP echo, and
// the answers come back the same way. The sender keeps `window` datagrams unanswered at most (loopback
// sockets drop what overflows their buffers, so a blast would measure the kernel); a datagram unanswered
// after 1 s counts as lost. Figures: datagrams per second through the node (each round trip crosses it
// twice: once in, once out), and the same run directly against the echo. On a loaded machine an answer
// can come after the 1 s: it is then counted `late` (it arrived, but was already counted lost).
import dgram from 'node:dgram';
import { once } from 'node:events';
import { round } from '../lib/load.mjs';
import { startTopology } from '../lib/topology.mjs';

const SIZE = 100;
const LOSS_AFTER_MS = 1_000;

/** Windowed echo run of `count` datagrams to 127.0.0.1:`port`. */
async function echo(port, count, window) {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const payload = Buffer.alloc(SIZE, 0x42);
  const outstanding = new Map();
  let sent = 0;
  let echoed = 0;
  let lost = 0;
  let late = 0;
  let lastEcho = 0;
  const started = performance.now();
  await new Promise((resolve) => {
    const more = () => {
      while (outstanding.size < window && sent < count) {
        const seq = sent++;
        payload.writeUInt32BE(seq, 0);
        outstanding.set(seq, performance.now());
        socket.send(payload, port, '127.0.0.1');
      }
      if (echoed + lost === count) resolve();
    };
    socket.on('message', (msg) => {
      if (outstanding.delete(msg.readUInt32BE(0))) {
        echoed++;
        lastEcho = performance.now();
      } else {
        late++;
      }
      more();
    });
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const [seq, at] of outstanding) {
        if (now - at < LOSS_AFTER_MS) continue;
        outstanding.delete(seq);
        lost++;
      }
      more();
      if (echoed + lost === count) clearInterval(sweep);
    }, 100);
    more();
  });
  // Late answers still in flight get a moment to be counted.
  await new Promise((r) => setTimeout(r, 200));
  socket.close();
  return { sent, echoed, lost, late, seconds: (lastEcho - started) / 1000 };
}

export async function run({ quick }) {
  const count = quick ? 20_000 : 200_000;
  const topology = await startTopology({ udp: true });
  try {
    const rows = [];
    for (const window of [16, 64]) {
      for (const target of [topology.targets.direct, topology.targets.nexus]) {
        const r = await echo(target.udpPort, count, window);
        rows.push({
          path: target.name,
          window,
          datagrams: r.sent,
          echoed: r.echoed,
          lost: r.lost - r.late,
          late: r.late,
          'round trips/s': Math.round(r.echoed / r.seconds),
          'datagrams/s through the node':
            target.name === 'nexus' ? Math.round((2 * r.echoed) / r.seconds) : '',
        });
      }
    }
    const stats = await topology.processes.node.call('stats');
    const dropped = Object.entries(stats.udp?.dropped ?? {}).filter(([, n]) => n > 0);
    return {
      title: `UDP, one flow through one node (${SIZE}-byte datagrams, echoed)`,
      rows,
      notes: [
        `node: ${stats.udp?.datagramsIn ?? 0} datagrams in, ${stats.udp?.datagramsOut ?? 0} out, ` +
          `flows opened ${stats.udp?.flowsOpened ?? 0}, dropped ${dropped.length === 0 ? 'none' : JSON.stringify(Object.fromEntries(dropped))}`,
        `node CPU ${round((stats.cpuUs ?? 0) / 1e6)} s for the whole run`,
      ],
    };
  } finally {
    await topology.close();
  }
}
