/**
 * Reading STUN answers in tests, straight from the bytes (RFC 8489 §5, §14.2, §14.7), independently of
 * the codec under test.
 */
import { crc32 } from 'node:zlib';
import { expect } from 'vitest';

/** Everything a test needs from an answer, read straight from the bytes. */
export interface DecodedStunAnswer {
  type: number;
  transactionId: Buffer;
  attributes: Array<{ type: number; value: Buffer }>;
  fingerprintOk: boolean;
}

export function decodeAnswer(msg: Buffer): DecodedStunAnswer {
  expect(msg.length).toBeGreaterThanOrEqual(20);
  expect(msg.readUInt32BE(4)).toBe(0x2112a442);
  expect(msg.readUInt16BE(2)).toBe(msg.length - 20);
  const attributes: DecodedStunAnswer['attributes'] = [];
  let fingerprintOk = false;
  for (let at = 20; at < msg.length; ) {
    const type = msg.readUInt16BE(at);
    const length = msg.readUInt16BE(at + 2);
    const value = msg.subarray(at + 4, at + 4 + length);
    if (type === 0x8028) {
      fingerprintOk = value.readUInt32BE(0) === (crc32(msg.subarray(0, at)) ^ 0x5354554e) >>> 0;
    }
    attributes.push({ type, value });
    at += 4 + Math.ceil(length / 4) * 4;
  }
  return { type: msg.readUInt16BE(0), transactionId: msg.subarray(8, 20), attributes, fingerprintOk };
}

/** The address in an XOR-MAPPED-ADDRESS value. */
export function decodeXorMapped(value: Buffer, transactionId: Buffer): { address: string; port: number } {
  const port = value.readUInt16BE(2) ^ 0x2112;
  const key = Buffer.concat([Buffer.from([0x21, 0x12, 0xa4, 0x42]), transactionId]);
  const bytes = [...value.subarray(4)].map((b, i) => b ^ (key[i] ?? 0));
  if (value[1] === 0x01) return { address: bytes.join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return { address: groups.join(':'), port };
}
