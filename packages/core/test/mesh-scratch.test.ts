import * as tls from 'node:tls';
import { it } from 'vitest';
import { createCertificateAuthority, issueCertificate, createSelfSignedCertificate } from '../src/certificates.js';

it('probe', async () => {
  const ca = await createCertificateAuthority({ commonName: 'Test CA' });
  const server = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const cases: Record<string, { certPem: string; keyPem: string }> = {
    serverOnly: await issueCertificate(ca, { dnsNames: ['a.mesh.example.com'] }),
    clientOnly: await issueCertificate(ca, { dnsNames: ['a.mesh.example.com'], serverAuth: false, clientAuth: true }),
    both: await issueCertificate(ca, { dnsNames: ['a.mesh.example.com'], clientAuth: true }),
    selfSigned: await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'] }),
    selfSignedBoth: await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'], clientAuth: true }),
  };
  const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: false }, (s) => {
    const chain = s.getPeerCertificate(true);
    console.log('server sees', s.authorized, s.authorizationError, chain?.subject?.CN, chain?.issuerCertificate?.subject?.CN, chain?.issuerCertificate === chain);
    s.end('x');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as any).port;
  for (const [name, c] of Object.entries(cases)) {
    console.log(name);
    await new Promise<void>((r) => {
      const s = tls.connect({ port, host: '127.0.0.1', ca: [ca.certPem], cert: c.certPem, key: c.keyPem }, () => {});
      s.on('data', () => {}); s.on('close', () => r()); s.on('error', (e) => { console.log('client err', e.message); r(); });
    });
  }
  srv.close();
});
