import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRelayListener, type RelayListener } from '../../src/relay-listener.js';
import { waitUntil } from '@nexus-proxy/test-harness';

const listeners: RelayListener[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

describe('relay listener with many connections sniffing at once', () => {
  it('emits no MaxListenersExceededWarning past 10 concurrent sniffs, and shutdown still closes them all', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const closes: string[] = [];
      const listener = createRelayListener({
        host: '127.0.0.1',
        port: 0,
        mode: 'tls',
        onRouted: () => 'no-route',
        onClose: (e) => closes.push(e.reason),
      });
      listeners.push(listener);
      const { port } = await listener.listen();
      // 30 clients that connect and send nothing: each one sits in the sniff phase.
      const clients = await Promise.all(
        Array.from({ length: 30 }, async () => {
          const s = connect(port, '127.0.0.1');
          s.on('error', () => {});
          sockets.push(s);
          await once(s, 'connect');
          return s;
        }),
      );
      await waitUntil(() => listener.sniffing === 30);
      // Warnings are emitted on the next tick: give them the chance to show up.
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);

      await listener.close();
      await Promise.all(clients.map((s) => (s.destroyed ? undefined : once(s, 'close'))));
      expect(listener.sniffing).toBe(0);
      expect(closes.filter((r) => r === 'shutdown')).toHaveLength(30);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
