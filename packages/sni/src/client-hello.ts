import { isIPv4 } from 'node:net';
import { ChunkReader } from './_accumulator.js';
import { internLatin1 } from './_bytes.js';
import { normalizeHostnameBytes } from './hostname.js';

/** Default cap on the bytes a ClientHello may occupy on the wire, record headers included (reference: 32 KiB). */
export const DEFAULT_MAX_CLIENT_HELLO_SIZE = 32 * 1024;
/** Largest TLSPlaintext fragment (RFC 8446 §5.1, RFC 5246 §6.2.1). */
export const MAX_TLS_RECORD_PAYLOAD = 16_384;
/** TLS record header: content type (1) · legacy_record_version (2) · length (2). */
export const TLS_RECORD_HEADER_LENGTH = 5;

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const EXT_ENCRYPTED_CLIENT_HELLO = 0xfe0d;
const SERVER_NAME_TYPE_HOST_NAME = 0;
/** legacy_version (2) + random (32) + session id length (1) + cipher suites length (2) + one suite (2) + compression (2). */
const MIN_CLIENT_HELLO_BODY = 41;

/** Options for `parseClientHello`. */
export interface ParseClientHelloOptions {
  /**
   * Largest number of bytes the ClientHello may occupy (all its TLS records, headers included). A larger
   * one yields `{ kind: 'too-large' }` as soon as that is certain (from the announced lengths), without
   * waiting for the bytes. Default: `32_768` bytes (`DEFAULT_MAX_CLIENT_HELLO_SIZE`).
   */
  maxSize?: number;
}

/** Why bytes were judged not to be a TLS ClientHello (stable strings, for logs and metrics). */
export type NotTlsReason =
  /** The first byte is not a TLS handshake record (content type 22). */
  | 'not-handshake-record'
  /** The first byte has its high bit set, as in an SSL 2.0-compatible CLIENT-HELLO (which cannot carry SNI). */
  | 'sslv2-hello'
  /** legacy_record_version is not 3.0–3.4. */
  | 'bad-record-version'
  /** A record length of 0 or above 2^14 (RFC 8446 §5.1). */
  | 'bad-record-length'
  /** Another record type (alert, change_cipher_spec, application_data) before the ClientHello was complete. */
  | 'interleaved-record'
  /** The handshake message is not a client_hello. */
  | 'not-client-hello'
  /** The records carry bytes beyond the end of the ClientHello message. */
  | 'trailing-data'
  /** The ClientHello body is inconsistent (lengths pointing past their container, bad vectors). */
  | 'malformed-client-hello'
  /** An extension's inner structure is inconsistent (server_name, ALPN). */
  | 'malformed-extension'
  /** server_name or ALPN offered twice (RFC 8446 §4.2): refused so no two parties route differently. */
  | 'duplicate-extension';

/** Result of `parseClientHello`: a union discriminated on `kind`. */
export type ClientHelloResult =
  /** The bytes so far are a valid prefix of a ClientHello: call again with more. */
  | { kind: 'incomplete' }
  /** Not (or no longer) a TLS ClientHello. */
  | { kind: 'not-tls'; reason: NotTlsReason }
  /** The ClientHello occupies (or announces) more than `limit` bytes. */
  | { kind: 'too-large'; limit: number }
  | ClientHelloInfo;

/** A complete, well-formed ClientHello. */
export interface ClientHelloInfo {
  kind: 'tls';
  /** The SNI host_name, normalised (docs/protocol.md §3.1); `undefined` when absent, empty, an IP literal or invalid. */
  serverName: string | undefined;
  /** ALPN protocol names in the client's order (RFC 7301 §3.1), GREASE values (RFC 8701) removed; `[]` if none. */
  alpn: string[];
  /** True when the encrypted_client_hello extension (0xfe0d) is present: `serverName` is then the outer name. */
  ech: boolean;
  /** Bytes occupied by the records carrying the ClientHello, headers included: the prelude length. */
  length: number;
  /** ClientHello.legacy_version, e.g. `0x0303` (TLS 1.3 negotiates the real version in an extension). */
  legacyVersion: number;
}

const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: 'incomplete' });
const NOT_TLS: { readonly [R in NotTlsReason]: ClientHelloResult } = Object.freeze({
  'not-handshake-record': Object.freeze({ kind: 'not-tls', reason: 'not-handshake-record' }),
  'sslv2-hello': Object.freeze({ kind: 'not-tls', reason: 'sslv2-hello' }),
  'bad-record-version': Object.freeze({ kind: 'not-tls', reason: 'bad-record-version' }),
  'bad-record-length': Object.freeze({ kind: 'not-tls', reason: 'bad-record-length' }),
  'interleaved-record': Object.freeze({ kind: 'not-tls', reason: 'interleaved-record' }),
  'not-client-hello': Object.freeze({ kind: 'not-tls', reason: 'not-client-hello' }),
  'trailing-data': Object.freeze({ kind: 'not-tls', reason: 'trailing-data' }),
  'malformed-client-hello': Object.freeze({ kind: 'not-tls', reason: 'malformed-client-hello' }),
  'malformed-extension': Object.freeze({ kind: 'not-tls', reason: 'malformed-extension' }),
  'duplicate-extension': Object.freeze({ kind: 'not-tls', reason: 'duplicate-extension' }),
});

/**
 * Parses a TLS ClientHello from the bytes received so far on a connection (the whole accumulated buffer,
 * starting at the connection's first byte). Call it again with the longer buffer after each read while it
 * returns `incomplete`.
 *
 * Handles a handshake message fragmented over several records (RFC 8446 §5.1) and any split of TCP
 * reads; decides `not-tls` and `too-large` as early as the bytes allow. Never throws and never reads
 * outside `bytes`; the returned `length` is never larger than `bytes.length`.
 *
 * @example
 * const r = parseClientHello(buffered);
 * if (r.kind === 'tls' && r.serverName) route(r.serverName, buffered.subarray(0, r.length));
 */
export function parseClientHello(bytes: Uint8Array, options?: ParseClientHelloOptions): ClientHelloResult {
  const maxSize = resolveMaxSize(options?.maxSize);
  try {
    return new RecordWalker().walk(bytes, maxSize);
  } catch {
    // Last-resort guard only: every read below is bounds-checked, so this is not expected to run.
    return NOT_TLS['malformed-client-hello'];
  }
}

/**
 * Reads a ClientHello from a connection's reads, one chunk at a time, in time linear in the bytes read
 * however they are split: the chunks are gathered into one growing buffer and the record walk resumes
 * where it stopped; the body is parsed once, when the records carrying it are complete. Gives, after each
 * chunk, the answer `parseClientHello` would give for everything pushed so far.
 *
 * @example
 * const reader = new ClientHelloReader();
 * socket.on('data', (chunk) => {
 *   const r = reader.push(chunk);
 *   if (r.kind === 'tls') route(r.serverName, reader.bytes);
 * });
 */
export class ClientHelloReader extends ChunkReader<ClientHelloResult> {
  readonly #maxSize: number;
  readonly #walker = new RecordWalker();
  protected readonly malformed = NOT_TLS['malformed-client-hello'];

  constructor(options?: ParseClientHelloOptions) {
    super(INCOMPLETE);
    this.#maxSize = resolveMaxSize(options?.maxSize);
  }

  protected scan(bytes: Buffer): ClientHelloResult {
    return this.#walker.walk(bytes, this.#maxSize);
  }

  protected get scanned(): number {
    return this.#walker.examined;
  }
}

function resolveMaxSize(value: number | undefined): number {
  if (typeof value === 'number' && value > 0 && value !== Number.POSITIVE_INFINITY) return Math.floor(value);
  return value === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : DEFAULT_MAX_CLIENT_HELLO_SIZE;
}

/**
 * Walks the TLS records (RFC 8446 §5.1) until the handshake message they carry is complete, validating
 * every header byte as soon as it arrives, then parses the ClientHello body.
 *
 * Resumable: the state of every complete record walked is kept, so a call with a longer buffer (the same
 * bytes plus more) continues where the last one stopped; only the current, incomplete record's header
 * (at most 5 + 4 bytes) is read again. A fresh walker over a whole buffer is the one-shot parse.
 */
class RecordWalker {
  /** Start of the first record not yet complete. */
  pos = 0;
  /** Complete records walked. */
  records = 0;
  /** Handshake bytes carried by the complete records walked. */
  hsCarried = 0;
  /** The 4-byte handshake header as accumulated by the complete records (it may itself be fragmented). */
  hsHeader = 0;
  hsHeaderSeen = 0;
  /** Total handshake message bytes (4-byte header + body), once the header is known; -1 before. */
  hsTotal = -1;
  /** Bytes looked at so far (headers re-read included): a measure of the work done. */
  examined = 0;
  /** Fragment length of the record at `pos` once its whole header has been validated; -1 before. */
  #headerFragLen = -1;

  walk(b: Uint8Array, maxSize: number): ClientHelloResult {
    const n = b.length;
    if (n === 0) return INCOMPLETE;
    for (;;) {
      const pos = this.pos;
      if (pos >= n) return INCOMPLETE;
      let fragLen = this.#headerFragLen;
      if (fragLen < 0) {
        this.examined += Math.min(TLS_RECORD_HEADER_LENGTH, n - pos);
        // Record header, validated byte by byte so garbage is refused on its first byte.
        const type = b[pos]!;
        if (type !== CONTENT_TYPE_HANDSHAKE) {
          if (this.records > 0) return NOT_TLS['interleaved-record'];
          // SSLv2-compatible CLIENT-HELLO: a 2-byte length with the high bit set (then msg_type 1). Decided
          // on the first byte alone, so the reason never changes as more bytes arrive.
          if ((type & 0x80) !== 0) return NOT_TLS['sslv2-hello'];
          return NOT_TLS['not-handshake-record'];
        }
        if (pos + 1 >= n) return INCOMPLETE;
        if (b[pos + 1] !== 3) return NOT_TLS['bad-record-version'];
        if (pos + 2 >= n) return INCOMPLETE;
        // TLS 1.0–1.3 use 3.1–3.4 (ClientHellos say 3.1 or 3.3 here); 3.0 is SSL 3.0, harmless to accept.
        if (b[pos + 2]! > 4) return NOT_TLS['bad-record-version'];
        if (pos + 4 >= n) return INCOMPLETE;
        fragLen = (b[pos + 3]! << 8) | b[pos + 4]!;
        // RFC 8446 §5.1: no zero-length handshake fragments, no fragment above 2^14.
        if (fragLen === 0 || fragLen > MAX_TLS_RECORD_PAYLOAD) return NOT_TLS['bad-record-length'];
        // Whole and valid: not read again while its fragment arrives.
        this.#headerFragLen = fragLen;
      }
      const fragStart = pos + TLS_RECORD_HEADER_LENGTH;
      const fragEnd = fragStart + fragLen;

      // Handshake header (msg_type · uint24 length), read from whatever part of this fragment is here.
      // Kept in locals: committed only with the record, so an incomplete record is read again next time.
      let hsHeader = this.hsHeader;
      let hsHeaderSeen = this.hsHeaderSeen;
      let hsTotal = this.hsTotal;
      if (hsHeaderSeen < 4) {
        const avail = Math.min(fragEnd, n);
        for (let i = fragStart; i < avail && hsHeaderSeen < 4; i++) {
          if (hsHeaderSeen === 0 && b[i] !== HANDSHAKE_TYPE_CLIENT_HELLO) return NOT_TLS['not-client-hello'];
          hsHeader = hsHeaderSeen === 0 ? 0 : hsHeader * 256 + b[i]!;
          hsHeaderSeen++;
          this.examined++;
        }
        if (hsHeaderSeen === 4) {
          if (hsHeader < MIN_CLIENT_HELLO_BODY) return NOT_TLS['malformed-client-hello'];
          hsTotal = 4 + hsHeader;
          // Decide early: even packed into the fewest records, the message cannot fit the cap.
          const minWire = hsTotal + TLS_RECORD_HEADER_LENGTH * Math.ceil(hsTotal / MAX_TLS_RECORD_PAYLOAD);
          if (minWire > maxSize) return { kind: 'too-large', limit: maxSize };
        }
      }
      // This record alone already ends beyond the cap: too large, whatever follows.
      if (fragEnd > maxSize) return { kind: 'too-large', limit: maxSize };
      if (fragEnd > n) return INCOMPLETE;

      this.records++;
      this.#headerFragLen = -1;
      this.hsCarried += fragLen;
      this.hsHeader = hsHeader;
      this.hsHeaderSeen = hsHeaderSeen;
      this.hsTotal = hsTotal;
      this.pos = fragEnd;
      if (hsTotal >= 0 && this.hsCarried >= hsTotal) {
        // Only the ClientHello may be in flight from a client before the server answers.
        if (this.hsCarried > hsTotal) return NOT_TLS['trailing-data'];
        return this.#parse(b);
      }
    }
  }

  /** The records `b[0, pos)` carry the whole ClientHello: parse it (once). */
  #parse(b: Uint8Array): ClientHelloResult {
    const { pos, hsTotal } = this;
    this.examined += pos;
    // The common case is a single record: parse in place. Otherwise join the fragments once.
    if (this.records === 1) return parseBody(b, TLS_RECORD_HEADER_LENGTH + 4, pos, pos);
    const joined = new Uint8Array(hsTotal);
    let out = 0;
    for (let p = 0; p < pos; ) {
      const len = (b[p + 3]! << 8) | b[p + 4]!;
      joined.set(b.subarray(p + TLS_RECORD_HEADER_LENGTH, p + TLS_RECORD_HEADER_LENGTH + len), out);
      out += len;
      p += TLS_RECORD_HEADER_LENGTH + len;
    }
    return parseBody(joined, 4, hsTotal, pos);
  }
}

/**
 * Parses a ClientHello body `b[start, end)` (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2 for TLS ≤ 1.2, where
 * extensions may be absent). `wireLength` is the record bytes it came in.
 */
function parseBody(b: Uint8Array, start: number, end: number, wireLength: number): ClientHelloResult {
  let p = start;
  if (end - p < MIN_CLIENT_HELLO_BODY) return NOT_TLS['malformed-client-hello'];
  if (b[p] !== 3) return NOT_TLS['malformed-client-hello'];
  const legacyVersion = (b[p]! << 8) | b[p + 1]!;
  p += 2 + 32;
  const sessionIdLen = b[p]!;
  if (sessionIdLen > 32) return NOT_TLS['malformed-client-hello'];
  p += 1 + sessionIdLen;
  if (p + 2 > end) return NOT_TLS['malformed-client-hello'];
  const suitesLen = (b[p]! << 8) | b[p + 1]!;
  if (suitesLen < 2 || (suitesLen & 1) !== 0) return NOT_TLS['malformed-client-hello'];
  p += 2 + suitesLen;
  if (p + 1 > end) return NOT_TLS['malformed-client-hello'];
  const compressionLen = b[p]!;
  if (compressionLen < 1) return NOT_TLS['malformed-client-hello'];
  p += 1 + compressionLen;
  if (p > end) return NOT_TLS['malformed-client-hello'];

  let serverName: string | undefined;
  let alpn: string[] | undefined;
  let ech = false;
  if (p < end) {
    if (p + 2 > end) return NOT_TLS['malformed-client-hello'];
    const extsLen = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    if (p + extsLen !== end) return NOT_TLS['malformed-client-hello'];
    let sawServerName = false;
    while (p < end) {
      if (p + 4 > end) return NOT_TLS['malformed-client-hello'];
      const extType = (b[p]! << 8) | b[p + 1]!;
      const extLen = (b[p + 2]! << 8) | b[p + 3]!;
      const dataStart = p + 4;
      const dataEnd = dataStart + extLen;
      if (dataEnd > end) return NOT_TLS['malformed-client-hello'];
      if (extType === EXT_SERVER_NAME) {
        if (sawServerName) return NOT_TLS['duplicate-extension'];
        sawServerName = true;
        const sni = parseServerName(b, dataStart, dataEnd);
        if (sni === MALFORMED) return NOT_TLS['malformed-extension'];
        serverName = sni;
      } else if (extType === EXT_ALPN) {
        if (alpn !== undefined) return NOT_TLS['duplicate-extension'];
        const list = parseAlpn(b, dataStart, dataEnd);
        if (list === undefined) return NOT_TLS['malformed-extension'];
        alpn = list;
      } else if (extType === EXT_ENCRYPTED_CLIENT_HELLO) {
        ech = true;
      }
      p = dataEnd;
    }
  }
  return { kind: 'tls', serverName, alpn: alpn ?? [], ech, length: wireLength, legacyVersion };
}

const MALFORMED: unique symbol = Symbol('malformed');

/**
 * server_name extension data (RFC 6066 §3): `ServerName server_name_list<1..2^16-1>`, each entry
 * `name_type (1) · opaque<1..2^16-1>`. Entries of other name types are skipped (every implementation
 * assumes the same length-prefixed layout for them). Returns the normalised host_name, `undefined` when
 * there is no usable one, or `MALFORMED` when the lengths are inconsistent.
 */
function parseServerName(b: Uint8Array, start: number, end: number): string | undefined | typeof MALFORMED {
  if (end - start < 2) return MALFORMED;
  const listLen = (b[start]! << 8) | b[start + 1]!;
  if (start + 2 + listLen !== end) return MALFORMED;
  let p = start + 2;
  let name: string | undefined;
  let sawHostName = false;
  let valid = true;
  while (p < end) {
    if (p + 3 > end) return MALFORMED;
    const nameType = b[p]!;
    const nameLen = (b[p + 1]! << 8) | b[p + 2]!;
    const nameStart = p + 3;
    const nameEnd = nameStart + nameLen;
    if (nameEnd > end) return MALFORMED;
    if (nameType === SERVER_NAME_TYPE_HOST_NAME) {
      // "The ServerNameList MUST NOT contain more than one name of the same name_type": ambiguous, no name.
      if (sawHostName) valid = false;
      sawHostName = true;
      name = decodeHostName(b, nameStart, nameEnd);
    }
    p = nameEnd;
  }
  return valid ? name : undefined;
}

/**
 * RFC 6066 §3: HostName is the ASCII name without a trailing dot; IDNs travel as A-labels and IP
 * literals are not permitted. Bytes are checked before any string is made, so hostile bytes never reach
 * a decoder.
 */
function decodeHostName(b: Uint8Array, start: number, end: number): string | undefined {
  const len = end - start;
  // 254 = 253 plus a trailing dot, which normalisation drops.
  if (len === 0 || len > 254) return undefined;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    const lc = c | 0x20;
    if (!((lc >= 0x61 && lc <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f)) {
      return undefined;
    }
  }
  const name = normalizeHostnameBytes(b, start, end);
  if (name === undefined) return undefined;
  // Only a dotted quad can end in a digit after normalisation (numeric-looking names are refused).
  const last = name.charCodeAt(name.length - 1);
  if (last >= 0x30 && last <= 0x39 && isIPv4(name)) return undefined;
  return name;
}

/** ALPN ids returned as shared strings instead of fresh ones (IANA registry; bytes decoded as latin1). */
const KNOWN_ALPN: readonly string[] = ['h2', 'http/1.1', 'http/1.0', 'acme-tls/1', 'h3'];

/** GREASE ALPN identifiers (RFC 8701 §2): two bytes, both 0x?A and equal. */
function isGreaseAlpn(b: Uint8Array, start: number, len: number): boolean {
  return len === 2 && b[start] === b[start + 1] && (b[start]! & 0x0f) === 0x0a;
}

/**
 * ALPN extension data (RFC 7301 §3.1): `ProtocolName protocol_name_list<2..2^16-1>`, each name
 * `opaque<1..2^8-1>` ("empty strings MUST NOT be included"). Returns `undefined` when malformed.
 */
function parseAlpn(b: Uint8Array, start: number, end: number): string[] | undefined {
  if (end - start < 2) return undefined;
  const listLen = (b[start]! << 8) | b[start + 1]!;
  if (listLen < 2 || start + 2 + listLen !== end) return undefined;
  const out: string[] = [];
  let p = start + 2;
  while (p < end) {
    const len = b[p]!;
    if (len === 0 || p + 1 + len > end) return undefined;
    if (!isGreaseAlpn(b, p + 1, len)) out.push(internLatin1(b, p + 1, p + 1 + len, KNOWN_ALPN));
    p += 1 + len;
  }
  return out;
}
