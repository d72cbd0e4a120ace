/**
 * Reading the node's YAML configuration file (docs/protocol.md §6.1 format). Relative file paths in it (TLS
 * certificate and key, CA files, ACME cache directory) are resolved against the file's directory, so a
 * node can be started from any working directory.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigIssue,
  locateIssue,
  parseYamlConfig,
  type YamlConfigDocument,
} from '@nexus-proxy/common/config';
import { type ResolvedNexusConfig, resolveNexusConfig } from './config.js';
import { InvalidConfigError } from './errors.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Directory relative paths are resolved against. Default: kept as written. */
  baseDir?: string;
  /** Name used in error messages (usually the file path). Default: `config`. */
  source?: string;
}

function readYaml(text: string, source: string): YamlConfigDocument {
  try {
    return parseYamlConfig(text, source);
  } catch (err) {
    if (!ConfigIssue.is(err)) throw err;
    const message =
      err.kind === 'empty'
        ? `${source}: the configuration is empty`
        : `${err.where}: invalid YAML: ${err.detail}`;
    throw new InvalidConfigError('', message, { cause: err });
  }
}

/**
 * Parse and resolve a YAML configuration document. YAML syntax errors and validation errors are
 * {@link InvalidConfigError}s whose message carries `source:line`.
 */
export function parseConfig(text: string, options: ParseConfigOptions = {}): ResolvedNexusConfig {
  const source = options.source ?? 'config';
  const doc = readYaml(text, source);
  try {
    return resolveNexusConfig(doc.value as Record<string, unknown>, { baseDir: options.baseDir });
  } catch (err) {
    if (!InvalidConfigError.is(err)) throw err;
    const located = locateIssue(new ConfigIssue(err.path, err.detail, { cause: err }), doc, source);
    throw new InvalidConfigError(err.path, located.locatedDetail, { cause: located });
  }
}

/**
 * Read, parse and resolve the YAML configuration file at `file`. Relative paths inside it are resolved
 * against the file's directory. Throws {@link InvalidConfigError} (also when the file cannot be read).
 */
export async function loadConfig(file: string): Promise<ResolvedNexusConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOENT' ? 'not found' : ((err as Error)?.message ?? String(err));
    throw new InvalidConfigError('', `cannot read configuration file ${file}: ${why}`, {
      cause: err,
    });
  }
  return parseConfig(text, { baseDir: path.dirname(path.resolve(file)), source: file });
}
