/**
 * Attack: quadratic sniffing. A client that sends its ClientHello or request head one byte per TCP segment
 * must not make the node re-copy and re-scan everything read so far on every read (64 KiB in 1-byte reads
 * would be about 2 × 10⁹ byte visits). The readers gather reads into one growing buffer and resume where
 * they stopped; here the work they report must stay within a small multiple of the bytes pushed.
 */
import { describe, expect, it } from 'vitest';
import { ClientHelloReader, HttpHeadReader, parseClientHello, sniffHttpRequest } from '../../src/index.js';
import { ascii, buildHandshake, serverNameExtension, toRecords } from '../helpers.js';

/** Bytes looked at or copied per byte pushed, at most (a quadratic reader needs about n / 2). */
const LINEAR_FACTOR = 8;

function pushOneByOne<R extends { kind: string }>(
  reader: { push(chunk: Uint8Array): R },
  bytes: Uint8Array,
): { result: R; finalAt: number } {
  let result = reader.push(bytes.subarray(0, 1));
  let finalAt = result.kind === 'incomplete' ? -1 : 1;
  for (let i = 1; i < bytes.length; i++) {
    result = reader.push(bytes.subarray(i, i + 1));
    if (finalAt < 0 && result.kind !== 'incomplete') finalAt = i + 1;
  }
  return { result, finalAt };
}

/** A request head of exactly `size` bytes: many short header lines, the blank line at the very end. */
function bigHead(size: number): Uint8Array {
  const start = 'GET / HTTP/1.1\r\nHost: app.example.com\r\n';
  const line = 'x-a: b\r\n';
  let head = start;
  while (head.length + line.length + 2 <= size) head += line;
  const pad = size - head.length - 2;
  if (pad > 0) head = `${head.slice(0, -2)}${'z'.repeat(pad)}\r\n`;
  return ascii(`${head}\r\n`);
}

describe('attack: quadratic sniffing', () => {
  it('reads a 64 KiB HTTP head sent in 1-byte segments with linear work', () => {
    const head = bigHead(64 * 1024);
    expect(head.length).toBe(64 * 1024);
    const reader = new HttpHeadReader({ maxSize: 64 * 1024 });
    const { result, finalAt } = pushOneByOne(reader, head);
    expect(result).toEqual(sniffHttpRequest(head, { maxSize: 64 * 1024 }));
    expect(result.kind).toBe('http');
    expect(finalAt).toBe(head.length);
    expect(reader.bytesExamined).toBeLessThanOrEqual(LINEAR_FACTOR * head.length);
    expect(reader.bytes.length).toBe(head.length);
  });

  it('refuses a 64 KiB head without a blank line, sent in 1-byte segments, with linear work', () => {
    const head = bigHead(64 * 1024).subarray(0, 64 * 1024 - 2);
    const tail = ascii('zz');
    const reader = new HttpHeadReader({ maxSize: 64 * 1024 });
    pushOneByOne(reader, head);
    const { result } = pushOneByOne(reader, tail);
    expect(result).toEqual({ kind: 'too-large', limit: 64 * 1024 });
    expect(reader.bytesExamined).toBeLessThanOrEqual(LINEAR_FACTOR * 64 * 1024);
  });

  it('reads a 32 KiB ClientHello of 1-byte records, sent in 1-byte segments, with linear work', () => {
    // A padding extension makes the handshake message ~5.4 KB; in 1-byte records that is 32 400 wire bytes.
    const handshake = buildHandshake({
      extensions: [
        serverNameExtension({ name: 'app.example.com' }),
        { type: 21, data: new Uint8Array(5_250) },
      ],
    });
    const wire = toRecords(handshake, 1);
    expect(wire.length).toBeGreaterThan(30_000);
    expect(wire.length).toBeLessThanOrEqual(32 * 1024);
    const reader = new ClientHelloReader({ maxSize: 32 * 1024 });
    const { result, finalAt } = pushOneByOne(reader, wire);
    expect(result).toEqual(parseClientHello(wire, { maxSize: 32 * 1024 }));
    expect(result.kind === 'tls' && result.serverName).toBe('app.example.com');
    expect(finalAt).toBe(wire.length);
    expect(reader.bytesExamined).toBeLessThanOrEqual(LINEAR_FACTOR * wire.length);
  });

  it('keeps a final verdict and every byte that arrived after it', () => {
    const reader = new HttpHeadReader();
    const head = ascii('GET / HTTP/1.1\r\nHost: a.example\r\n\r\n');
    const first = reader.push(head);
    expect(first.kind).toBe('http');
    expect(reader.push(ascii('body'))).toBe(first);
    expect(reader.bytes.toString('latin1')).toBe('GET / HTTP/1.1\r\nHost: a.example\r\n\r\nbody');
  });
});
