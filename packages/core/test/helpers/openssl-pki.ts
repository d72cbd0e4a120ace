/**
 * Certificate hierarchies made with the `openssl` command line, for tests that need what the in-process
 * helpers cannot make: intermediate CAs, `pathlen`, name constraints. Files go to a fresh directory under
 * the OS temp dir; `remove()` deletes it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as PEM, plus the files they were written to. */
export interface OpensslCert {
  name: string;
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
}

/** What goes into an issued certificate. */
export interface IssueSpec {
  /** Subject CN. */
  cn: string;
  /** A CA certificate (`basicConstraints CA:true`, keyCertSign). Default: a TLS leaf. */
  ca?: boolean;
  /** `pathlen` of a CA. Default: none. */
  pathLen?: number;
  /** `nameConstraints`, e.g. `permitted;DNS:.other.test`. Default: none. */
  nameConstraints?: string;
  /** DNS names of a leaf. */
  dns?: string[];
  /** IP addresses of a leaf. */
  ips?: string[];
  /** `extendedKeyUsage`. Default: `serverAuth` for a leaf (as ACME issues), none for a CA. */
  eku?: string;
  /** The extension lines (openssl `-extfile` syntax) instead of those the fields above make. */
  extensions?: string[];
  /** The certificate's key. Default: `ec-p256`. */
  key?: KeyKind;
}

/** Key algorithms the helper makes. */
export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa';

/** What goes into a root. */
export interface RootSpec {
  /** The extension lines instead of CA:true, keyCertSign + cRLSign, a key identifier. */
  extensions?: string[];
  key?: KeyKind;
}

export interface OpensslPki {
  dir: string;
  /** A self-signed root CA. */
  root(cn: string, spec?: RootSpec): OpensslCert;
  /** A certificate for `spec`, signed by `issuer`. */
  issue(issuer: OpensslCert, spec: IssueSpec): OpensslCert;
  /** Writes `certs` (PEM, in order) to one file: a chain file or a CA bundle. */
  bundle(name: string, certs: OpensslCert[]): string;
  remove(): void;
}

export function createOpensslPki(): OpensslPki {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-openssl-pki-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const newKey = (name: string, kind: KeyKind = 'ec-p256'): string => {
    const keyFile = join(dir, `${name}.key`);
    const options =
      kind === 'rsa'
        ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']
        : ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${kind === 'ec-p384' ? 'P-384' : 'P-256'}`];
    run(['genpkey', ...options, '-out', keyFile]);
    return keyFile;
  };
  const load = (name: string, certFile: string, keyFile: string): OpensslCert => ({
    name,
    certFile,
    keyFile,
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
  });
  return {
    dir,
    root(cn, spec = {}) {
      const name = `root-${randomBytes(4).toString('hex')}`;
      const keyFile = newKey(name, spec.key);
      const extensions = spec.extensions ?? [
        'basicConstraints=critical,CA:true',
        'keyUsage=critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier=hash',
      ];
      // Given extensions stand alone: the default configuration's v3_ca section is not read.
      const config = spec.extensions === undefined ? [] : ['-config', '/dev/null'];
      const certFile = join(dir, `${name}.crt`);
      run([
        'req',
        '-x509',
        '-new',
        '-key',
        keyFile,
        '-out',
        certFile,
        '-days',
        '30',
        '-subj',
        `/CN=${cn}`,
        ...config,
        ...extensions.flatMap((e) => ['-addext', e]),
      ]);
      return load(name, certFile, keyFile);
    },
    issue(issuer, spec) {
      const name = `${spec.ca ? 'ca' : 'leaf'}-${randomBytes(4).toString('hex')}`;
      const keyFile = newKey(name, spec.key);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      const lines = ['subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
      if (spec.ca) {
        lines.push(
          `basicConstraints=critical,CA:true${spec.pathLen !== undefined ? `,pathlen:${spec.pathLen}` : ''}`,
        );
        lines.push('keyUsage=critical,keyCertSign,cRLSign');
        if (spec.nameConstraints !== undefined)
          lines.push(`nameConstraints=critical,${spec.nameConstraints}`);
        if (spec.eku !== undefined) lines.push(`extendedKeyUsage=${spec.eku}`);
      } else {
        lines.push('basicConstraints=critical,CA:false', 'keyUsage=critical,digitalSignature');
        lines.push(`extendedKeyUsage=${spec.eku ?? 'serverAuth'}`);
        const alt = [...(spec.dns ?? []).map((d) => `DNS:${d}`), ...(spec.ips ?? []).map((i) => `IP:${i}`)];
        if (alt.length > 0) lines.push(`subjectAltName=${alt.join(',')}`);
      }
      writeFileSync(ext, `${(spec.extensions ?? lines).join('\n')}\n`);
      run(['req', '-new', '-key', keyFile, '-out', csr, '-subj', `/CN=${spec.cn}`]);
      run([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        issuer.certFile,
        '-CAkey',
        issuer.keyFile,
        '-set_serial',
        `0x${randomBytes(8).toString('hex')}`,
        '-days',
        '30',
        '-out',
        certFile,
        '-extfile',
        ext,
      ]);
      return load(name, certFile, keyFile);
    },
    bundle(name, certs) {
      const file = join(dir, name);
      writeFileSync(file, certs.map((c) => c.certPem.trim()).join('\n') + '\n');
      return file;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
