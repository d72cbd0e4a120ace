import { describe, expect, it } from 'vitest';
import {
  DATA_HEADER_LENGTH,
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  encodeDataFrames,
  FrameType,
  MAX_BACKEND_MESSAGE,
  MAX_DATA_PAYLOAD,
  MuxProtocolError,
  splitPayload,
  streamIdToBytes,
  writeDataHeader,
} from '../src/index.js';

const ID = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';

describe('encodeDataFrame', () => {
  it('writes 0x01, the 16 id bytes and the payload', () => {
    const frame = encodeDataFrame(ID, Buffer.from('hi'));
    expect(Buffer.from(frame).toString('hex')).toBe('016f1c2b9a3d4e4f508a617b8c9d0e1f236869');
  });

  it('gives the same bytes for a string id and its raw bytes', () => {
    const payload = new Uint8Array([1, 2, 3]);
    expect(encodeDataFrame(streamIdToBytes(ID), payload)).toEqual(encodeDataFrame(ID, payload));
  });

  it('accepts a full 32 768-byte payload, making a 32 785-byte message', () => {
    const frame = encodeDataFrame(ID, new Uint8Array(MAX_DATA_PAYLOAD).fill(7));
    expect(frame.length).toBe(MAX_BACKEND_MESSAGE);
    expect(frame[MAX_BACKEND_MESSAGE - 1]).toBe(7);
  });

  it('throws MUX_ERR_FRAME_TOO_LARGE for a larger payload', () => {
    expect(() => encodeDataFrame(ID, new Uint8Array(MAX_DATA_PAYLOAD + 1))).toThrowError(
      expect.objectContaining({ code: 'MUX_ERR_FRAME_TOO_LARGE' }),
    );
  });

  it('throws MUX_ERR_INVALID_STREAM_ID for a bad id', () => {
    expect(() => encodeDataFrame('nope', new Uint8Array(1))).toThrowError(
      expect.objectContaining({ code: 'MUX_ERR_INVALID_STREAM_ID' }),
    );
    expect(() => encodeDataFrame(new Uint8Array(15), new Uint8Array(1))).toThrowError(MuxProtocolError);
  });

  it('copies the payload, so later changes to the source do not alter the frame', () => {
    const payload = new Uint8Array([1, 2, 3]);
    const frame = encodeDataFrame(ID, payload);
    payload[0] = 9;
    expect(frame[DATA_HEADER_LENGTH]).toBe(1);
  });
});

describe('writeDataHeader', () => {
  it('fills header room in front of data already in the buffer', () => {
    const buffer = new Uint8Array(DATA_HEADER_LENGTH + 3);
    buffer.set([0xaa, 0xbb, 0xcc], DATA_HEADER_LENGTH);
    expect(writeDataHeader(buffer, 0, streamIdToBytes(ID))).toBe(DATA_HEADER_LENGTH);
    expect(buffer).toEqual(new Uint8Array(encodeDataFrame(ID, new Uint8Array([0xaa, 0xbb, 0xcc]))));
  });

  it('writes a tunnel header when asked', () => {
    const buffer = new Uint8Array(20);
    expect(writeDataHeader(buffer, 2, streamIdToBytes(ID), FrameType.TunnelData)).toBe(19);
    expect(buffer[2]).toBe(0x11);
  });

  it('refuses a header that does not fit', () => {
    expect(() => writeDataHeader(new Uint8Array(17), 1, streamIdToBytes(ID))).toThrowError(MuxProtocolError);
  });
});

describe('splitPayload', () => {
  it('returns views, not copies', () => {
    const payload = new Uint8Array(70_000);
    const chunks = splitPayload(payload);
    expect(chunks.map((c) => c.length)).toEqual([32_768, 32_768, 4_464]);
    for (const chunk of chunks) expect(chunk.buffer).toBe(payload.buffer);
    expect(chunks[1]!.byteOffset).toBe(32_768);
  });

  it('returns the payload itself when it fits, and nothing for an empty one', () => {
    const payload = new Uint8Array(10);
    expect(splitPayload(payload)[0]).toBe(payload);
    expect(splitPayload(new Uint8Array(0))).toEqual([]);
  });

  it('honours a custom maximum and rejects a bad one', () => {
    expect(splitPayload(new Uint8Array(10), 4).map((c) => c.length)).toEqual([4, 4, 2]);
    expect(() => splitPayload(new Uint8Array(10), 0)).toThrowError(RangeError);
    expect(() => splitPayload(new Uint8Array(10), 1.5)).toThrowError(RangeError);
  });
});

describe('encodeDataFrames', () => {
  it('splits a 64 KiB prelude into frames the reference accepts (docs/protocol.md §4.3)', () => {
    const prelude = new Uint8Array(65_536).map((_, i) => i & 0xff);
    const frames = encodeDataFrames(ID, prelude);
    expect(frames).toHaveLength(2);
    const joined: number[] = [];
    for (const frame of frames) {
      expect(frame.length).toBeLessThanOrEqual(MAX_BACKEND_MESSAGE);
      const decoded = decodeBackendMessage(frame);
      expect(decoded.ok && decoded.value.type === 'data' && decoded.value.streamId).toBe(ID);
      if (decoded.ok && decoded.value.type === 'data') joined.push(...decoded.value.payload);
    }
    expect(new Uint8Array(joined)).toEqual(prelude);
  });

  it('gives no frame for an empty payload', () => {
    expect(encodeDataFrames(ID, new Uint8Array(0))).toEqual([]);
  });
});

describe('encodeControlMessage', () => {
  it('prefixes 0x02 and writes UTF-8 JSON', () => {
    const frame = encodeControlMessage({ event: 'disconnect', client_id: ID, reason: 'timeout — ü' });
    expect(frame[0]).toBe(0x02);
    expect(Buffer.from(frame.subarray(1)).toString('utf8')).toBe(
      `{"event":"disconnect","client_id":"${ID}","reason":"timeout — ü"}`,
    );
  });

  it('writes the client_id lowercase', () => {
    const frame = encodeControlMessage({ event: 'ping_client', client_id: ID.toUpperCase() });
    expect(Buffer.from(frame.subarray(1)).toString()).toBe(`{"event":"ping_client","client_id":"${ID}"}`);
  });

  it('escapes quotes and control characters in strings', () => {
    const frame = encodeControlMessage({ event: 'pause_stream', client_id: ID, reason: 'a"b\\c\n\u0001' });
    expect(Buffer.from(frame.subarray(1)).toString()).toBe(
      `{"event":"pause_stream","client_id":"${ID}","reason":"a\\"b\\\\c\\n\\u0001"}`,
    );
  });

  it('throws for an invalid client_id, port or credit count', () => {
    expect(() => encodeControlMessage({ event: 'ping_client', client_id: 'x' })).toThrowError(
      expect.objectContaining({ code: 'MUX_ERR_INVALID_STREAM_ID' }),
    );
    expect(() =>
      encodeControlMessage({
        event: 'connect',
        client_id: ID,
        conn_port: 70_000,
        client_ip: '',
        hostname: '',
        is_tls: false,
      }),
    ).toThrowError(expect.objectContaining({ code: 'MUX_ERR_INVALID_CONTROL' }));
    expect(() => encodeControlMessage({ event: 'resume_stream', client_id: ID, credits: 1.5 })).toThrowError(
      expect.objectContaining({ code: 'MUX_ERR_INVALID_CONTROL' }),
    );
  });
});
