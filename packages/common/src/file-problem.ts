/**
 * Why a file named in a configuration or on the command line could not be read, in words a person can
 * act on, for the one-line errors of both command lines.
 */

const PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
};

/** `no such file`, `permission denied`, …, else the error's own message. */
export function fileProblem(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && PROBLEMS[code] !== undefined) return PROBLEMS[code];
  return err instanceof Error ? err.message : String(err);
}

/**
 * The detail of an unreadable file that `key` names: `cannot read /etc/x.pem (no such file): fix the path
 * or create the file`. The fix follows the problem: a path, or the file's permissions.
 */
export function unreadableFileDetail(file: string, err: unknown): string {
  const problem = fileProblem(err);
  const code = (err as { code?: unknown } | null)?.code;
  const fix =
    code === 'EACCES' || code === 'EPERM'
      ? 'make it readable by the user this runs as'
      : code === 'ENOENT' || code === 'ENOTDIR'
        ? 'fix the path or create the file'
        : 'fix the path';
  return `cannot read ${file} (${problem}): ${fix}`;
}
