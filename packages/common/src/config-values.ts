/** Small rules every configuration resolver applies to parsed values. */
import path from 'node:path';

/** A YAML mapping (or an object literal): an object that is not a list. */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** YAML `key:` without a value parses as `null`; like the reference's Go decoder, it counts as absent. */
export function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** The keys of `doc` among `keys` that have a value, in the document's order. */
export function presentKeys(doc: Record<string, unknown>, keys: readonly string[]): string[] {
  return Object.keys(doc).filter((k) => keys.includes(k) && present(doc[k]));
}

/** `file` resolved against `baseDir` (the configuration file's directory); kept as written without one. */
export function resolveFrom(baseDir: string | undefined, file: string): string;
export function resolveFrom(baseDir: string | undefined, file: string | undefined): string | undefined;
export function resolveFrom(baseDir: string | undefined, file: string | undefined): string | undefined {
  return file === undefined || baseDir === undefined ? file : path.resolve(baseDir, file);
}

/** Freeze `value` and every object and list below it (maps and sets are left as they are). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    if (value instanceof Map || value instanceof Set) return value;
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
