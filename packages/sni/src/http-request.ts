import { ChunkReader } from './_accumulator.js';
import { bytesEqual, internLatin1, latin1 } from './_bytes.js';
import { normalizeHostname, normalizeHostnameBytes } from './hostname.js';

/** Default cap on an HTTP request head, request line to blank line inclusive (reference: 64 KiB). */
export const DEFAULT_MAX_HTTP_HEAD_SIZE = 64 * 1024;
/** Longest method token accepted; registered methods are at most 17 characters. */
export const MAX_HTTP_METHOD_LENGTH = 32;
/**
 * How much of the request line is validated while the head is still incomplete: enough to refuse TLS or
 * binary at once. (The check resumes where it stopped, so its cost is linear either way.)
 */
const EARLY_CHECK_BYTES = 1024;

/** Options for `sniffHttpRequest`. */
export interface SniffHttpRequestOptions {
  /**
   * Largest request head, in bytes, from the first byte to the end of the blank line. A head without its
   * blank line within that many bytes yields `{ kind: 'too-large' }`. Default: `65_536` bytes
   * (`DEFAULT_MAX_HTTP_HEAD_SIZE`).
   */
  maxSize?: number;
}

/** Why bytes were judged not to be an HTTP/1.x request head (stable strings, for logs and metrics). */
export type NotHttpReason =
  /** The method is not a token (RFC 9110 §9.1), is empty or longer than 32 characters. */
  | 'invalid-method'
  /** The request target is empty, contains control characters, or is in no form of RFC 9112 §3.2. */
  | 'invalid-target'
  /** The request line does not end in `HTTP/<digit>.<digit>`. */
  | 'invalid-version'
  /** A well-formed version other than HTTP/1.x (HTTP/2 prior-knowledge preface, HTTP/0.9-like). */
  | 'unsupported-version'
  /** A header line with no colon or an invalid field-name character (RFC 9110 §5.1). */
  | 'malformed-header'
  /** Whitespace between field name and colon: RFC 9112 §5.1 says a server MUST reject it. */
  | 'space-before-colon'
  /** A line folded onto the previous one (obs-fold, RFC 9112 §5.2). */
  | 'obs-fold'
  /** A control character in a field value, or a CR not followed by LF (RFC 9112 §2.2). */
  | 'invalid-header-value';

/** Reasons a well-formed head cannot be routed by host. */
export type BadHostReason = 'missing-host' | 'duplicate-host' | 'malformed-host';

/** Result of `sniffHttpRequest`: a union discriminated on `kind`. */
export type HttpSniffResult =
  /** A valid prefix of a request head: call again with more bytes. */
  | { kind: 'incomplete' }
  /** Not an HTTP/1.x request head. */
  | { kind: 'not-http'; reason: NotHttpReason }
  /** No blank line within `limit` bytes. */
  | { kind: 'too-large'; limit: number }
  /** A well-formed head whose host cannot be used. */
  | { kind: 'bad-host'; reason: BadHostReason }
  | HttpRequestInfo;

/** A complete, well-formed HTTP/1.x request head. */
export interface HttpRequestInfo {
  kind: 'http';
  /**
   * The host to route by, normalised (docs/protocol.md §3.1), port stripped: from the request target when it is
   * in absolute form (RFC 9112 §3.2.2) or authority form (CONNECT), else from the Host header. An IPv6
   * literal keeps its brackets (`[::1]`).
   */
  host: string;
  /** The request method, as sent (methods are case-sensitive). */
  method: string;
  /**
   * The path and query: the request target itself in origin form; the part after the authority in
   * absolute form (`/` when empty); `*` in asterisk form; the authority for CONNECT.
   */
  path: string;
  /** The protocol version token as sent: `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** Bytes from the start to the end of the blank line that ends the head: the prelude length. */
  headLength: number;
}

const INCOMPLETE: HttpSniffResult = Object.freeze({ kind: 'incomplete' });
const NOT_HTTP_REASONS: readonly NotHttpReason[] = [
  'invalid-method',
  'invalid-target',
  'invalid-version',
  'unsupported-version',
  'malformed-header',
  'space-before-colon',
  'obs-fold',
  'invalid-header-value',
];
const NOT_HTTP = NOT_HTTP_REASONS.map((reason) => Object.freeze({ kind: 'not-http' as const, reason }));
const BAD_HOST: { readonly [R in BadHostReason]: HttpSniffResult } = Object.freeze({
  'missing-host': Object.freeze({ kind: 'bad-host', reason: 'missing-host' }),
  'duplicate-host': Object.freeze({ kind: 'bad-host', reason: 'duplicate-host' }),
  'malformed-host': Object.freeze({ kind: 'bad-host', reason: 'malformed-host' }),
});

// Negative scan results are errors: -(index in NOT_HTTP_REASONS) - 2. -1 means "need more bytes".
const NEED_MORE = -1;
const E_METHOD = -2;
const E_TARGET = -3;
const E_VERSION = -4;
const E_UNSUPPORTED = -5;
const E_HEADER = -6;
const E_SPACE_COLON = -7;
const E_OBS_FOLD = -8;
const E_VALUE = -9;

function notHttp(code: number): HttpSniffResult {
  return NOT_HTTP[-code - 2]!;
}

/** tchar (RFC 9110 §5.6.2): the characters of a method or field name. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Field-value bytes (RFC 9110 §5.5): 1 = VCHAR or obs-text, 2 = SP or HTAB, 0 = anything else. */
const VALUE_CHAR = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) VALUE_CHAR[c] = 1;
for (let c = 0x80; c < 0x100; c++) VALUE_CHAR[c] = 1;
VALUE_CHAR[0x20] = 2;
VALUE_CHAR[0x09] = 2;

/** Request-target bytes: VCHAR and obs-text (RFC 9110 §5.5). */
function isVisible(c: number): boolean {
  return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

/**
 * Sniffs an HTTP/1.x request head from the bytes received so far on a connection (the whole
 * accumulated buffer). Call again with the longer buffer while it returns `incomplete`.
 *
 * Refuses non-HTTP bytes (a TLS record, binary) on the first byte that cannot belong to a request line.
 * Accepts CRLF and bare-LF line ends; matches header names case-insensitively; a malformed head is
 * `not-http`, a well-formed head without one usable host is `bad-host`. Never throws; `headLength` is
 * never larger than `bytes.length`.
 *
 * @example
 * const r = sniffHttpRequest(buffered);
 * if (r.kind === 'http') route(r.host, buffered.subarray(0, r.headLength));
 */
export function sniffHttpRequest(bytes: Uint8Array, options?: SniffHttpRequestOptions): HttpSniffResult {
  const maxSize = resolveMaxSize(options?.maxSize);
  try {
    return new HeadScan().scan(bytes, maxSize);
  } catch {
    // Last-resort guard only: every read is bounds-checked, so this is not expected to run.
    return notHttp(E_HEADER);
  }
}

/**
 * Reads an HTTP/1.x request head from a connection's reads, one chunk at a time, in time linear in the
 * bytes read however they are split: the chunks are gathered into one growing buffer, the search for the
 * blank line and the check of the request line resume where they stopped, and the head is parsed once,
 * when its blank line has arrived. Gives, after each chunk, the answer `sniffHttpRequest` would give for
 * everything pushed so far.
 */
export class HttpHeadReader extends ChunkReader<HttpSniffResult> {
  readonly #maxSize: number;
  readonly #scan = new HeadScan();
  protected readonly malformed = notHttp(E_HEADER);

  constructor(options?: SniffHttpRequestOptions) {
    super(INCOMPLETE);
    this.#maxSize = resolveMaxSize(options?.maxSize);
  }

  protected scan(bytes: Buffer): HttpSniffResult {
    return this.#scan.scan(bytes, this.#maxSize);
  }

  protected get scanned(): number {
    return this.#scan.examined;
  }
}

function resolveMaxSize(value: number | undefined): number {
  if (typeof value === 'number' && value > 0 && value !== Number.POSITIVE_INFINITY) return Math.floor(value);
  return value === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : DEFAULT_MAX_HTTP_HEAD_SIZE;
}

/**
 * The state of sniffing one head, resumable: `scan` may be called again with a longer buffer (the same
 * bytes plus more) and only looks at what it has not seen. A fresh one over a whole buffer is the one-shot
 * sniff.
 */
class HeadScan {
  /** Where the search for the blank line resumes: no line feed before it can start one. */
  #searchFrom = 0;
  /** The early check of the request line, resumed as bytes arrive. */
  readonly #line = newLineScan();
  /** Bytes looked at so far: a measure of the work done. */
  examined = 0;

  scan(b: Uint8Array, maxSize: number): HttpSniffResult {
    const n = b.length;
    if (n === 0) return INCOMPLETE;
    const scanEnd = Math.min(n, maxSize);
    const headLength = this.#findHeadEnd(b, scanEnd);
    if (headLength < 0) {
      // Validate the beginning of the request line so TLS, binary or garbage is refused at once.
      // Never look past the cap, so a prefix that is already too-large stays too-large as bytes arrive.
      const earlyEnd = Math.min(scanEnd, EARLY_CHECK_BYTES);
      if (this.#line.phase !== LINE_DONE && earlyEnd > this.#line.i) {
        const from = this.#line.i;
        const early = scanRequestLine(b, earlyEnd, this.#line);
        this.examined += this.#line.i - from;
        if (early < NEED_MORE) return notHttp(early);
      }
      return n >= maxSize ? { kind: 'too-large', limit: maxSize } : INCOMPLETE;
    }
    this.examined += headLength;
    return parseHead(b, headLength);
  }

  /**
   * Index just past the first empty line (`\n\n` or `\n\r\n`) within `b[0, end)`, or -1. Resumes at the
   * last line feed whose successors had not all arrived, so each byte is searched about once over all
   * calls (by `Buffer#indexOf`, memchr-fast, which accepts any Uint8Array).
   */
  #findHeadEnd(b: Uint8Array, end: number): number {
    const buf = (b as Buffer).subarray(0, end);
    let i = this.#searchFrom;
    for (;;) {
      const lf = indexOf.call(buf, 0x0a, i);
      if (lf === -1) {
        this.examined += end - i;
        this.#searchFrom = end;
        return -1;
      }
      this.examined += lf + 1 - i;
      const next = lf + 1 < end ? b[lf + 1] : -1;
      if (next === -1 || (next === 0x0d && lf + 2 >= end)) {
        // What follows this line feed has not all arrived: look at it again next time.
        this.#searchFrom = lf;
        return -1;
      }
      if (next === 0x0a) return lf + 2;
      if (next === 0x0d && b[lf + 2] === 0x0a) return lf + 3;
      i = lf + 1;
    }
  }
}

const indexOf = Buffer.prototype.indexOf;

/** Progress of {@link scanRequestLine} through the request line. */
interface LineScan {
  /** 0 method, 1 target, 2 version, 3 line end, 4 LF after CR, 5 done. */
  phase: number;
  /** Next byte to look at. */
  i: number;
  methodEnd: number;
  targetStart: number;
  targetEnd: number;
  versionStart: number;
}
const LINE_DONE = 5;

function newLineScan(): LineScan {
  return { phase: 0, i: 0, methodEnd: 0, targetStart: 0, targetEnd: 0, versionStart: 0 };
}

/**
 * Validates the request line (RFC 9112 §3) in `b[0, end)`: `method SP request-target SP HTTP/d.d` then
 * CRLF or LF. Returns the index after the line end, `NEED_MORE` when `end` came first and everything so
 * far is valid, or a negative error code. Resumable: with `NEED_MORE`, `s` holds where it stopped, and a
 * call with a larger `end` continues from there.
 */
function scanRequestLine(b: Uint8Array, end: number, s: LineScan): number {
  let i = s.i;
  const needMore = (): number => {
    s.i = i;
    return NEED_MORE;
  };
  if (s.phase === 0) {
    while (i < end && TCHAR[b[i]!] === 1) i++;
    if (i > MAX_HTTP_METHOD_LENGTH) return E_METHOD;
    if (i === end) return needMore();
    if (i === 0 || b[i] !== 0x20) return E_METHOD;
    s.methodEnd = i;
    i++;
    s.targetStart = i;
    s.phase = 1;
  }
  if (s.phase === 1) {
    while (i < end && isVisible(b[i]!)) i++;
    if (i === end) return needMore();
    if (i === s.targetStart || b[i] !== 0x20) return E_TARGET;
    s.targetEnd = i;
    i++;
    s.versionStart = i;
    s.phase = 2;
  }
  if (s.phase === 2) {
    // "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3; case-sensitive).
    const pattern = 'HTTP/0.0';
    for (let k = i - s.versionStart; k < pattern.length; k++, i++) {
      if (i === end) return needMore();
      const c = b[i]!;
      if (k === 5 || k === 7) {
        if (c < 0x30 || c > 0x39) return E_VERSION;
      } else if (c !== pattern.charCodeAt(k)) {
        return E_VERSION;
      }
    }
    s.phase = 3;
  }
  if (s.phase === 3) {
    if (i === end) return needMore();
    if (b[i] === 0x0d) {
      i++;
      s.phase = 4;
      if (i === end) return needMore();
    }
  }
  if (s.phase === 3 || s.phase === 4) {
    if (b[i] !== 0x0a) return E_VERSION;
    if (b[s.versionStart + 5] !== 0x31) return E_UNSUPPORTED;
    s.phase = LINE_DONE;
    s.i = i + 1;
  }
  return s.i;
}

// Host header value span found by parseHead.
let hostStart = 0;
let hostEnd = 0;

/** Parses a complete head `b[0, headLength)`. */
function parseHead(b: Uint8Array, headLength: number): HttpSniffResult {
  const line = newLineScan();
  const lineEnd = scanRequestLine(b, headLength, line);
  // The head holds a blank line, so the request line cannot "need more": NEED_MORE means malformed too.
  if (lineEnd < 0) return notHttp(lineEnd === NEED_MORE ? E_VERSION : lineEnd);
  const mEnd = line.methodEnd;
  const tStart = line.targetStart;
  const tEnd = line.targetEnd;
  const vStart = line.versionStart;

  let hosts = 0;
  let i = lineEnd;
  for (;;) {
    // Blank line: end of head (findHeadEnd guarantees it is at headLength).
    let c = b[i]!;
    if (c === 0x0a) break;
    if (c === 0x0d && b[i + 1] === 0x0a) break;
    if (c === 0x20 || c === 0x09) return notHttp(E_OBS_FOLD);
    const nameStart = i;
    while (TCHAR[b[i]!] === 1) i++;
    c = b[i]!;
    if (c !== 0x3a) {
      if (i > nameStart && (c === 0x20 || c === 0x09)) {
        let j = i;
        while (b[j] === 0x20 || b[j] === 0x09) j++;
        if (b[j] === 0x3a) return notHttp(E_SPACE_COLON);
      }
      return notHttp(E_HEADER);
    }
    if (i === nameStart) return notHttp(E_HEADER);
    const isHost =
      i - nameStart === 4 &&
      (b[nameStart]! | 0x20) === 0x68 &&
      (b[nameStart + 1]! | 0x20) === 0x6f &&
      (b[nameStart + 2]! | 0x20) === 0x73 &&
      (b[nameStart + 3]! | 0x20) === 0x74;
    i++;
    // field-value: OWS *( VCHAR / obs-text / SP / HTAB ) OWS, then CRLF or LF.
    while (b[i] === 0x20 || b[i] === 0x09) i++;
    const valueStart = i;
    let valueEnd = i;
    for (;;) {
      c = b[i]!;
      const cls = VALUE_CHAR[c];
      if (cls === 1) valueEnd = i + 1;
      else if (cls !== 2) {
        if (c === 0x0a) break;
        if (c === 0x0d && b[i + 1] === 0x0a) break;
        // A control character, a bare CR, or the end of the buffer (not reached: the head ends in LF).
        return notHttp(E_VALUE);
      }
      i++;
    }
    i += c === 0x0d ? 2 : 1;
    if (isHost) {
      hosts++;
      hostStart = valueStart;
      hostEnd = valueEnd;
    }
  }

  const method = internLatin1(b, 0, mEnd, KNOWN_METHODS);
  // Only HTTP/1.x gets here; the two real versions are shared strings.
  const minor = b[vStart + 7];
  const version = minor === 0x31 ? 'HTTP/1.1' : minor === 0x30 ? 'HTTP/1.0' : latin1(b, vStart, vStart + 8);
  const first = b[tStart]!;
  let path: string;
  let authorityStart = -1;
  let authorityEnd = -1;
  if (first === 0x2f) {
    path = tEnd - tStart === 1 ? '/' : latin1(b, tStart, tEnd);
  } else if (first === 0x2a && tEnd - tStart === 1) {
    path = '*';
  } else if (mEnd === 7 && bytesEqual(b, 0, 7, 'CONNECT')) {
    // authority-form (RFC 9112 §3.2.3): only for CONNECT.
    path = latin1(b, tStart, tEnd);
    authorityStart = tStart;
    authorityEnd = tEnd;
  } else {
    authorityEnd = splitAbsoluteForm(b, tStart, tEnd);
    if (authorityEnd < 0) return notHttp(E_TARGET);
    authorityStart = authStart;
    // The rest is the path and query.
    path =
      authorityEnd === tEnd
        ? '/'
        : b[authorityEnd] === 0x2f
          ? latin1(b, authorityEnd, tEnd)
          : `/${latin1(b, authorityEnd, tEnd)}`;
  }

  if (hosts > 1) return BAD_HOST['duplicate-host'];
  let headerHost: string | undefined;
  if (hosts === 1) {
    if (hostEnd === hostStart) {
      if (authorityStart < 0) return BAD_HOST['missing-host'];
    } else {
      headerHost = parseHostPort(b, hostStart, hostEnd);
      if (headerHost === undefined) return BAD_HOST['malformed-host'];
    }
  }
  let host: string | undefined;
  if (authorityStart >= 0) {
    // RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored for routing. userinfo
    // ("user@host") is deprecated (RFC 9110 §4.2.4) and a classic way to disguise a host: refused.
    for (let i = authorityStart; i < authorityEnd; i++) if (b[i] === 0x40) return BAD_HOST['malformed-host'];
    host = parseHostPort(b, authorityStart, authorityEnd);
    if (host === undefined) return BAD_HOST['malformed-host'];
  } else {
    if (headerHost === undefined) return BAD_HOST['missing-host'];
    host = headerHost;
  }
  return { kind: 'http', host, method, path, version, headLength };
}

/** Methods returned as shared strings (RFC 9110 §9 and common extensions). */
const KNOWN_METHODS: readonly string[] = [
  'GET',
  'POST',
  'HEAD',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'CONNECT',
];

let authStart = 0;

/**
 * absolute-form (RFC 9112 §3.2.2): `scheme "://" authority [ path-abempty ] [ "?" query ]`. Sets
 * `authStart` and returns the index where the authority ends, or -1 when the target is not of that form.
 */
function splitAbsoluteForm(b: Uint8Array, start: number, end: number): number {
  let i = start;
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
  const c0 = b[i]! | 0x20;
  if (c0 < 0x61 || c0 > 0x7a) return -1;
  i++;
  while (i < end) {
    const c = b[i]!;
    const lc = c | 0x20;
    if ((lc >= 0x61 && lc <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) i++;
    else break;
  }
  if (i + 3 > end || b[i] !== 0x3a || b[i + 1] !== 0x2f || b[i + 2] !== 0x2f) return -1;
  i += 3;
  authStart = i;
  while (i < end && b[i] !== 0x2f && b[i] !== 0x3f && b[i] !== 0x23) i++;
  if (i === authStart) return -1;
  return i;
}

/**
 * `uri-host [ ":" port ]` in `b[start, end)` (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3) → normalised host,
 * or `undefined`. An IPv6 literal must be bracketed; the port must be digits (at most 65535) and may be
 * empty. Raw UTF-8 (a non-conforming client sending an IDN) is decoded strictly and converted.
 */
function parseHostPort(b: Uint8Array, start: number, end: number): string | undefined {
  let hostEnd = end;
  if (b[start] === 0x5b) {
    let close = start + 1;
    while (close < end && b[close] !== 0x5d) close++;
    if (close === end) return undefined;
    hostEnd = close + 1;
  } else {
    for (let i = start; i < end; i++) {
      if (b[i] === 0x3a) {
        hostEnd = i;
        break;
      }
    }
  }
  if (hostEnd < end) {
    if (b[hostEnd] !== 0x3a || end - hostEnd > 6) return undefined;
    let port = 0;
    for (let i = hostEnd + 1; i < end; i++) {
      const c = b[i]!;
      if (c < 0x30 || c > 0x39) return undefined;
      port = port * 10 + (c - 0x30);
    }
    if (port > 65_535) return undefined;
  }
  if (hostEnd === start) return undefined;
  // A host is never padded: whitespace or controls inside are invalid (normalizeHostname would trim).
  for (let i = start; i < hostEnd; i++) {
    const c = b[i]!;
    if (c <= 0x20 || c === 0x7f) return undefined;
  }
  if (b[start] === 0x5b) return normalizeHostname(latin1(b, start, hostEnd));
  return normalizeHostnameBytes(b, start, hostEnd);
}
