/**
 * The STUN messages the node's Binding server reads and writes (RFC 8489, which obsoletes RFC 5389 and
 * keeps its wire format): a Binding request in, a success response with XOR-MAPPED-ADDRESS (or a 420
 * error listing unknown comprehension-required attributes) out, both with FINGERPRINT.
 *
 * Why a codec of our own rather than a package: the npm `stun` package (the only maintained-looking one)
 * last changed years ago and pulls in `ip` (an open advisory on its address checks), `parse-url` and a CLI
 * parser at run time; the server needs four attributes and a CRC-32 that `node:zlib` provides. Parsing is
 * total: any input yields a request or a named reason to drop it, never an exception.
 */
import { crc32 } from 'node:zlib';
import ipaddr from 'ipaddr.js';

/** The magic cookie every RFC 5389/8489 message carries at bytes 4–7. */
export const STUN_MAGIC_COOKIE = 0x2112a442;
/** Header length, bytes. */
export const STUN_HEADER_BYTES = 20;
/** Binding request (method 0x001, class request). */
export const STUN_BINDING_REQUEST = 0x0001;
/** Binding success response. */
export const STUN_BINDING_SUCCESS = 0x0101;
/** Binding error response. */
export const STUN_BINDING_ERROR = 0x0111;

/** Attribute types the server reads or writes. */
export const StunAttribute = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  Realm: 0x0014,
  Nonce: 0x0015,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  Fingerprint: 0x8028,
} as const;

/**
 * Comprehension-required attributes (type < 0x8000) that RFC 8489 defines. A request carrying any other
 * one gets a 420 response (RFC 8489 §6.3.1). The credential attributes are understood and ignored: this
 * server does not authenticate (a Binding answer tells the client nothing it did not send).
 */
const KNOWN_REQUIRED = new Set<number>([
  StunAttribute.MappedAddress,
  StunAttribute.Username,
  StunAttribute.MessageIntegrity,
  StunAttribute.ErrorCode,
  StunAttribute.UnknownAttributes,
  StunAttribute.Realm,
  StunAttribute.Nonce,
  StunAttribute.MessageIntegritySha256,
  StunAttribute.PasswordAlgorithm,
  StunAttribute.Userhash,
  StunAttribute.XorMappedAddress,
]);

/** XOR'ed into the CRC-32 of FINGERPRINT ("STUN"). */
const FINGERPRINT_XOR = 0x5354554e;
/** Size of a FINGERPRINT attribute, bytes. */
const FINGERPRINT_BYTES = 8;

/** Why a datagram is not answered. */
export type StunDropReason =
  /** Shorter than a header, or the header's length disagrees with the datagram. */
  | 'malformed'
  /** Not an RFC 5389/8489 message (first two bits, magic cookie). Classic RFC 3489 requests land here. */
  | 'not-stun'
  /** A well-formed message that is not a Binding request (an indication, a response, another method). */
  | 'not-binding-request'
  /** An attribute runs past the message, or FINGERPRINT is misplaced or wrong. */
  | 'bad-attribute';

/** A Binding request that deserves an answer. */
export interface StunBindingRequest {
  readonly kind: 'binding-request';
  /** The 12-byte transaction id, a copy. */
  readonly transactionId: Buffer;
  /** Comprehension-required attribute types the server does not know, de-duplicated, in order. */
  readonly unknownRequired: readonly number[];
}

/** What {@link parseStunRequest} makes of a datagram. */
export type StunParseResult = StunBindingRequest | { readonly kind: 'drop'; readonly reason: StunDropReason };

const drop = (reason: StunDropReason): StunParseResult => ({ kind: 'drop', reason });

/** Reads a datagram as a Binding request; anything else is a drop with its reason. Never throws. */
export function parseStunRequest(datagram: Buffer): StunParseResult {
  if (datagram.length < STUN_HEADER_BYTES) return drop('malformed');
  const type = datagram.readUInt16BE(0);
  if ((type & 0xc000) !== 0 || datagram.readUInt32BE(4) !== STUN_MAGIC_COOKIE) return drop('not-stun');
  const length = datagram.readUInt16BE(2);
  if (length % 4 !== 0 || STUN_HEADER_BYTES + length !== datagram.length) return drop('malformed');
  if (type !== STUN_BINDING_REQUEST) return drop('not-binding-request');
  const unknown: number[] = [];
  let offset = STUN_HEADER_BYTES;
  while (offset < datagram.length) {
    if (offset + 4 > datagram.length) return drop('bad-attribute');
    const attrType = datagram.readUInt16BE(offset);
    const attrLength = datagram.readUInt16BE(offset + 2);
    const end = offset + 4 + attrLength;
    if (end > datagram.length) return drop('bad-attribute');
    if (attrType === StunAttribute.Fingerprint) {
      // FINGERPRINT is last (RFC 8489 §14.7) and covers everything before it.
      if (attrLength !== 4 || end !== datagram.length) return drop('bad-attribute');
      const expected = (crc32(datagram.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0;
      if (datagram.readUInt32BE(offset + 4) !== expected) return drop('bad-attribute');
    } else if (attrType < 0x8000 && !KNOWN_REQUIRED.has(attrType) && !unknown.includes(attrType)) {
      unknown.push(attrType);
    }
    offset = end + ((4 - (attrLength % 4)) % 4);
  }
  if (offset !== datagram.length) return drop('bad-attribute');
  return {
    kind: 'binding-request',
    transactionId: Buffer.from(datagram.subarray(8, STUN_HEADER_BYTES)),
    unknownRequired: unknown,
  };
}

/** An attribute: type, length, value, zero padding to 4 bytes. */
function attribute(type: number, value: Buffer): Buffer {
  const padded = Buffer.alloc(4 + value.length + ((4 - (value.length % 4)) % 4));
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

/** A message of `type` with `attributes`, then FINGERPRINT. */
function message(type: number, transactionId: Buffer, attributes: Buffer[]): Buffer {
  const body = Buffer.concat(attributes);
  const out = Buffer.alloc(STUN_HEADER_BYTES + body.length + FINGERPRINT_BYTES);
  out.writeUInt16BE(type, 0);
  // The length counts FINGERPRINT, which is computed over the header as sent.
  out.writeUInt16BE(body.length + FINGERPRINT_BYTES, 2);
  out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(out, 8, 0, 12);
  body.copy(out, STUN_HEADER_BYTES);
  const at = STUN_HEADER_BYTES + body.length;
  out.writeUInt16BE(StunAttribute.Fingerprint, at);
  out.writeUInt16BE(4, at + 2);
  out.writeUInt32BE((crc32(out.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0, at + 4);
  return out;
}

/**
 * The XOR-MAPPED-ADDRESS value of `address:port` (RFC 8489 §14.2): the port XOR the cookie's top half,
 * the address XOR the cookie (IPv4) or the cookie and transaction id (IPv6). An IPv4-mapped IPv6 source
 * (a dual-stack socket) is reported as IPv4, the address the client actually has.
 */
export function xorMappedAddress(address: string, port: number, transactionId: Buffer): Buffer {
  let ip: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(address.split('%', 1)[0] ?? address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  }
  const bytes = ip.toByteArray();
  const value = Buffer.alloc(4 + bytes.length);
  value.writeUInt8(ip.kind() === 'ipv4' ? 0x01 : 0x02, 1);
  value.writeUInt16BE((port ^ (STUN_MAGIC_COOKIE >>> 16)) & 0xffff, 2);
  const key = Buffer.alloc(16);
  key.writeUInt32BE(STUN_MAGIC_COOKIE, 0);
  transactionId.copy(key, 4, 0, 12);
  bytes.forEach((b, i) => {
    value[4 + i] = b ^ (key[i] ?? 0);
  });
  return value;
}

/** The Binding success response telling the client `address:port`. */
export function bindingSuccess(transactionId: Buffer, address: string, port: number): Buffer {
  return message(STUN_BINDING_SUCCESS, transactionId, [
    attribute(StunAttribute.XorMappedAddress, xorMappedAddress(address, port, transactionId)),
  ]);
}

/** The 420 (Unknown Attribute) error response listing `unknown` (RFC 8489 §14.8, §14.9). */
export function bindingUnknownAttributes(transactionId: Buffer, unknown: readonly number[]): Buffer {
  const reason = Buffer.from('Unknown Attribute', 'utf8');
  const errorCode = Buffer.alloc(4 + reason.length);
  errorCode.writeUInt8(4, 2);
  errorCode.writeUInt8(20, 3);
  reason.copy(errorCode, 4);
  const list = Buffer.alloc(unknown.length * 2);
  for (const [i, t] of unknown.entries()) list.writeUInt16BE(t, i * 2);
  return message(STUN_BINDING_ERROR, transactionId, [
    attribute(StunAttribute.ErrorCode, errorCode),
    attribute(StunAttribute.UnknownAttributes, list),
  ]);
}

/** A Binding request with an optional FINGERPRINT (clients, tests). */
export function bindingRequest(transactionId: Buffer, options: { fingerprint?: boolean } = {}): Buffer {
  if (options.fingerprint === false) {
    const out = Buffer.alloc(STUN_HEADER_BYTES);
    out.writeUInt16BE(STUN_BINDING_REQUEST, 0);
    out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
    transactionId.copy(out, 8, 0, 12);
    return out;
  }
  return message(STUN_BINDING_REQUEST, transactionId, []);
}
