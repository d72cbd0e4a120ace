/** Reading a file a flag or a configuration key names, with the one-line error of every CLI failure. */
import { readFileSync } from 'node:fs';
import { unreadableFileDetail } from '@nexus-proxy/common';
import { CliError } from './errors.js';

/** The text of `file`, which `key` (a flag or a configuration key) names. Throws `CliError` naming both. */
export function readNamedFile(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError('NEXUS_ERR_USAGE', `${key} ${unreadableFileDetail(file, err)}`, { cause: err });
  }
}
