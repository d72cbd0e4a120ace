import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, WebSocket } from 'ws';
import { createSelfSignedCertificate, issueCertificate } from '../../src/certificates.js';
import { createTestPki, type TestNode, startNode, type TestPki } from '@nexus-proxy/test-harness';

let pki: TestPki;
let a: TestNode;
beforeAll(async () => {
  pki = await createTestPki();
  a = await startNode({ pki, name: 'a' });
});
afterAll(async () => {
  await a?.close();
});

describe('PeerMesh listener with SNI', () => {
  // With SNI the hub's SNICallback swaps the secure context mid-handshake: the client certificate must
  // still be requested and checked.
  it('still requests and checks the client certificate when the client sends SNI', async () => {
    const good = await pki.nodeCert('b');
    const ws = new WebSocket(a.meshUrl, {
      ca: pki.ca.certPem,
      servername: 'a.mesh.example.com',
      cert: good.certPem,
      key: good.keyPem,
    } as unknown as ClientOptions);
    ws.on('error', () => {});
    await once(ws, 'open');
    const [msg] = await once(ws, 'message');
    expect(JSON.parse(msg.toString())).toMatchObject({ type: 'announce' });
    ws.close();

    for (const cert of [
      await createSelfSignedCertificate({ dnsNames: ['b.mesh.example.com'] }),
      await issueCertificate(pki.ca, { dnsNames: ['evilmesh.example.com'] }),
    ]) {
      const bad = new WebSocket(a.meshUrl, {
        ca: pki.ca.certPem,
        servername: 'a.mesh.example.com',
        cert: cert.certPem,
        key: cert.keyPem,
      } as unknown as ClientOptions);
      bad.on('error', () => {});
      const [, res] = await once(bad, 'unexpected-response');
      expect(res.statusCode).toBe(403);
      bad.terminate();
    }
  });
});
