/** UDP ports for tests that bind a node's UDP listener (STUN, the UDP relay) to a port named beforehand. */
import dgram from 'node:dgram';
import { once } from 'node:events';

/** A UDP port that was free a moment ago on `host`. */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  const probe = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  probe.bind(0, host);
  await once(probe, 'listening');
  const { port } = probe.address();
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}
