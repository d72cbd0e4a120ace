#!/usr/bin/env node
// An exchange among bulk streams: one TLS connection through the node asks 1 KiB at a time and waits for
// the 1 KiB answer (the service echoes), first alone, then while N other streams download without end over
// the same backend session (the streams scenario's load generator): `node bench/exchange-probe.mjs [N]
// [seconds]` (defaults 1 000 and 4). Prints the round trips' p50 / p90 / p99 / max in each phase and the
// bulk MB/s meanwhile. Run it in a network namespace with tuned buffers as the streams scenario's
// `--netns-tcp-buffers` does (`unshare -n`, loopback up, `net.ipv4.tcp_rmem` / `tcp_wmem` maxima), and with
// `ulimit -n 20000`. `TREE=<checkout>` measures another built checkout with this driver.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The client side from this driver's tree, so that trees older than `echoConnection` are measured too.
import { echoConnection, MB, percentile, sequential } from './lib/load.mjs';

const TREE = resolve(process.env.TREE ?? join(fileURLToPath(import.meta.url), '../..'));
const { startTopology } = await import(join(TREE, 'bench/lib/topology.mjs'));
const { startStreamClients } = await import(join(TREE, 'bench/lib/stream-clients.mjs'));

const streams = Number(process.argv[2] ?? 1000);
const seconds = Number(process.argv[3] ?? 4);

const topo = await startTopology({ nexus: true });
const clients = await startStreamClients(2);
const target = topo.targets.nexus;
try {
  const conn = await echoConnection(target);
  /** Sequential exchanges for `ms`: their round trips in ms, sorted. */
  const exchanges = async (ms) =>
    (await sequential(conn, Number.POSITIVE_INFINITY, ms)).sort((a, b) => a - b);
  const show = (rtts) =>
    `${rtts.length} exchanges, p50 ${percentile(rtts, 50).toFixed(2)} / p90 ${percentile(rtts, 90).toFixed(2)} / p99 ${percentile(rtts, 99).toFixed(2)} / max ${rtts.at(-1).toFixed(1)} ms`;
  await exchanges(1000); // warm-up
  console.log(`alone: ${show(await exchanges(seconds * 1000))}`);
  await clients.open(target, streams);
  await clients.start();
  await new Promise((r) => setTimeout(r, 2000));
  const before = await clients.snapshot();
  const startedAt = performance.now();
  const busy = await exchanges(seconds * 1000);
  const after = await clients.snapshot();
  let bytes = 0;
  for (let i = 0; i < after.length; i++) bytes += after[i] - before[i];
  const mbps = bytes / MB / ((performance.now() - startedAt) / 1000);
  console.log(`among ${streams} bulk streams: ${show(busy)}; bulk ${mbps.toFixed(1)} MB/s`);
  conn.close();
  await clients.stop();
} finally {
  await clients.close();
  await topo.close();
}
