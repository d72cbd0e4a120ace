import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isStreamId,
  MuxProtocolError,
  NIL_STREAM_ID,
  newStreamId,
  normalizeStreamId,
  streamIdFromBytes,
  streamIdToBytes,
  writeStreamId,
} from '../src/index.js';

/** Runs per property: the default below, or more with FUZZ_RUNS=100000 for a longer session. */
const fuzzRuns = (n: number): number => Math.max(n, Number(process.env.FUZZ_RUNS ?? 0));

/** Naive reference: hex via toString(16), the slow obvious way. */
function naiveFromBytes(bytes: Uint8Array): string {
  const h = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

describe('streamIdToBytes / streamIdFromBytes', () => {
  it('uses RFC 4122 byte order', () => {
    const bytes = streamIdToBytes('00112233-4455-6677-8899-aabbccddeeff');
    expect(Buffer.from(bytes).toString('hex')).toBe('00112233445566778899aabbccddeeff');
  });

  it('accepts upper-case input and returns lowercase', () => {
    const id = '6F1C2B9A-3D4E-4F50-8A61-7B8C9D0E1F23';
    expect(streamIdFromBytes(streamIdToBytes(id))).toBe(id.toLowerCase());
  });

  it('reads at an offset', () => {
    const buffer = new Uint8Array(20);
    buffer.set(streamIdToBytes('ffffffff-0000-0000-0000-000000000001'), 3);
    expect(streamIdFromBytes(buffer, 3)).toBe('ffffffff-0000-0000-0000-000000000001');
  });

  it('round-trips every 16-byte value and agrees with a naive implementation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const id = streamIdFromBytes(bytes);
        expect(id).toBe(naiveFromBytes(bytes));
        expect(streamIdToBytes(id)).toEqual(bytes);
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it.each([
    '',
    '6f1c2b9a3d4e4f508a617b8c9d0e1f23',
    '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f2',
    '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f234',
    '6f1c2b9a-3d4e-4f50-8a61_7b8c9d0e1f23',
    '6f1c2b9g-3d4e-4f50-8a61-7b8c9d0e1f23',
    '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f2\u00e9',
    '{6f1c2b9-3d4e-4f50-8a61-7b8c9d0e1f23}',
  ])('throws MUX_ERR_INVALID_STREAM_ID for %j', (id) => {
    expect(() => streamIdToBytes(id)).toThrowError(MuxProtocolError);
    try {
      streamIdToBytes(id);
    } catch (error) {
      expect(MuxProtocolError.is(error) && error.code).toBe('MUX_ERR_INVALID_STREAM_ID');
    }
  });

  it('throws when fewer than 16 bytes are available', () => {
    expect(() => streamIdFromBytes(new Uint8Array(15))).toThrowError(/16 bytes/);
    expect(() => streamIdFromBytes(new Uint8Array(20), 5)).toThrowError(MuxProtocolError);
  });

  it('writeStreamId refuses to write past the end', () => {
    expect(() => writeStreamId(new Uint8Array(16), 1, NIL_STREAM_ID)).toThrowError(MuxProtocolError);
  });
});

describe('isStreamId / normalizeStreamId', () => {
  it('accepts both cases and rejects other shapes and types', () => {
    expect(isStreamId(NIL_STREAM_ID)).toBe(true);
    expect(isStreamId('ABCDEF01-2345-6789-ABCD-EF0123456789')).toBe(true);
    expect(isStreamId('abcdef01-2345-6789-abcd-ef012345678z')).toBe(false);
    expect(isStreamId(42)).toBe(false);
    expect(isStreamId(undefined)).toBe(false);
    expect(normalizeStreamId('ABCDEF01-2345-6789-ABCD-EF0123456789')).toBe(
      'abcdef01-2345-6789-abcd-ef0123456789',
    );
    expect(normalizeStreamId('nope')).toBeUndefined();
  });

  it('agrees with a regular expression on arbitrary strings', () => {
    const pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    const hexish = fc.constantFrom(...'0123456789abcdefABCDEFg-_ '.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: hexish, minLength: 36, maxLength: 36 })), (s) => {
        expect(isStreamId(s)).toBe(pattern.test(s));
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });
});

describe('newStreamId', () => {
  it('returns distinct lowercase UUID strings', () => {
    const ids = new Set(Array.from({ length: 100 }, () => newStreamId()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(normalizeStreamId(id)).toBe(id);
  });
});
