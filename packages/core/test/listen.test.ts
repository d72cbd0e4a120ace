import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NexusError } from '../src/errors.js';
import { listenFailureMessage, listenServer } from '../src/listen.js';
import { noopLogger } from '../src/logger.js';

describe('listenServer', () => {
  it('rejects a taken port with one line naming the listener, the address, the key and the fix', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const err = await listenServer(
        createServer(),
        port,
        '127.0.0.1',
        noopLogger,
        'hub',
        'backendListenAddress',
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(NexusError.is(err, 'NEXUS_ERR_LISTEN')).toBe(true);
      expect((err as Error).message).toBe(
        `hub cannot listen on 127.0.0.1:${port}: the port is already in use (EADDRINUSE): stop the other process (ss -ltnp 'sport = :${port}' shows it) or change backendListenAddress`,
      );
      expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});

describe('listenFailureMessage', () => {
  const fail = (code: string) => Object.assign(new Error(`listen ${code}`), { code });
  it.each([
    [
      fail('EACCES'),
      443,
      /permission denied \(EACCES\): ports below 1024 need root or CAP_NET_BIND_SERVICE .* or use a port of 1024 or more in relayPorts$/,
    ],
    [fail('EACCES'), 8443, /permission denied \(EACCES\): check relayPorts and the security policy/],
    [
      fail('EADDRNOTAVAIL'),
      8443,
      /the address is not one of this machine's \(EADDRNOTAVAIL\): change relayPorts$/,
    ],
    [fail('EMFILE'), 8443, /listen EMFILE \(check relayPorts\)$/],
  ])('%s on port %d', (cause, port, expected) => {
    expect(listenFailureMessage(cause, 'TLS relay listener', { host: '::1', port }, 'relayPorts')).toMatch(
      new RegExp(
        `^TLS relay listener cannot listen on \\[::1\\]:${port}: ${expected.source.replace(/^\//, '')}`,
      ),
    );
  });
});
