// Child process of peer-certificates.test.ts: verifies a peer certificate with the default trust (Node's
// roots, the OS store, NODE_EXTRA_CA_CERTS) of the built package, and prints the result as JSON.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PeerAuthenticator } from '../../dist/index.js';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const auth = new PeerAuthenticator({ trustedDomainSuffixes: [input.suffix] });
const result = await auth.verifyCertificate(
  new X509Certificate(input.leaf),
  input.chain.map((pem) => new X509Certificate(pem)),
);
process.stdout.write(JSON.stringify(result));
