// Ports to bind later, for tests and benchmarks that must name a port before its server starts (a mesh
// whose nodes list each other). A port the kernel hands out for `listen(0)` is in its ephemeral range,
// where any outbound socket on the machine may take it before the server binds it (EADDRINUSE); these
// come from below that range, which the kernel never hands out by itself.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Lowest port of the kernel's ephemeral range (Linux), or 32768. */
function ephemeralLow() {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` can be bound on 127.0.0.1 now. */
function bindable(port) {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/** `count` distinct ports free on 127.0.0.1 now, below the ephemeral range, from a random start. */
export async function portsToBind(count) {
  const low = ephemeralLow();
  const span = low - 10_000;
  const ports = [];
  let port = 10_000 + Math.floor(Math.random() * span);
  for (let tried = 0; ports.length < count && tried < span; tried++) {
    if (await bindable(port)) ports.push(port);
    port = port + 1 >= low ? 10_000 : port + 1;
  }
  if (ports.length < count) throw new Error(`only ${ports.length} of ${count} free ports below ${low}`);
  return ports;
}
