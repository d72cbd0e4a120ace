/**
 * The server side of a SOCKS5 handshake (RFC 1928): method negotiation with "no authentication" only,
 * then one CONNECT request for an IPv4, IPv6 or domain-name target, within a deadline.
 *
 * Written here rather than taken from npm: the SOCKS5 server packages we looked at either answer an
 * unsupported command with a malformed 2-byte reply and an unsupported address type with no reply at
 * all, and have no handshake deadline (`@pondwader/socks5-server`), or can refuse a request only with
 * "not allowed by ruleset" (`@mongodb-js/socksv5` and the other forks of `socksv5`), while the egress
 * needs its own reply codes (RFC 1928 §6) once the hub has answered. The handshake is about 40 bytes of
 * fixed layout; the relay after it is ordinary streams.
 */
import type { Socket } from 'node:net';
import { Socks5Error } from './errors.js';

/** RFC 1928 §6 reply codes. */
export const Socks5Reply = {
  Succeeded: 0x00,
  GeneralFailure: 0x01,
  NotAllowed: 0x02,
  NetworkUnreachable: 0x03,
  HostUnreachable: 0x04,
  ConnectionRefused: 0x05,
  TtlExpired: 0x06,
  CommandNotSupported: 0x07,
  AddressTypeNotSupported: 0x08,
} as const;

/** A CONNECT request. */
export interface Socks5Request {
  /** IPv4 dotted quad, IPv6 (compressed, no brackets) or the domain name as sent. */
  host: string;
  port: number;
  kind: 'ipv4' | 'ipv6' | 'domain';
}

const VERSION = 0x05;
const NO_AUTH = 0x00;
const NO_ACCEPTABLE_METHOD = 0xff;
const CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/** A reply with `code` and the bound address 0.0.0.0:0 (the node's address is not the device's to know). */
export function socks5Reply(code: number): Buffer {
  return Buffer.from([VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
}

/** How long a socket we ended may take to close before it is destroyed, ms. */
const END_LINGER_MS = 2_000;

/** Writes `bytes`, ends the socket, and destroys it if the client has not closed it soon after. */
export function endSocket(socket: Socket, bytes: Uint8Array): void {
  if (socket.destroyed) return;
  socket.end(bytes);
  setTimeout(() => socket.destroy(), END_LINGER_MS).unref();
}

/** `host:port` as `outbound_connect` carries it: IPv6 in brackets. */
export function socks5TargetAddr(request: Socks5Request): string {
  return request.kind === 'ipv6' ? `[${request.host}]:${request.port}` : `${request.host}:${request.port}`;
}

type Step<T> = { need: true } | { need: false; value: T; used: number };

/** The greeting: VER, NMETHODS, METHODS. */
function parseGreeting(buf: Buffer): Step<Buffer> {
  if (buf.length < 2) return { need: true };
  if (buf[0] !== VERSION) throw new Socks5Error(`not SOCKS5 (version byte ${buf[0]})`);
  const n = buf[1]!;
  if (n === 0) throw new Socks5Error('no authentication method offered');
  if (buf.length < 2 + n) return { need: true };
  return { need: false, value: buf.subarray(2, 2 + n), used: 2 + n };
}

/** The request: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT. */
function parseRequest(buf: Buffer): Step<Socks5Request> {
  if (buf.length < 5) return { need: true };
  if (buf[0] !== VERSION) throw new Socks5Error(`not SOCKS5 (version byte ${buf[0]})`);
  if (buf[1] !== CONNECT) {
    throw new Socks5Error(`command ${buf[1]} is not supported`, Socks5Reply.CommandNotSupported);
  }
  const atyp = buf[3];
  let length: number;
  if (atyp === ATYP_IPV4) length = 4 + 4 + 2;
  else if (atyp === ATYP_IPV6) length = 4 + 16 + 2;
  else if (atyp === ATYP_DOMAIN) length = 4 + 1 + buf[4]! + 2;
  else throw new Socks5Error(`address type ${atyp} is not supported`, Socks5Reply.AddressTypeNotSupported);
  if (buf.length < length) return { need: true };
  const port = buf.readUInt16BE(length - 2);
  let request: Socks5Request;
  if (atyp === ATYP_IPV4) {
    request = { host: [...buf.subarray(4, 8)].join('.'), port, kind: 'ipv4' };
  } else if (atyp === ATYP_IPV6) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(4 + i).toString(16));
    // The URL parser writes the compressed form (RFC 5952).
    request = { host: new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1), port, kind: 'ipv6' };
  } else {
    const name = buf.subarray(5, 5 + buf[4]!);
    if (name.length === 0) throw new Socks5Error('empty domain name', Socks5Reply.GeneralFailure);
    request = { host: name.toString('latin1'), port, kind: 'domain' };
  }
  return { need: false, value: request, used: length };
}

/**
 * Runs the handshake on `socket` up to the CONNECT request and resolves with it; the caller sends the
 * reply ({@link socks5Reply}). Bytes the client sent after the request (optimistic data) are put back
 * into the socket, to be read first. Rejects with `Socks5Error` when the client breaks the protocol,
 * offers no "no authentication", asks for another command or address type (each answered with its
 * reply code, then the socket is ended), closes, or does not finish within `timeoutMs`.
 */
export function socks5Handshake(socket: Socket, timeoutMs: number): Promise<Socks5Request> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    let greeted = false;
    const finish = (err: Socks5Error | undefined, request?: Socks5Request, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      if (err !== undefined) {
        if (err.reply !== undefined) endSocket(socket, socks5Reply(err.reply));
        else if (!socket.writableEnded) socket.destroy();
        reject(err);
        return;
      }
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      resolve(request!);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      try {
        if (!greeted) {
          const greeting = parseGreeting(buffered);
          if (greeting.need) return;
          if (!greeting.value.includes(NO_AUTH)) {
            endSocket(socket, Buffer.from([VERSION, NO_ACCEPTABLE_METHOD]));
            finish(new Socks5Error('the client offers no method without authentication'));
            return;
          }
          greeted = true;
          buffered = buffered.subarray(greeting.used);
          socket.write(Buffer.from([VERSION, NO_AUTH]));
        }
        const request = parseRequest(buffered);
        if (request.need) return;
        finish(undefined, request.value, buffered.subarray(request.used));
      } catch (err) {
        finish(err as Socks5Error);
      }
    };
    const onEnd = () => finish(new Socks5Error('the client left during the handshake'));
    const onError = (err: Error) =>
      finish(new Socks5Error(`socket error: ${err.message}`, undefined, { cause: err }));
    const timer = setTimeout(
      () => finish(new Socks5Error(`no SOCKS5 request within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
