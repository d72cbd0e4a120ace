import { createPrivateKey, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import * as tls from 'node:tls';
import type { CertificateAndKey } from './certificates.js';
import { TlsError } from './errors.js';
import { type Logger, noopLogger } from './logger.js';

/** What `HubTlsContext.info()` reports about the certificate being served. */
export interface TlsCertificateInfo {
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
  /** Serial number, upper-case hex (as `crypto.X509Certificate` prints it). */
  serialNumber: string;
  /** subjectAltName entries, e.g. `['DNS:hub.example.com', 'IP Address:192.0.2.1']`. */
  subjectAltNames: string[];
  /** SHA-256 fingerprint of the leaf, colon-separated upper-case hex. */
  fingerprint256: string;
  /** Subject distinguished name. */
  subject: string;
  /** Issuer distinguished name. */
  issuer: string;
}

/** Options of `HubTlsContext`. */
export interface HubTlsContextOptions {
  /**
   * Extra secure-context options applied to every certificate (e.g. `ca` to verify peer client
   * certificates, `minVersion`). `cert` and `key` always come from the current certificate.
   */
  contextOptions?: Omit<tls.SecureContextOptions, 'cert' | 'key' | 'pfx'>;
  /** Logger; a `component: 'hub-tls'` child is used. Default: no-op. */
  logger?: Logger;
}

/** Events of `HubTlsContext`. */
export interface HubTlsContextEvents {
  /** A new certificate is being served to new handshakes. */
  update: [info: TlsCertificateInfo];
}

interface Loaded {
  material: CertificateAndKey;
  secureContext: tls.SecureContext;
  info: TlsCertificateInfo;
}

/**
 * The hub's server certificate, swappable at runtime. Servers take it through `SNICallback` (every
 * handshake that carries SNI asks for the current context) and, for clients that send no SNI, through
 * `attach(server)`, which calls `server.setSecureContext()` on every update. A swap affects new
 * handshakes only: established TLS connections keep the keys they negotiated and stay up.
 */
export class HubTlsContext extends EventEmitter<HubTlsContextEvents> {
  #loaded: Loaded;
  readonly #contextOptions: Omit<tls.SecureContextOptions, 'cert' | 'key' | 'pfx'>;
  readonly #log: Logger;
  readonly #servers = new Set<tls.Server>();
  #files: { certFile: string; keyFile: string } | undefined;

  /** Throws `TlsError` when the PEM cannot be loaded or the key does not belong to the certificate. */
  constructor(material: CertificateAndKey, options: HubTlsContextOptions = {}) {
    super();
    this.#contextOptions = { ...options.contextOptions };
    this.#log = (options.logger ?? noopLogger).child({ component: 'hub-tls' });
    this.#loaded = this.#load(material);
  }

  /** Loads the certificate (PEM, chain allowed) and key from files; `reloadFromFiles()` re-reads them. */
  static async fromFiles(
    certFile: string,
    keyFile: string,
    options: HubTlsContextOptions = {},
  ): Promise<HubTlsContext> {
    const context = new HubTlsContext(await readMaterial(certFile, keyFile), options);
    context.#files = { certFile, keyFile };
    return context;
  }

  /** The secure context new handshakes get. */
  get current(): tls.SecureContext {
    return this.#loaded.secureContext;
  }

  /** Same as `current`. */
  get secureContext(): tls.SecureContext {
    return this.#loaded.secureContext;
  }

  /** The PEM certificate and key being served (e.g. to present as a client certificate on peer links). */
  get material(): Readonly<CertificateAndKey> {
    return this.#loaded.material;
  }

  /**
   * `SNICallback` for `tls.createServer` / `https.createServer`: answers every SNI handshake with the
   * current context. Bound, so it can be passed as is.
   */
  readonly SNICallback = (
    _servername: string,
    callback: (err: Error | null, ctx?: tls.SecureContext) => void,
  ) => {
    callback(null, this.#loaded.secureContext);
  };

  /**
   * Options to spread into `tls.createServer()` / `https.createServer()`: the current `cert`/`key` (for
   * handshakes without SNI) plus `SNICallback`. Pair with `attach(server)` so non-SNI clients follow updates.
   */
  serverOptions(): tls.TlsOptions {
    return {
      ...this.#contextOptions,
      cert: this.#loaded.material.certPem,
      key: this.#loaded.material.keyPem,
      SNICallback: this.SNICallback,
    };
  }

  /**
   * Keeps `server`'s default context (used when a client sends no SNI) in step with this context.
   * Returns a function that detaches it again.
   */
  attach(server: tls.Server): () => void {
    this.#servers.add(server);
    server.setSecureContext(this.#secureContextOptions(this.#loaded.material));
    return () => {
      this.#servers.delete(server);
    };
  }

  /**
   * Serves a new certificate to new handshakes. Throws `TlsError` (and keeps serving the old one) when the
   * PEM is invalid or the key does not match.
   */
  update(material: CertificateAndKey): TlsCertificateInfo {
    const loaded = this.#load(material);
    this.#loaded = loaded;
    for (const server of this.#servers) server.setSecureContext(this.#secureContextOptions(loaded.material));
    this.#log.info(
      {
        serialNumber: loaded.info.serialNumber,
        notAfter: loaded.info.notAfter.toISOString(),
        subjectAltNames: loaded.info.subjectAltNames,
      },
      'hub TLS certificate updated',
    );
    this.emit('update', loaded.info);
    return loaded.info;
  }

  /** Re-reads the files given to `fromFiles` and serves them; on error the old certificate stays. */
  async reloadFromFiles(): Promise<TlsCertificateInfo> {
    if (this.#files === undefined)
      throw new TlsError('reloadFromFiles() needs a context made by fromFiles()');
    return this.update(await readMaterial(this.#files.certFile, this.#files.keyFile));
  }

  /** Facts about the certificate being served. */
  info(): TlsCertificateInfo {
    return { ...this.#loaded.info, subjectAltNames: [...this.#loaded.info.subjectAltNames] };
  }

  #secureContextOptions(material: CertificateAndKey): tls.SecureContextOptions {
    return { ...this.#contextOptions, cert: material.certPem, key: material.keyPem };
  }

  #load(material: CertificateAndKey): Loaded {
    const info = certificateInfo(material.certPem);
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(material.keyPem);
    } catch (cause) {
      throw new TlsError('TLS private key is not a valid PEM key', { cause });
    }
    if (!new X509Certificate(material.certPem).checkPrivateKey(key)) {
      throw new TlsError('TLS private key does not match the certificate');
    }
    let secureContext: tls.SecureContext;
    try {
      secureContext = tls.createSecureContext(this.#secureContextOptions(material));
    } catch (cause) {
      throw new TlsError('cannot create a TLS context from the certificate and key', { cause });
    }
    return { material: { certPem: material.certPem, keyPem: material.keyPem }, secureContext, info };
  }
}

/**
 * Reads `TlsCertificateInfo` from a PEM certificate (the first one of a chain). Throws `TlsError` when
 * it cannot be parsed.
 */
export function certificateInfo(certPem: string): TlsCertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (cause) {
    throw new TlsError('TLS certificate is not a valid PEM certificate', { cause });
  }
  return {
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialNumber: cert.serialNumber,
    subjectAltNames: cert.subjectAltName === undefined ? [] : cert.subjectAltName.split(', '),
    fingerprint256: cert.fingerprint256,
    subject: cert.subject,
    issuer: cert.issuer,
  };
}

async function readMaterial(certFile: string, keyFile: string): Promise<CertificateAndKey> {
  try {
    const [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return { certPem, keyPem };
  } catch (cause) {
    throw new TlsError(`cannot read TLS certificate or key file: ${(cause as Error).message}`, { cause });
  }
}
