/**
 * Key paths of configuration documents, as error messages write them: `listeners[2].port`,
 * `backends[0].portMappings.443.hosts["*.example.com"]`.
 */

/** One step of a key path: a mapping key or a list index. */
export type PathSegment = string | number;

const SEGMENT = /(?:^|\.)([^.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
const PLAIN_KEY = /^(?:[A-Za-z_$][\w$]*|\d+)$/;

/**
 * `listeners[2].port` → `['listeners', 2, 'port']`; `portMappings.443.hosts["a.example.com"]` →
 * `['portMappings', '443', 'hosts', 'a.example.com']`. Stops at the first part it cannot read.
 */
export function splitPath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  SEGMENT.lastIndex = 0;
  while (SEGMENT.lastIndex < path.length) {
    const m = SEGMENT.exec(path);
    if (m === null) break;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
  }
  return out;
}

/** The inverse of {@link splitPath}: keys that are not plain names are written `["…"]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (!PLAIN_KEY.test(s)) out += `[${JSON.stringify(s)}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

/** A short, safe rendering of a value for an error message: `"abc"`, `42`, `a list`, `a mapping`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
