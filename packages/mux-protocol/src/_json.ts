/** @internal Helpers shared by the JSON encoders (control and peer messages). */

const GO_HTML_CHARS = /[<>&\u2028\u2029]/;
const GO_HTML_CHARS_GLOBAL = /[<>&\u2028\u2029]/g;
const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * A JSON string literal escaped the way Go's `encoding/json` escapes it: like `JSON.stringify`, plus
 * `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes (Go's default HTML-safe escaping), so that messages are
 * byte-identical to the reference implementation's.
 */
export function goJsonString(value: string): string {
  const literal = JSON.stringify(value);
  return GO_HTML_CHARS.test(literal) ? literal.replace(GO_HTML_CHARS_GLOBAL, (c) => GO_ESCAPES[c]!) : literal;
}

/** A plain object parsed from JSON, or `undefined` when `text` is not valid JSON or not an object. */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  return parsed as Record<string, unknown>;
}

/** Reads an own property; `null` counts as absent, as in Go's `encoding/json`. */
export function field(object: Record<string, unknown>, key: string): unknown {
  if (!Object.hasOwn(object, key)) return undefined;
  const value = object[key];
  return value === null ? undefined : value;
}

/** Largest TCP/UDP port number. */
export const MAX_PORT = 65_535;

/** True for an integer in `[min, max]`. */
export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}
