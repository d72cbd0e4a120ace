/**
 * Review finding: a routed socket handed to an asynchronous `onRouted` has no `'error'` listener while
 * the callee awaits, so an end user's reset in that window crashes the process.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRelayListener, type RelayListener } from '../../src/relay-listener.js';

vi.setConfig({ testTimeout: 8_000 });

const open: RelayListener[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

describe('relay listener with an asynchronous onRouted', () => {
  it('survives an end-user reset while onRouted is still deciding', async () => {
    let release!: () => void;
    const decided = new Promise<void>((r) => {
      release = r;
    });
    let routedSocket: Socket | undefined;
    const routed = new Promise<void>((resolveRouted) => {
      const listener = createRelayListener({
        host: '127.0.0.1',
        port: 0,
        mode: 'http',
        async onRouted(socket) {
          routedSocket = socket;
          resolveRouted();
          await decided;
          return 'no-route';
        },
      });
      open.push(listener);
    });
    const { port } = await open[0]!.listen();
    const client = connect({ host: '127.0.0.1', port });
    client.on('error', () => {});
    await once(client, 'connect');
    client.write('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await routed;
    // The end user resets the connection while the owner is still deciding.
    const closed = new Promise<void>((r) => routedSocket!.once('close', () => r()));
    client.resetAndDestroy();
    await closed;
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(routedSocket!.destroyed).toBe(true);
  });
});
