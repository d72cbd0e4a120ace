import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createSelfSignedCertificate } from '../src/certificates.js';
import { InvalidConfigError } from '../src/errors.js';
import { HubTlsContext } from '../src/hub-tls.js';
import { PeerMesh } from '../src/mesh.js';
import { RoutingTable } from '../src/routing-table.js';

async function mesh(overrides: Partial<ConstructorParameters<typeof PeerMesh>[0]> = {}) {
  const tls = new HubTlsContext(await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'] }));
  const routes = new RoutingTable<string>();
  return {
    routes,
    mesh: new PeerMesh({
      routes,
      tls,
      trustedDomainSuffixes: ['.mesh.example.com'],
      systemCa: false,
      ...overrides,
    }),
  };
}

describe('PeerMesh options', () => {
  it.each([
    ['not a url', 'must be a URL such as wss://peer.example.com:8444/mesh'],
    ['ws://peer.example.com:8444/mesh', 'must use wss:// (mutual TLS)'],
  ])('rejects peer %j with InvalidConfigError naming the field', async (url, detail) => {
    try {
      await mesh({ peers: ['wss://ok.example.com:8444/mesh', url] });
      expect.unreachable();
    } catch (err) {
      expect(InvalidConfigError.is(err)).toBe(true);
      expect(err).toMatchObject({ path: 'peers[1]', detail });
    }
  });

  it('rejects an empty suffix list and a jitter ≥ 1', async () => {
    await expect(mesh({ trustedDomainSuffixes: [] })).rejects.toThrow(InvalidConfigError);
    await expect(mesh({ reconnect: { jitter: 1 } })).rejects.toThrow(/reconnect.jitter/);
    await expect(mesh({ idleTimeoutMs: -1 })).rejects.toThrow(/idleTimeoutMs/);
  });
});

describe('PeerMesh.handleUpgrade', () => {
  const request = (url: string) => ({ url, headers: {} }) as unknown as IncomingMessage;

  it('leaves other paths to the caller', async () => {
    const { mesh: m } = await mesh();
    const socket = new PassThrough();
    expect(m.handleUpgrade(request('/connect'), socket, Buffer.alloc(0))).toBe(false);
    expect(socket.read()).toBeNull();
    await m.close();
  });

  it('refuses a connection without TLS with 403 before any WebSocket exists', async () => {
    const { mesh: m } = await mesh();
    const refused: string[] = [];
    m.on('peer-refused', (e) => refused.push(e.reason));
    const socket = new PassThrough();
    expect(m.handleUpgrade(request('/mesh?x=1'), socket, Buffer.alloc(0))).toBe(true);
    expect(String(socket.read())).toMatch(/^HTTP\/1.1 403 Forbidden\r\n/);
    expect(refused).toEqual(['not a TLS connection']);
    expect(m.linkCount).toBe(0);
    socket.destroy();
    await m.close();
  });
});

describe('PeerMesh announces', () => {
  it('bumps its version on every local pattern change of the routing table, not on a second backend', async () => {
    const { routes, mesh: m } = await mesh();
    expect(m.version).toBe(0);
    routes.addLocal('a.example.com', 'backend-1');
    expect(m.version).toBe(1);
    routes.addLocal('a.example.com', 'backend-2');
    expect(m.version).toBe(1);
    routes.addLocal('*.example.com', 'backend-1');
    routes.removeTarget('backend-1');
    expect(m.version).toBe(3);
    await m.close();
    routes.addLocal('b.example.com', 'backend-3');
    expect(m.version).toBe(3);
  });

  it('opens no tunnel for a local or unknown route, nor over a link that is gone', async () => {
    const { routes, mesh: m } = await mesh();
    routes.addLocal('a.example.com', 'backend-1');
    // The routing decision keeps local and unknown names away from the mesh.
    expect(routes.resolve('a.example.com').kind).toBe('local');
    expect(routes.resolve('nobody.example.com').kind).toBe('none');
    routes.setPeerRoutes('gone-link', ['p.example.com']);
    const route = routes.resolve('p.example.com');
    expect(route.kind).toBe('peer');
    if (route.kind !== 'peer') return;
    expect(m.openTunnel(route, { connPort: 443, clientIp: '', isTls: true })).toBeUndefined();
    await m.close();
  });
});
