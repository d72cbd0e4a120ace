/**
 * Attack 5: peers trusted without bounds. An accepted peer could announce any number of hostnames in
 * messages up to 4 MiB, capturing every name not served locally, and its tunnel requests carried
 * `client_ip` and `conn_port` unchecked to backends (PROXY headers, port mappings). Here a hostile peer with
 * a valid certificate links to a whole node and tries each.
 */
import { once } from 'node:events';
import { decodeTunnelFrame, encodePeerMessage } from '@nexus-proxy/mux-protocol';
import { createTestPki, startNode, type TestNode, type TestPki } from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { PeerMeshOptions } from '../../src/mesh-options.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function meshNode(mesh: Partial<PeerMeshOptions> = {}): Promise<TestNode> {
  const n = await startNode({ pki, name: 'b', mesh });
  cleanups.push(() => n.close());
  return n;
}

/** A hostile peer, `evil.mesh.example.com` (a certificate the node trusts), linked to `n`. */
async function hostilePeer(n: TestNode) {
  const cert = await pki.nodeCert('evil');
  const ws = new WebSocket(n.meshUrl, { cert: cert.certPem, key: cert.keyPem, ca: pki.ca.certPem });
  ws.on('error', () => {});
  cleanups.push(() => {
    ws.terminate();
  });
  const frames: ReturnType<typeof decodeTunnelFrame>[] = [];
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) frames.push(decodeTunnelFrame(data));
  });
  await once(ws, 'open');
  return { ws, frames };
}

/** Resolves with the next `routes-changed` of `n`'s mesh. */
function nextRoutes(n: TestNode): Promise<readonly string[]> {
  return new Promise((resolve) => n.mesh.once('routes-changed', (e) => resolve(e.hostnames)));
}

describe('attack: a peer announces without bounds', () => {
  it('keeps at most 10 000 routes of an announce (the first ones), by default', async () => {
    const n = await meshNode();
    const { ws } = await hostilePeer(n);
    const names = Array.from({ length: 20_000 }, (_, i) => `n${i}.victim.example`);
    const changed = nextRoutes(n);
    ws.send(encodePeerMessage({ type: 'announce', version: 1, hostnames: names }));
    expect((await changed).length).toBe(10_000);
    expect(n.routes.resolve('n9999.victim.example').kind).toBe('peer');
    expect(n.routes.resolve('n10000.victim.example').kind).not.toBe('peer');
  });

  it('closes a link whose message is over 1 MiB (1009), by default', async () => {
    const n = await meshNode();
    const { ws } = await hostilePeer(n);
    ws.send(
      encodePeerMessage({ type: 'announce', version: 1, hostnames: ['x'.repeat(60).concat('.example')] }),
    );
    const closed = once(ws, 'close');
    ws.send('x'.repeat(1024 * 1024 + 1));
    const [code] = (await closed) as [number];
    expect(code).toBe(1009);
  });

  it('keeps only the names of its allow-list from a peer that has one', async () => {
    const n = await meshNode({
      peerAllowedRoutes: { 'evil.mesh.example.com': ['.evil.example', 'shop.example.org'] },
    });
    const { ws } = await hostilePeer(n);
    const changed = nextRoutes(n);
    ws.send(
      encodePeerMessage({
        type: 'announce',
        version: 1,
        hostnames: [
          'bank.example.com',
          '*.example.org',
          'shop.example.org',
          'a.evil.example',
          '*.evil.example',
        ],
      }),
    );
    expect([...(await changed)].sort()).toEqual(['*.evil.example', 'a.evil.example', 'shop.example.org']);
    expect(n.routes.resolve('bank.example.com').kind).not.toBe('peer');
  });
});

describe('attack: a peer forges tunnel fields', () => {
  it('refuses a tunnel whose client_ip is not an ip:port or whose conn_port is not a relay port', async () => {
    const n = await meshNode({ tunnelPorts: [443] });
    const backend = await n.attachBackend({
      hostnames: ['app.example.com'],
      connectHandler: () => {
        throw new Error('no stream may reach the backend');
      },
    });
    const { ws, frames } = await hostilePeer(n);
    const request = (client_id: string, client_ip: string, conn_port: number) =>
      ws.send(
        encodePeerMessage({
          type: 'tunnel_request',
          client_id,
          client_ip,
          conn_port,
          hostname: 'app.example.com',
          is_tls: false,
        }),
      );
    const badIp = '00000000-0000-4000-8000-000000000001';
    const badPort = '00000000-0000-4000-8000-000000000002';
    request(badIp, '1.2.3.4:80\r\nPROXY TCP4 6.6.6.6', 443);
    request(badPort, '198.51.100.7:51000', 22);
    await expect
      .poll(() => frames.flatMap((f) => (f.ok && f.value.type === 'tunnel-close' ? [f.value.tunnelId] : [])))
      .toEqual([badIp, badPort]);
    expect(backend.streams).toEqual([]);
  });
});
