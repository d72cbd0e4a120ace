import { describe, expect, it } from 'vitest';
import {
  decodeBackendMessage,
  decodeControlPayload,
  encodeControlMessage,
  encodeDataFrame,
  MAX_BACKEND_MESSAGE,
} from '../src/index.js';

const ID = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';
const control = (json: string) => new Uint8Array(Buffer.from('\x02' + json, 'utf8'));

describe('decodeBackendMessage', () => {
  it('returns the DATA payload as a view into the message', () => {
    const frame = encodeDataFrame(ID, new Uint8Array([1, 2, 3]));
    const result = decodeBackendMessage(frame);
    if (!result.ok || result.value.type !== 'data') throw new Error('expected data');
    expect(result.value.payload.buffer).toBe(frame.buffer);
    expect(result.value.payload.byteOffset).toBe(frame.byteOffset + 17);
    expect([...result.value.payload]).toEqual([1, 2, 3]);
  });

  it('decodes a plain Uint8Array (not a Buffer) at a non-zero offset', () => {
    const backing = new Uint8Array(40);
    backing.set(encodeDataFrame(ID, new Uint8Array([9])), 5);
    const result = decodeBackendMessage(backing.subarray(5, 23));
    expect(result.ok && result.value.type === 'data' && result.value.streamId).toBe(ID);
  });

  it('accepts exactly MAX_BACKEND_MESSAGE bytes and rejects one more with MUX_ERR_FRAME_TOO_LARGE', () => {
    const max = new Uint8Array(MAX_BACKEND_MESSAGE);
    max[0] = 0x01;
    expect(decodeBackendMessage(max).ok).toBe(true);
    const over = new Uint8Array(MAX_BACKEND_MESSAGE + 1);
    over[0] = 0x01;
    const result = decodeBackendMessage(over);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('MUX_ERR_FRAME_TOO_LARGE');
      expect(result.error.closeCode).toBe(1008);
    }
  });

  it('applies the size limit to control and unknown messages too', () => {
    const big = control(
      `{"event":"disconnect","client_id":"${ID}","reason":"${'x'.repeat(MAX_BACKEND_MESSAGE)}"}`,
    );
    expect(decodeBackendMessage(big)).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_FRAME_TOO_LARGE' },
    });
    const unknown = new Uint8Array(MAX_BACKEND_MESSAGE + 1).fill(0x7f);
    expect(decodeBackendMessage(unknown)).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_FRAME_TOO_LARGE' },
    });
  });

  it('honours a custom maxMessageSize', () => {
    const frame = encodeDataFrame(ID, new Uint8Array(100));
    expect(decodeBackendMessage(frame, { maxMessageSize: 116 }).ok).toBe(false);
    expect(decodeBackendMessage(frame, { maxMessageSize: 117 }).ok).toBe(true);
  });

  it('rejects DATA of every length from 1 to 16 bytes as malformed', () => {
    for (let length = 1; length < 17; length++) {
      const bytes = new Uint8Array(length);
      bytes[0] = 0x01;
      expect(decodeBackendMessage(bytes)).toMatchObject({
        ok: false,
        error: { code: 'MUX_ERR_MALFORMED_FRAME' },
      });
    }
  });

  it('returns empty and unknown messages as values to ignore', () => {
    expect(decodeBackendMessage(new Uint8Array(0))).toEqual({ ok: true, value: { type: 'empty' } });
    expect(decodeBackendMessage(new Uint8Array([0x11, 1, 2]))).toEqual({
      ok: true,
      value: { type: 'unknown', frameType: 0x11 },
    });
  });

  it('rejects an empty control payload and invalid UTF-8 JSON without throwing', () => {
    expect(decodeBackendMessage(new Uint8Array([0x02]))).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_INVALID_CONTROL' },
    });
    expect(decodeBackendMessage(new Uint8Array([0x02, 0xff, 0xfe]))).toMatchObject({ ok: false });
  });

  it('replaces invalid UTF-8 inside strings, as Go does', () => {
    const head = Buffer.from(`\x02{"event":"disconnect","client_id":"${ID}","reason":"a`);
    const bytes = Buffer.concat([head, Buffer.from([0xff]), Buffer.from('"}')]);
    const result = decodeBackendMessage(bytes);
    expect(result).toEqual({
      ok: true,
      value: { type: 'control', message: { event: 'disconnect', client_id: ID, reason: 'a\ufffd' } },
    });
  });

  it('round-trips every control message', () => {
    const messages = [
      {
        event: 'connect',
        client_id: ID,
        conn_port: 443,
        client_ip: '[::1]:5000',
        hostname: 'a.example',
        is_tls: true,
        transport: 'tcp',
        credits: 64,
      },
      { event: 'disconnect', client_id: ID, reason: 'normal' },
      { event: 'ping_client', client_id: ID },
      { event: 'pong_client', client_id: ID },
      { event: 'pause_stream', client_id: ID, reason: 'buffer_full' },
      { event: 'resume_stream', client_id: ID, credits: 8 },
    ] as const;
    for (const message of messages) {
      expect(decodeBackendMessage(encodeControlMessage(message))).toEqual({
        ok: true,
        value: { type: 'control', message },
      });
    }
  });
});

describe('decodeControlPayload', () => {
  it('ignores unknown fields, treats null as absent and keeps huge credit values for SendWindow to clamp', () => {
    const json = Buffer.from(
      `{"event":"resume_stream","client_id":"${ID}","credits":1e12,"hostname":null,"x":{}}`,
    );
    expect(decodeControlPayload(json)).toEqual({
      ok: true,
      value: { type: 'control', message: { event: 'resume_stream', client_id: ID, credits: 1e12 } },
    });
  });

  it('ignores fields that do not belong to the event', () => {
    const json = Buffer.from(`{"event":"ping_client","client_id":"${ID}","conn_port":443,"credits":8}`);
    expect(decodeControlPayload(json)).toEqual({
      ok: true,
      value: { type: 'control', message: { event: 'ping_client', client_id: ID } },
    });
  });

  it('returns an unknown event without a client_id, and drops an invalid one', () => {
    expect(decodeControlPayload(Buffer.from('{"event":"hello"}'))).toEqual({
      ok: true,
      value: { type: 'unknown-control', message: { event: 'hello' } },
    });
    expect(decodeControlPayload(Buffer.from('{"event":"hello","client_id":"x"}'))).toEqual({
      ok: true,
      value: { type: 'unknown-control', message: { event: 'hello' } },
    });
  });

  it.each([
    ['conn_port out of range', `{"event":"connect","client_id":"${ID}","conn_port":65536}`],
    ['conn_port negative', `{"event":"connect","client_id":"${ID}","conn_port":-1}`],
    ['client_ip a number', `{"event":"connect","client_id":"${ID}","client_ip":1}`],
    ['hostname an array', `{"event":"connect","client_id":"${ID}","hostname":["a"]}`],
    ['transport a bool', `{"event":"connect","client_id":"${ID}","transport":true}`],
    ['reason an object', `{"event":"disconnect","client_id":"${ID}","reason":{}}`],
    ['credits a string', `{"event":"resume_stream","client_id":"${ID}","credits":"8"}`],
    ['event a number', `{"event":1,"client_id":"${ID}"}`],
    ['a JSON string', '"connect"'],
    ['JSON null', 'null'],
  ])('rejects %s with MUX_ERR_INVALID_CONTROL', (_name, json) => {
    expect(decodeControlPayload(Buffer.from(json))).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_INVALID_CONTROL' },
    });
  });

  it('is not fooled by __proto__ keys', () => {
    const json = Buffer.from(`{"__proto__":{"client_id":"${ID}"},"event":"ping_client"}`);
    expect(decodeControlPayload(json)).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_INVALID_STREAM_ID' },
    });
  });
});
