/**
 * How both command lines report a failure: an expected one (a typed error of this project, a usage error)
 * is one line that names the key or file and the fix; anything else, or any failure under `--debug`, is
 * printed with its stack and causes.
 */

/** Environment variable that has the same effect as `--debug`. */
export const DEBUG_ENV = 'NEXUS_DEBUG';

/** True when the command line or the environment asks for stack traces. */
export function debugRequested(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  return (
    argv.includes('--debug') ||
    (env[DEBUG_ENV] !== undefined && env[DEBUG_ENV] !== '' && env[DEBUG_ENV] !== '0')
  );
}

/**
 * True for the failures a person is expected to fix: errors carrying one of this project's stable codes
 * (`NEXUS_ERR_*`, `MUX_ERR_*`) and commander's usage errors.
 */
export function isExpectedError(err: unknown): err is Error & { code: string } {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return (
    typeof code === 'string' &&
    (code.startsWith('NEXUS_ERR_') || code.startsWith('MUX_ERR_') || code.startsWith('commander.'))
  );
}

/** The message on one line (a message that spans lines is joined with ` | `). */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' | ');
}

/** The stack of `err` and of each of its causes (at most 8 deep). */
export function describeWithStack(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    parts.push(
      current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current),
    );
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\nCaused by: ');
}

/** What a CLI prints for a failure: `program: one line`, or the stacks when unexpected or `debug`. */
export function describeFailure(program: string, err: unknown, debug: boolean): string {
  if (isExpectedError(err) && !debug) return `${program}: ${oneLine(err.message)}`;
  return `${program}: ${describeWithStack(err)}`;
}

/**
 * The fields a logger gets for a failure: the message alone for an expected one (one line, no stack),
 * the whole error (pino prints its stack) when unexpected or under `--debug`.
 */
export function errorFields(err: unknown, debug: boolean): { error: string } | { err: unknown } {
  if (isExpectedError(err) && !debug) return { error: oneLine(err.message) };
  return { err };
}
