/**
 * Errors the `nexus-proxy` CLI throws for expected failures (a bad flag combination, a file that is
 * already there, an admin listener that does not answer). Match on `err.code`, which is stable; messages
 * are for humans. Errors of the node itself are `@nexus-proxy/core`'s `NexusError`s.
 */

/** Stable error codes of the CLI. */
export type CliErrorCode =
  /** Flags, options or secrets that cannot be used as given. */
  | 'NEXUS_ERR_USAGE'
  /** The file to write exists and `--force` was not given. */
  | 'NEXUS_ERR_FILE_EXISTS'
  /** The admin listener could not be reached or gave no usable answer. */
  | 'NEXUS_ERR_ADMIN_UNREACHABLE'
  /** `init`: the hostname has no A/AAAA record pointing at this machine. */
  | 'NEXUS_ERR_DNS'
  /** `init`: a system command (`useradd`, `systemctl`) failed. */
  | 'NEXUS_ERR_COMMAND';

/** An expected failure of a CLI command; the message is printed as it is. */
export class CliError extends Error {
  /** Stable machine-readable code. */
  readonly code: CliErrorCode;

  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.code = code;
  }
}
