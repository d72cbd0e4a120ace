/**
 * The STUN codec (docs/edge.md "STUN"): Binding requests are read, everything else is a named drop, and
 * the answers decode, by an independent reading of RFC 8489 below, to the address that was put in.
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeAnswer, decodeXorMapped } from './helpers/stun.js';
import {
  bindingRequest,
  bindingSuccess,
  bindingUnknownAttributes,
  parseStunRequest,
  STUN_MAGIC_COOKIE,
} from '../src/stun-message.js';

const tid = () => randomBytes(12);

/** A request with `attrs` (type, value) and optionally a FINGERPRINT. */
function request(attrs: Array<[number, Buffer]>, fingerprint = false, type = 0x0001): Buffer {
  const parts = attrs.map(([t, v]) => {
    const a = Buffer.alloc(4 + Math.ceil(v.length / 4) * 4);
    a.writeUInt16BE(t, 0);
    a.writeUInt16BE(v.length, 2);
    v.copy(a, 4);
    return a;
  });
  const body = Buffer.concat(parts);
  const msg = Buffer.alloc(20 + body.length + (fingerprint ? 8 : 0));
  msg.writeUInt16BE(type, 0);
  msg.writeUInt16BE(msg.length - 20, 2);
  msg.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  tid().copy(msg, 8);
  body.copy(msg, 20);
  if (fingerprint) {
    const at = 20 + body.length;
    msg.writeUInt16BE(0x8028, at);
    msg.writeUInt16BE(4, at + 2);
    msg.writeUInt32BE((crc32(msg.subarray(0, at)) ^ 0x5354554e) >>> 0, at + 4);
  }
  return msg;
}

describe('parseStunRequest', () => {
  it('reads a bare Binding request and one with FINGERPRINT, SOFTWARE and credentials', () => {
    const id = tid();
    const bare = parseStunRequest(bindingRequest(id, { fingerprint: false }));
    expect(bare).toEqual({ kind: 'binding-request', transactionId: id, unknownRequired: [] });
    expect(parseStunRequest(bindingRequest(id))).toMatchObject({ kind: 'binding-request' });
    const rich = request(
      [
        [0x8022, Buffer.from('client 1.0')],
        [0x0006, Buffer.from('user')],
        [0x0008, Buffer.alloc(20)],
      ],
      true,
    );
    expect(parseStunRequest(rich)).toMatchObject({ kind: 'binding-request', unknownRequired: [] });
  });

  it('lists unknown comprehension-required attributes once each, and ignores unknown optional ones', () => {
    const msg = request([
      [0x0003, Buffer.alloc(4)],
      [0x9999, Buffer.alloc(3)],
      [0x0024, Buffer.alloc(4)],
      [0x0003, Buffer.alloc(4)],
    ]);
    expect(parseStunRequest(msg)).toMatchObject({
      kind: 'binding-request',
      unknownRequired: [0x0003, 0x0024],
    });
  });

  it.each([
    ['shorter than a header', Buffer.alloc(19), 'malformed'],
    [
      'a length that disagrees with the datagram',
      Buffer.concat([bindingRequest(tid()), Buffer.alloc(4)]),
      'malformed',
    ],
    [
      'a length that is not a multiple of 4',
      (() => {
        const m = Buffer.concat([bindingRequest(tid(), { fingerprint: false }), Buffer.alloc(2)]);
        m.writeUInt16BE(2, 2);
        return m;
      })(),
      'malformed',
    ],
    [
      'no magic cookie (RFC 3489)',
      (() => {
        const m = bindingRequest(tid(), { fingerprint: false });
        m.writeUInt32BE(0, 4);
        return m;
      })(),
      'not-stun',
    ],
    [
      'the first two bits set',
      (() => {
        const m = bindingRequest(tid(), { fingerprint: false });
        m.writeUInt16BE(0xc001, 0);
        return m;
      })(),
      'not-stun',
    ],
    ['a Binding success response', request([], false, 0x0101), 'not-binding-request'],
    ['a Binding indication', request([], false, 0x0011), 'not-binding-request'],
    ['an Allocate request', request([], false, 0x0003), 'not-binding-request'],
    [
      'an attribute running past the end',
      (() => {
        const m = request([[0x8022, Buffer.alloc(4)]]);
        m.writeUInt16BE(200, 22);
        return m;
      })(),
      'bad-attribute',
    ],
    [
      'a wrong FINGERPRINT',
      (() => {
        const m = bindingRequest(tid());
        m.writeUInt32BE(0, m.length - 4);
        return m;
      })(),
      'bad-attribute',
    ],
    [
      'FINGERPRINT not last',
      (() => {
        const m = request([
          [0x8028, Buffer.alloc(4)],
          [0x8022, Buffer.alloc(4)],
        ]);
        return m;
      })(),
      'bad-attribute',
    ],
  ])('drops %s', (_name, datagram, reason) => {
    expect(parseStunRequest(datagram)).toEqual({ kind: 'drop', reason });
  });

  it('never throws on random or truncated input', () => {
    const kinds = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const datagram =
        i % 2 === 0
          ? randomBytes(i % 200)
          : (() => {
              // A valid header with a random body, so the attribute walk is exercised.
              const body = randomBytes((i % 50) * 4);
              const m = Buffer.concat([bindingRequest(tid(), { fingerprint: false }), body]);
              m.writeUInt16BE(body.length, 2);
              return m;
            })();
      kinds.add(parseStunRequest(datagram).kind);
    }
    // Random bytes may rarely form a valid request; what matters is that every input got a result.
    expect(kinds.has('drop')).toBe(true);
    expect([...kinds].every((k) => k === 'drop' || k === 'binding-request')).toBe(true);
  });
});

describe('answers', () => {
  it.each([
    ['IPv4', '192.0.2.10', 54321, '192.0.2.10'],
    ['IPv6', '2001:db8::1:2', 3478, '2001:db8:0:0:0:0:1:2'],
    ['an IPv4-mapped IPv6 source, as IPv4', '::ffff:198.51.100.7', 1, '198.51.100.7'],
  ])('success for %s carries XOR-MAPPED-ADDRESS and a valid FINGERPRINT', (_n, address, port, shown) => {
    const id = tid();
    const answer = decodeAnswer(bindingSuccess(id, address, port));
    expect(answer.type).toBe(0x0101);
    expect(answer.transactionId).toEqual(id);
    expect(answer.fingerprintOk).toBe(true);
    expect(answer.attributes.map((a) => a.type)).toEqual([0x0020, 0x8028]);
    expect(decodeXorMapped(answer.attributes[0]!.value, id)).toEqual({ address: shown, port });
  });

  it('the 420 error lists the unknown attributes', () => {
    const id = tid();
    const answer = decodeAnswer(bindingUnknownAttributes(id, [0x0003, 0x0024, 0x7fff]));
    expect(answer.type).toBe(0x0111);
    expect(answer.fingerprintOk).toBe(true);
    const [errorCode, unknown] = answer.attributes;
    expect(errorCode?.type).toBe(0x0009);
    expect(errorCode!.value[2]! * 100 + errorCode!.value[3]!).toBe(420);
    expect(unknown?.type).toBe(0x000a);
    expect([0, 2, 4].map((i) => unknown!.value.readUInt16BE(i))).toEqual([0x0003, 0x0024, 0x7fff]);
  });

  it('an answer is never more than 2.6 times the smallest request', () => {
    const smallest = bindingRequest(tid(), { fingerprint: false }).length;
    expect(bindingSuccess(tid(), '2001:db8::1', 1).length / smallest).toBeLessThanOrEqual(2.6);
  });
});
