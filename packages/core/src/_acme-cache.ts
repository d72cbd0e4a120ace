import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CertificateAndKey } from './certificates.js';

/** Mode of the cache directory: only the owner may list or enter it. */
export const CACHE_DIR_MODE = 0o700;
/** Mode of every cached file (private keys among them). */
export const CACHE_FILE_MODE = 0o600;

/** What is cached next to a certificate, so a cache made for another CA or name is not reused. */
export interface CachedCertificateMeta {
  /** ACME directory that issued the certificate. */
  directoryUrl: string;
  /** The name it was ordered for. */
  hostname: string;
  /** When it was stored (ISO 8601). */
  storedAt: string;
}

/**
 * The on-disk ACME cache:
 * - `account-key.pem`: the ACME account key (PKCS#8 PEM), shared by every directory and name;
 * - `<hostname>.crt`: certificate chain (leaf first), `<hostname>.key`: its key, `<hostname>.json`: meta.
 * The hostname is normalised before it gets here, so it contains only `[a-z0-9.-]`.
 * @internal
 */
export class AcmeCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory (mode 0700) and tightens its mode if it already existed. */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: CACHE_DIR_MODE });
    await chmod(this.dir, CACHE_DIR_MODE);
  }

  async readAccountKey(): Promise<string | undefined> {
    return readOptional(join(this.dir, 'account-key.pem'));
  }

  async writeAccountKey(pem: string): Promise<void> {
    await writePrivate(join(this.dir, 'account-key.pem'), pem);
  }

  async readCertificate(
    hostname: string,
  ): Promise<{ material: CertificateAndKey; meta: CachedCertificateMeta } | undefined> {
    const [certPem, keyPem, metaJson] = await Promise.all([
      readOptional(join(this.dir, `${hostname}.crt`)),
      readOptional(join(this.dir, `${hostname}.key`)),
      readOptional(join(this.dir, `${hostname}.json`)),
    ]);
    if (certPem === undefined || keyPem === undefined || metaJson === undefined) return undefined;
    let meta: CachedCertificateMeta;
    try {
      meta = JSON.parse(metaJson) as CachedCertificateMeta;
    } catch {
      return undefined;
    }
    if (typeof meta?.directoryUrl !== 'string' || typeof meta.hostname !== 'string') return undefined;
    return { material: { certPem, keyPem }, meta };
  }

  /** Key first and meta last: a crash in between leaves a set that `readCertificate` rejects or that matches. */
  async writeCertificate(hostname: string, material: CertificateAndKey, directoryUrl: string): Promise<void> {
    const meta: CachedCertificateMeta = { directoryUrl, hostname, storedAt: new Date().toISOString() };
    await writePrivate(join(this.dir, `${hostname}.key`), material.keyPem);
    await writePrivate(join(this.dir, `${hostname}.crt`), material.certPem);
    await writePrivate(join(this.dir, `${hostname}.json`), `${JSON.stringify(meta, null, 2)}\n`);
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a key. */
async function writePrivate(file: string, content: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode: CACHE_FILE_MODE });
  // `mode` applies only when the file is created; make sure a leftover temporary file is private too.
  await chmod(temporary, CACHE_FILE_MODE);
  await rename(temporary, file);
}
