/**
 * Reading the files a node configuration names (the hub's certificate and key, the peer CA bundle), with
 * errors that name the key and the fix. The node reads them before it binds any port, and `nexus-proxy
 * check` reads them the same way.
 */
import { readFile } from 'node:fs/promises';
import { unreadableFileDetail } from '@nexus-proxy/common';
import { InvalidConfigError, TlsError } from './errors.js';
import { HubTlsContext } from './hub-tls.js';
import type { Logger } from './logger.js';

/** Reads the file at `file` that the configuration key `key` names. Throws `InvalidConfigError` naming `key`. */
export async function readConfiguredFile(file: string, key: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new InvalidConfigError(key, unreadableFileDetail(file, cause), { cause });
  }
}

/** The hub's certificate and key as the files-mode configuration names them. */
export interface HubTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Reads both files (throws `InvalidConfigError` naming `hubTlsCertFile` or `hubTlsKeyFile`) and checks
 * that they load and belong together (throws `TlsError` naming both keys and files).
 */
export async function readHubTlsMaterial(files: HubTlsFiles): Promise<{ certPem: string; keyPem: string }> {
  const [certPem, keyPem] = await Promise.all([
    readConfiguredFile(files.certFile, 'hubTlsCertFile'),
    readConfiguredFile(files.keyFile, 'hubTlsKeyFile'),
  ]);
  return { certPem, keyPem };
}

/** Loads the hub's TLS context from its files; the errors of {@link readHubTlsMaterial} and of a bad pair. */
export async function loadHubTlsFiles(files: HubTlsFiles, logger?: Logger): Promise<HubTlsContext> {
  const material = await readHubTlsMaterial(files);
  try {
    return new HubTlsContext(material, logger === undefined ? {} : { logger });
  } catch (cause) {
    if (!TlsError.is(cause)) throw cause;
    throw new TlsError(
      `hubTlsCertFile ${files.certFile} and hubTlsKeyFile ${files.keyFile}: ${cause.message} (give the certificate and the key it was issued for)`,
      { cause },
    );
  }
}
