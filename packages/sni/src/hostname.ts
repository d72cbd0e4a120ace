import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { latin1 } from './_bytes.js';

/** Longest DNS name in presentation form without the trailing dot (RFC 1035 §2.3.4: 255 octets on the wire). */
export const MAX_HOSTNAME_LENGTH = 253;
/** Longest DNS label (RFC 1035 §2.3.4). */
export const MAX_LABEL_LENGTH = 63;
/** Longest input `normalizeHostname` looks at; anything longer cannot become a valid name and is rejected unread. */
const MAX_INPUT_LENGTH = 1024;

/** A parsed wildcard pattern: `*.example.com` → `{ suffix: 'example.com' }`. */
export interface WildcardPattern {
  /** The normalised name the wildcard label is prepended to; always contains at least one dot. */
  suffix: string;
}

// Character classes, indexed by char code (0..127):
// 1 = letter, 2 = digit, 3 = '-', 4 = '_', 5 = '.'. Everything else is 0 (not allowed in the fast path).
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0x41; c <= 0x5a; c++) CHAR_CLASS[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) CHAR_CLASS[c] = 1;
for (let c = 0x30; c <= 0x39; c++) CHAR_CLASS[c] = 2;
CHAR_CLASS[0x2d] = 3;
CHAR_CLASS[0x5f] = 4;
CHAR_CLASS[0x2e] = 5;

/**
 * Normalises a hostname the way docs/protocol.md §3.1 prescribes for every name Nexus compares (SNI, Host,
 * JWT claims, config): trim, drop one trailing dot, IDNA to ASCII (UTS #46 via `url.domainToASCII`),
 * lower-case. Returns `undefined` for anything that is not a usable name: empty, longer than 253
 * characters, a label longer than 63 or empty, a label that starts or ends with `-` (RFC 952, RFC 1123
 * §2.1), or a character outside letters, digits, `-`, `_` and `.` after conversion (so `*`, `%`, `/`,
 * `:`, spaces and control characters are rejected). `_` is accepted anywhere in a label.
 *
 * IP literals: a strict dotted-quad IPv4 address is returned unchanged, and an IPv6 address (with or
 * without brackets) is returned in canonical bracketed form (`[::1]`). They are legal Host values but
 * no route is ever registered for them. Non-canonical numeric forms that the WHATWG URL parser would
 * turn into IPv4 (`0x7f.1`, `127.1`, `01.2.3.4`) are rejected rather than rewritten.
 *
 * Never throws.
 */
export function normalizeHostname(input: string): string | undefined {
  if (typeof input !== 'string') return undefined;
  let start = 0;
  let end = input.length;
  if (end > MAX_INPUT_LENGTH) return undefined;
  // Trim ASCII whitespace only: a Unicode space inside a name is invalid, not padding.
  while (start < end && isAsciiSpace(input.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(input.charCodeAt(end - 1))) end--;
  // Drop exactly one trailing dot (absolute name); a second one leaves an empty label and fails below.
  if (end > start && input.charCodeAt(end - 1) === 0x2e) end--;
  if (end === start) return undefined;

  const fast = asciiFastPath(input, start, end);
  if (fast !== null) return fast;
  return slowPath(start === 0 && end === input.length ? input : input.slice(start, end));
}

function isAsciiSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c;
}

/**
 * Plain LDH(+underscore) names, the overwhelmingly common case, are validated and lower-cased here
 * without calling into ICU. For such input UTS #46 (CheckHyphens=false, UseSTD3ASCIIRules=false, as the
 * WHATWG URL standard uses it) only lower-cases, except for `xn--` labels (punycode must decode) and a
 * numeric last label (IPv4 parsing): those go to the slow path. Returns `null` to mean "use the slow
 * path" and `undefined` for "invalid".
 */
function asciiFastPath(s: string, start: number, end: number): string | undefined | null {
  if (end - start > MAX_HOSTNAME_LENGTH) return undefined;
  let labelStart = start;
  let lastLabelStart = start;
  let upper = false;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2e : s.charCodeAt(i);
    const cls = c < 128 ? CHAR_CLASS[c]! : 0;
    if (cls === 0) return null;
    if (cls === 5) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL_LENGTH) return undefined;
      // RFC 952 / RFC 1123 §2.1: a label neither starts nor ends with a hyphen.
      if (s.charCodeAt(labelStart) === 0x2d || s.charCodeAt(i - 1) === 0x2d) return undefined;
      // "xn--" prefix (case-insensitive): an A-label whose punycode must be checked by ICU.
      if (
        len >= 4 &&
        (s.charCodeAt(labelStart) | 0x20) === 0x78 &&
        (s.charCodeAt(labelStart + 1) | 0x20) === 0x6e &&
        s.charCodeAt(labelStart + 2) === 0x2d &&
        s.charCodeAt(labelStart + 3) === 0x2d
      ) {
        return null;
      }
      lastLabelStart = labelStart;
      labelStart = i + 1;
    } else if (cls === 1 && c <= 0x5a) {
      upper = true;
    }
  }
  // WHATWG URL host parsing sends a name whose last label "is a number" (all digits, or 0x + hex) to the
  // IPv4 parser. Be conservative: any all-digit or "0x…" last label takes the slow path.
  if (isNumericLike(s, lastLabelStart, end)) return null;
  const name = start === 0 && end === s.length ? s : s.slice(start, end);
  return upper ? name.toLowerCase() : name;
}

/**
 * `normalizeHostname` for a name given as bytes (an SNI host_name, a Host header value without its port),
 * read as UTF-8. Plain lower-case LDH names, the usual case, become a string in one step with no further
 * validation pass; everything else goes through `normalizeHostname`. No trimming: callers have already
 * rejected or removed whitespace.
 * @internal
 */
export function normalizeHostnameBytes(b: Uint8Array, start: number, fullEnd: number): string | undefined {
  let end = fullEnd;
  if (end > start && b[end - 1] === 0x2e) end--;
  if (end === start || end - start > MAX_HOSTNAME_LENGTH) return undefined;
  let labelStart = start;
  let lastLabelStart = start;
  let upper = false;
  let slow = false;
  // FNV-1a over the lower-cased bytes, for the name cache below.
  let hash = 0x811c9dc5 | 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2e : b[i]!;
    const cls = c < 128 ? CHAR_CLASS[c]! : 0;
    if (cls === 0) {
      slow = true;
      break;
    }
    if (cls === 5) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL_LENGTH) return undefined;
      if (b[labelStart] === 0x2d || b[i - 1] === 0x2d) return undefined; // RFC 1123 §2.1
      if (
        len >= 4 &&
        (b[labelStart]! | 0x20) === 0x78 &&
        (b[labelStart + 1]! | 0x20) === 0x6e &&
        b[labelStart + 2] === 0x2d &&
        b[labelStart + 3] === 0x2d
      ) {
        slow = true;
        break;
      }
      lastLabelStart = labelStart;
      labelStart = i + 1;
      hash = Math.imul(hash ^ c, 0x01000193);
    } else if (cls === 1) {
      if (c <= 0x5a) upper = true;
      hash = Math.imul(hash ^ (c | 0x20), 0x01000193);
    } else {
      hash = Math.imul(hash ^ c, 0x01000193);
    }
  }
  if (!slow && !isNumericLikeBytes(b, lastLabelStart, end)) {
    // The same few names arrive on connection after connection: reuse the string made last time
    // instead of allocating one per connection. The fast path's result is exactly the lower-cased
    // bytes, so a cached string that equals them is the answer.
    const slot = (hash >>> 0) & (NAME_CACHE_SIZE - 1);
    const cached = NAME_CACHE[slot];
    if (cached !== undefined && cached.length === end - start) {
      let same = true;
      for (let i = start, k = 0; i < end; i++, k++) {
        const c = b[i]!;
        if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== cached.charCodeAt(k)) {
          same = false;
          break;
        }
      }
      if (same) return cached;
    }
    const raw = latin1(b, start, end);
    const name = upper ? raw.toLowerCase() : raw;
    NAME_CACHE[slot] = name;
    return name;
  }
  // Slow path on the original bytes: normalizeHostname drops the one trailing dot itself.
  let ascii = true;
  for (let i = start; i < fullEnd; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return normalizeHostname(latin1(b, start, fullEnd));
  try {
    return normalizeHostname(UTF8.decode(b.subarray(start, fullEnd)));
  } catch {
    return undefined;
  }
}

/** Direct-mapped cache of recently seen names (a power of two; about 1 024 short strings at most). */
const NAME_CACHE_SIZE = 1024;
const NAME_CACHE: (string | undefined)[] = new Array(NAME_CACHE_SIZE).fill(undefined);

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function isNumericLikeBytes(b: Uint8Array, start: number, end: number): boolean {
  if (end - start >= 2 && b[start] === 0x30 && (b[start + 1]! | 0x20) === 0x78) return true;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isNumericLike(s: string, start: number, end: number): boolean {
  if (end - start >= 2 && s.charCodeAt(start) === 0x30 && (s.charCodeAt(start + 1) | 0x20) === 0x78)
    return true;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function slowPath(name: string): string | undefined {
  if (isIPv4(name)) return name;
  let candidate = name;
  if (isIPv6(candidate)) candidate = `[${candidate}]`;
  if (candidate.charCodeAt(0) === 0x5b) {
    // Bracketed IPv6 literal (RFC 3986 §3.2.2); zone ids ("%25eth0") are not valid in a Host.
    if (candidate.charCodeAt(candidate.length - 1) !== 0x5d || candidate.indexOf('%') !== -1)
      return undefined;
    const ascii = safeDomainToASCII(candidate);
    return ascii !== '' && ascii.charCodeAt(0) === 0x5b ? ascii : undefined;
  }
  // domainToASCII parses its input like a URL host: it percent-decodes ("ex%41.com" → "exa.com") and
  // stops at '/', '?', '#' or a backslash ("a/b" → "a"). So every ASCII character must already be one a name may
  // hold; only non-ASCII characters are left for IDNA to map.
  for (let i = 0; i < candidate.length; i++) {
    const c = candidate.charCodeAt(i);
    if (c < 128 && CHAR_CLASS[c] === 0) return undefined;
  }
  const ascii = safeDomainToASCII(candidate);
  if (ascii === '' || ascii.length > MAX_HOSTNAME_LENGTH) return undefined;
  // Numeric forms the URL parser rewrote into an IPv4 address ("127.1", "0x7f.0.0.1") are refused: only
  // the canonical dotted quad is accepted, above.
  if (isIPv4(ascii)) return undefined;
  let labelStart = 0;
  for (let i = 0; i <= ascii.length; i++) {
    const c = i === ascii.length ? 0x2e : ascii.charCodeAt(i);
    const cls = c < 128 ? CHAR_CLASS[c]! : 0;
    if (cls === 0) return undefined;
    if (cls === 5) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL_LENGTH) return undefined;
      if (ascii.charCodeAt(labelStart) === 0x2d || ascii.charCodeAt(i - 1) === 0x2d) return undefined; // RFC 1123 §2.1
      labelStart = i + 1;
    }
  }
  // An A-label stands for a U-label, which may not start or end with a hyphen either (RFC 5891
  // §4.2.3.1): "-bücher" becomes "xn---bcher-4ya", whose own edges look fine.
  if (ascii.indexOf('xn--') !== -1 && !unicodeLabelsOk(ascii)) return undefined;
  return ascii;
}

function unicodeLabelsOk(ascii: string): boolean {
  let unicode: string;
  try {
    unicode = domainToUnicode(ascii);
  } catch {
    return false;
  }
  if (unicode === '') return false;
  for (const label of unicode.split('.')) {
    if (label.startsWith('-') || label.endsWith('-')) return false;
  }
  return true;
}

function safeDomainToASCII(s: string): string {
  try {
    return domainToASCII(s);
  } catch {
    // Last-resort guard: domainToASCII is not documented to throw, but this function must never do so.
    return '';
  }
}

/**
 * Parses a wildcard pattern (docs/protocol.md §3.2): `*.` followed by a valid name with at least one dot and no
 * further `*`. `*.example.com` → `{ suffix: 'example.com' }`; `*.com`, `*.*.example.com`, `a.*.com` and
 * `*example.com` → `undefined`. The suffix is normalised. Never throws.
 */
export function parseWildcard(pattern: string): WildcardPattern | undefined {
  if (typeof pattern !== 'string') return undefined;
  const trimmed = pattern.trim();
  if (trimmed.length < 3 || trimmed.charCodeAt(0) !== 0x2a || trimmed.charCodeAt(1) !== 0x2e)
    return undefined;
  const rest = trimmed.slice(2);
  if (rest.indexOf('*') !== -1) return undefined;
  const suffix = normalizeHostname(rest);
  if (suffix === undefined || suffix.indexOf('.') === -1 || suffix.charCodeAt(0) === 0x5b || isIPv4(suffix)) {
    return undefined;
  }
  // "*." + suffix must itself fit in a DNS name.
  if (suffix.length + 2 > MAX_HOSTNAME_LENGTH) return undefined;
  return { suffix };
}

/**
 * Normalises a route pattern: an exact hostname (via `normalizeHostname`) or a wildcard (returned as
 * `*.` + normalised suffix). IP literals are refused: a route is a DNS name. Returns `undefined` when
 * invalid. Never throws.
 */
export function normalizeHostnamePattern(pattern: string): string | undefined {
  if (typeof pattern !== 'string') return undefined;
  const wildcard = parseWildcard(pattern);
  if (wildcard !== undefined) return `*.${wildcard.suffix}`;
  if (pattern.indexOf('*') !== -1) return undefined;
  const name = normalizeHostname(pattern);
  if (name === undefined || name.charCodeAt(0) === 0x5b || isIPv4(name)) return undefined;
  return name;
}

/** True when `pattern` is a valid exact hostname or wildcard route pattern (see `normalizeHostnamePattern`). */
export function isValidHostnamePattern(pattern: string): boolean {
  return normalizeHostnamePattern(pattern) !== undefined;
}

/**
 * True when `hostname` is matched by `pattern`: equal after normalisation, or `pattern` is a wildcard and
 * `hostname` is exactly one extra label in front of its suffix (docs/protocol.md §3.2): `*.example.com` matches
 * `a.example.com` but neither `a.b.example.com` nor `example.com`. Both sides are normalised first; an
 * invalid side never matches. Never throws.
 */
export function matchesHostname(pattern: string, hostname: string): boolean {
  const host = normalizeHostname(hostname);
  if (host === undefined) return false;
  const wildcard = parseWildcard(pattern);
  if (wildcard === undefined) {
    if (typeof pattern !== 'string' || pattern.indexOf('*') !== -1) return false;
    return normalizeHostname(pattern) === host;
  }
  const { suffix } = wildcard;
  const labelLength = host.length - suffix.length - 1;
  if (labelLength < 1) return false;
  if (host.charCodeAt(labelLength) !== 0x2e || !host.endsWith(suffix)) return false;
  return host.lastIndexOf('.', labelLength - 1) === -1;
}
