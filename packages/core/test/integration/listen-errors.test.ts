import { describe, expect, it } from 'vitest';
import { createSelfSignedCertificate } from '../../src/certificates.js';
import { NexusError, NexusErrorCode, TlsError } from '../../src/errors.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { PeerMesh } from '../../src/mesh.js';
import { RoutingTable } from '../../src/routing-table.js';

const verifyToken = async () => ({ hostnames: ['a.test'] });

describe('typed errors of the servers the node binds', () => {
  it('a hub without TLS material refuses to listen with TlsError', async () => {
    const hub = new BackendHub({ routes: new RoutingTable(), verifyToken });
    await expect(hub.listen('127.0.0.1', 0)).rejects.toSatisfy((err) => TlsError.is(err));
  });

  it('a hub listens once, and a taken address is NEXUS_ERR_LISTEN naming it and the cause', async () => {
    const tls = new HubTlsContext(await createSelfSignedCertificate({ dnsNames: ['hub.test'] }));
    const first = new BackendHub({ routes: new RoutingTable(), verifyToken, tls });
    const { port } = await first.listen('127.0.0.1', 0);
    try {
      const again = await first.listen('127.0.0.1', 0).catch((err: unknown) => err);
      expect(NexusError.is(again, NexusErrorCode.Listen)).toBe(true);

      const second = new BackendHub({ routes: new RoutingTable(), verifyToken });
      const taken = await second.listen('127.0.0.1', port, tls).catch((err: unknown) => err);
      expect(NexusError.is(taken, NexusErrorCode.Listen)).toBe(true);
      expect((taken as Error).message).toContain(`127.0.0.1:${port}`);
      expect((taken as Error).message).toContain('EADDRINUSE');
      expect((taken as { cause?: { code?: string } }).cause?.code).toBe('EADDRINUSE');
      await second.close();
    } finally {
      await first.close();
    }
  });

  it('the peer listener: once, and never after the mesh closed', async () => {
    const tls = new HubTlsContext(await createSelfSignedCertificate({ dnsNames: ['a.mesh.test'] }));
    const mesh = new PeerMesh({
      routes: new RoutingTable(),
      tls,
      trustedDomainSuffixes: ['mesh.test'],
      systemCa: false,
    });
    await mesh.listen({ port: 0, host: '127.0.0.1' });
    const again = await mesh.listen({ port: 0, host: '127.0.0.1' }).catch((err: unknown) => err);
    expect(NexusError.is(again, NexusErrorCode.Listen)).toBe(true);
    await mesh.close();
    const closed = await mesh.listen({ port: 0, host: '127.0.0.1' }).catch((err: unknown) => err);
    expect(NexusError.is(closed, NexusErrorCode.Closed)).toBe(true);
  });
});
