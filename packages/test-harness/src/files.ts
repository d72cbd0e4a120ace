/** Files tests need (certificates, keys, configuration) live in a directory under the OS temp dir. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CertificateAndKey } from '@nexus-proxy/core';

/** A fresh directory under the OS temp dir. */
export interface TempDir {
  dir: string;
  /** Writes `name` (mode 0600) and returns its path. */
  write(name: string, text: string | Buffer): string;
  remove(): void;
}

export function createTempDir(prefix = 'nexus-test-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) {
      const file = join(dir, name);
      writeFileSync(file, text, { mode: 0o600 });
      return file;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Writes a certificate and its key as `<name>.crt` / `<name>.key`; returns both paths. */
export function writeCertificateFiles(
  dir: TempDir,
  cert: CertificateAndKey,
  name = 'hub',
): { certFile: string; keyFile: string } {
  return { certFile: dir.write(`${name}.crt`, cert.certPem), keyFile: dir.write(`${name}.key`, cert.keyPem) };
}
