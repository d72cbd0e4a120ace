/**
 * The HTTP-01 side of the ACME block (RFC 8555 §8.3, docs/protocol.md §4.2): a plain-HTTP end-user connection
 * for the node's own hostname asking for `/.well-known/acme-challenge/<token>` is answered by the node
 * itself, before any routing.
 */
import type { Socket } from 'node:net';
import type { AcmeCertificateManager } from './acme.js';
import type { Logger } from './logger.js';
import type { SniffedConnection } from './sniff-connection.js';

/** Path prefix of HTTP-01 challenges (RFC 8555 §8.3). */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/**
 * Answers an HTTP-01 challenge on a sniffed connection when it is one for `acme`'s hostname (200 with the
 * key authorization, or 404 for an unknown token) and closes the socket. Returns false, touching nothing,
 * for any other connection.
 */
export function answerAcmeChallenge(
  acme: AcmeCertificateManager,
  socket: Socket,
  sniffed: SniffedConnection,
  log: Logger,
): boolean {
  if (sniffed.isTls || sniffed.hostname !== acme.options.hostname) return false;
  if (!sniffed.path?.startsWith(ACME_CHALLENGE_PREFIX)) return false;
  const token = sniffed.path.slice(ACME_CHALLENGE_PREFIX.length).split('?', 1)[0] ?? '';
  const body = acme.challengeResponse(sniffed.hostname, token);
  const head =
    body === undefined
      ? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'
      : `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`;
  log.info({ token, found: body !== undefined }, 'answering ACME HTTP-01 challenge');
  socket.on('error', () => {});
  socket.end(body === undefined ? head : head + body);
  return true;
}
