/**
 * Attacks 3 and 4: peer certificates. The mesh used to refuse every certificate issued through an
 * intermediate CA (every public and ACME certificate), and its hand-written chain check ignored name
 * constraints, `pathlen` and intermediates' extended key usage. Certificates here are made with openssl:
 * root → intermediate → serverAuth-only leaf, full chain presented, as ACME issues them.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { resolvePortMappings } from '@nexus-proxy/backend-client';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PeerAuthenticator } from '../../src/peer-auth.js';
import {
  createTestPki,
  type TestNode,
  startNode,
  startService,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { createOpensslPki, type OpensslCert, type OpensslPki } from '../helpers/openssl-pki.js';

const SUFFIX = '.mesh.test';
let ossl: OpensslPki;
let root: OpensslCert;
let intermediate: OpensslCert;
let harnessPki: TestPki;

beforeAll(async () => {
  ossl = createOpensslPki();
  root = ossl.root('Mesh Test Root');
  intermediate = ossl.issue(root, { cn: 'Mesh Test Intermediate', ca: true, pathLen: 0 });
  harnessPki = await createTestPki();
});
afterAll(() => ossl.remove());

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A serverAuth-only leaf for `name` (and 127.0.0.1) from `issuer`, with its chain file. */
function nodeCert(name: string, issuer: OpensslCert, chain: OpensslCert[] = [issuer]) {
  const leaf = ossl.issue(issuer, { cn: name, dns: [name], ips: ['127.0.0.1'], eku: 'serverAuth' });
  const chainFile = ossl.bundle(`${leaf.name}-chain.pem`, [leaf, ...chain]);
  return { leaf, chainFile, chainPem: [leaf, ...chain].map((c) => c.certPem).join('') };
}

/** A whole node whose hub and peer listener serve `cert`, trusting `root` for peers. */
async function meshNode(cert: ReturnType<typeof nodeCert>, peers: string[] = []): Promise<TestNode> {
  const caFile = ossl.bundle(`ca-${cert.leaf.name}.pem`, [root]);
  // Backend clients check the hub against the openssl root.
  const pki: TestPki = { ...harnessPki, ca: { certPem: root.certPem, keyPem: '' } };
  const node = await startNode({
    pki,
    config: {
      hubTlsCertFile: cert.chainFile,
      hubTlsKeyFile: cert.leaf.keyFile,
      peerListenAddress: '127.0.0.1:0',
      peers,
      peerAuthentication: { trustedDomainSuffixes: [SUFFIX], caFile },
    },
  });
  cleanups.push(() => node.close());
  return node;
}

/** Dials `port`'s peer listener presenting `cert`; resolves with the HTTP status or `open`. */
async function dialPeer(port: number, cert: ReturnType<typeof nodeCert>): Promise<number | 'open'> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/mesh`, {
    cert: cert.chainPem,
    key: cert.leaf.keyPem,
    ca: root.certPem,
  });
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
  });
}

describe('attack: peer certificates issued through an intermediate CA', () => {
  it('links two nodes with root → intermediate → serverAuth-only leaves and relays a TLS connection', async () => {
    const b = await meshNode(nodeCert('b.mesh.test', intermediate));
    const service = await startService((s) => s.on('data', (d) => s.write(d)), {
      tls: await harnessPki.issue(['app.example.com']),
    });
    cleanups.push(() => service.close());
    const bPeerPort = b.addresses.peer?.port ?? -1;
    const a = await meshNode(nodeCert('a.mesh.test', intermediate), [`wss://127.0.0.1:${bPeerPort}/mesh`]);
    // A tunnel carries the origin's relay port: the backend maps A's TLS port as well as B's.
    await b.attachBackend({
      hostnames: ['app.example.com'],
      portMappings: resolvePortMappings({
        [a.tlsPort]: `127.0.0.1:${service.port}`,
        [b.tlsPort]: `127.0.0.1:${service.port}`,
      }),
    });
    await expect.poll(() => a.nexus.routes.lookup('app.example.com')?.kind, { timeout: 10_000 }).toBe('peer');

    // An end user at A reaches the service behind B through the tunnel, TLS end to end.
    const user = tlsConnect({
      host: '127.0.0.1',
      port: a.tlsPort,
      servername: 'app.example.com',
      ca: harnessPki.ca.certPem,
    });
    user.on('error', () => {});
    cleanups.push(() => {
      user.destroy();
    });
    await once(user, 'secureConnect');
    user.write('through the mesh');
    const [echo] = (await once(user, 'data')) as [Buffer];
    expect(echo.toString()).toBe('through the mesh');
  });

  it('refuses a leaf under a sub-CA name-constrained to .other.test that claims evil.mesh.test', async () => {
    const b = await meshNode(nodeCert('b.mesh.test', intermediate));
    const constrained = ossl.issue(root, {
      cn: 'Constrained CA',
      ca: true,
      nameConstraints: 'permitted;DNS:.other.test',
    });
    const refused = once(b.nexus, 'peer-refused');
    expect(await dialPeer(b.addresses.peer?.port ?? -1, nodeCert('evil.mesh.test', constrained))).toBe(403);
    const [event] = (await refused) as [{ reason: string }];
    expect(event.reason).toMatch(/name constraint/i);
    // The same sub-CA may issue inside its subtree (the check is the constraint, not the sub-CA).
    const auth = new PeerAuthenticator({
      trustedDomainSuffixes: ['.other.test'],
      ca: root.certPem,
      systemCa: false,
    });
    const ok = nodeCert('ok.other.test', constrained);
    expect(
      await auth.verifyCertificate(new X509Certificate(ok.leaf.certPem), [
        new X509Certificate(constrained.certPem),
      ]),
    ).toMatchObject({ ok: true, name: 'ok.other.test' });
  });

  it('refuses a chain that breaks pathlen: root → intermediate (pathlen 0) → sub-CA → leaf', async () => {
    const b = await meshNode(nodeCert('b.mesh.test', intermediate));
    const subCa = ossl.issue(intermediate, { cn: 'Too Deep CA', ca: true });
    const refused = once(b.nexus, 'peer-refused');
    const deep = nodeCert('deep.mesh.test', subCa, [subCa, intermediate]);
    expect(await dialPeer(b.addresses.peer?.port ?? -1, deep)).toBe(403);
    const [event] = (await refused) as [{ reason: string }];
    expect(event.reason).toMatch(/pathLenConstraint 0/);
  });

  it('refuses a leaf under an intermediate whose extended key usage excludes TLS', async () => {
    const b = await meshNode(nodeCert('b.mesh.test', intermediate));
    const emailCa = ossl.issue(root, { cn: 'Email CA', ca: true, eku: 'emailProtection' });
    const refused = once(b.nexus, 'peer-refused');
    expect(await dialPeer(b.addresses.peer?.port ?? -1, nodeCert('x.mesh.test', emailCa))).toBe(403);
    const [event] = (await refused) as [{ reason: string }];
    expect(event.reason).toMatch(/extended key usage/);
  });
});

describe('attack: peer trust ignores the operator’s CA stores', () => {
  const script = fileURLToPath(new URL('./_verify-peer-cert.mjs', import.meta.url));

  it('trusts a CA given in NODE_EXTRA_CA_CERTS (checked in a child process)', async () => {
    const leaf = nodeCert('n.mesh.test', intermediate);
    const input = join(ossl.dir, 'verify-input.json');
    writeFileSync(
      input,
      JSON.stringify({ suffix: SUFFIX, leaf: leaf.leaf.certPem, chain: [intermediate.certPem] }),
    );
    const run = async (env: NodeJS.ProcessEnv) => {
      const { stdout } = await promisify(execFile)(process.execPath, [script, input], { env });
      return JSON.parse(stdout) as { ok: boolean; reason?: string };
    };
    const { NODE_EXTRA_CA_CERTS: _unset, ...base } = process.env;
    expect(await run({ ...base, NODE_EXTRA_CA_CERTS: root.certFile })).toMatchObject({ ok: true });
    expect(await run(base)).toMatchObject({ ok: false });
  });
});
