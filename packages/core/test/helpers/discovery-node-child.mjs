// A node in its own process, for the discovery tests that kill a node without a goodbye
// (test/integration/mesh-discovery-nats.test.ts). `node discovery-node-child.mjs '<config JSON>'` starts
// `createNexus(config)` from the built package, prints one JSON line with its bound ports, and runs until
// it is killed.
import { createNexus } from '@nexus-proxy/core';

const config = JSON.parse(process.argv[2] ?? '{}');
const nexus = createNexus(config, { mesh: { systemCa: false } });
const addresses = await nexus.listen();
const listener = (mode) => addresses.listeners.find((l) => l.mode === mode)?.address.port ?? -1;
process.stdout.write(
  `${JSON.stringify({ hub: addresses.hub.port, peer: addresses.peer?.port, http: listener('http') })}\n`,
);
