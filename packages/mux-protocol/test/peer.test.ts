import { describe, expect, it } from 'vitest';
import {
  decodePeerMessage,
  decodeTunnelFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  MAX_BACKEND_MESSAGE,
  MAX_DATA_PAYLOAD,
  MuxProtocolError,
  NIL_STREAM_ID,
  type TunnelFrame,
} from '../src/index.js';

const ID = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';

describe('encodePeerMessage', () => {
  it('emits the all-zero client_id on announce, as the reference does', () => {
    expect(encodePeerMessage({ type: 'announce', version: 1, hostnames: ['a.example.com'] })).toBe(
      `{"version":1,"type":"announce","hostnames":["a.example.com"],"client_id":"${NIL_STREAM_ID}"}`,
    );
  });

  it('round-trips an announce with many hostnames', () => {
    const hostnames = Array.from({ length: 1000 }, (_, i) => `h${i}.example.com`);
    const text = encodePeerMessage({ type: 'announce', version: 42, hostnames });
    expect(decodePeerMessage(text)).toEqual({
      ok: true,
      value: { type: 'announce', version: 42, hostnames, client_id: NIL_STREAM_ID },
    });
  });

  it('throws for an invalid tunnel id or version', () => {
    expect(() =>
      encodePeerMessage({
        type: 'tunnel_request',
        client_id: 'x',
        conn_port: 443,
        client_ip: '',
        hostname: 'a',
        is_tls: true,
      }),
    ).toThrowError(MuxProtocolError);
    expect(() => encodePeerMessage({ type: 'announce', version: -1, hostnames: [] })).toThrowError(
      MuxProtocolError,
    );
  });
});

describe('decodePeerMessage', () => {
  it('normalises an upper-case tunnel id', () => {
    const result = decodePeerMessage(
      `{"type":"tunnel_request","client_id":"${ID.toUpperCase()}","hostname":"a.b"}`,
    );
    expect(result).toEqual({
      ok: true,
      value: {
        type: 'tunnel_request',
        client_id: ID,
        conn_port: 0,
        client_ip: '',
        hostname: 'a.b',
        is_tls: false,
      },
    });
  });

  it('rejects text longer than maxLength with MUX_ERR_FRAME_TOO_LARGE', () => {
    const text = encodePeerMessage({ type: 'announce', version: 1, hostnames: ['a'.repeat(100)] });
    expect(decodePeerMessage(text, { maxLength: 50 })).toMatchObject({
      ok: false,
      error: { code: 'MUX_ERR_FRAME_TOO_LARGE' },
    });
  });

  it.each([
    ['a JSON array', '[]'],
    ['no type', '{"version":1}'],
    ['hostnames not an array', '{"type":"announce","hostnames":"a.com"}'],
    ['fractional version', '{"type":"announce","version":1.5}'],
    ['is_tls a string', `{"type":"tunnel_request","client_id":"${ID}","is_tls":"true"}`],
    ['hostname a number', `{"type":"tunnel_request","client_id":"${ID}","hostname":5}`],
  ])('rejects %s', (_name, text) => {
    expect(decodePeerMessage(text).ok).toBe(false);
  });

  it('drops an invalid client_id on announce instead of failing', () => {
    expect(decodePeerMessage('{"type":"announce","version":2,"client_id":"zzz"}')).toEqual({
      ok: true,
      value: { type: 'announce', version: 2, hostnames: [] },
    });
  });
});

describe('encodeTunnelFrame / decodeTunnelFrame', () => {
  it('round-trips every frame type', () => {
    const frames: TunnelFrame[] = [
      { type: 'tunnel-data', tunnelId: ID, payload: new Uint8Array([1, 2, 3]) },
      { type: 'tunnel-close', tunnelId: ID },
      { type: 'tunnel-pause', tunnelId: ID },
      { type: 'tunnel-resume', tunnelId: ID },
      { type: 'tunnel-credits', tunnelId: ID, credits: 0 },
      { type: 'tunnel-credits', tunnelId: ID, credits: 64 },
      { type: 'tunnel-credits', tunnelId: ID, credits: Number.MAX_SAFE_INTEGER },
    ];
    for (const frame of frames) {
      const result = decodeTunnelFrame(encodeTunnelFrame(frame));
      if (!result.ok) throw result.error;
      const value =
        'payload' in result.value
          ? { ...result.value, payload: new Uint8Array(result.value.payload) }
          : result.value;
      expect(value).toEqual(frame);
    }
  });

  it('writes credits as 8 bytes big-endian', () => {
    const frame = encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: ID, credits: 0x0102_0304_0506 });
    expect(Buffer.from(frame.subarray(17)).toString('hex')).toBe('0000010203040506');
  });

  it('throws for invalid credits or an oversize payload', () => {
    for (const credits of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      expect(() => encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: ID, credits })).toThrowError(
        MuxProtocolError,
      );
    }
    expect(() =>
      encodeTunnelFrame({ type: 'tunnel-data', tunnelId: ID, payload: new Uint8Array(MAX_DATA_PAYLOAD + 1) }),
    ).toThrowError(expect.objectContaining({ code: 'MUX_ERR_FRAME_TOO_LARGE' }));
  });

  it('clamps a count above 2^53 - 1 and rejects oversize messages', () => {
    const bytes = new Uint8Array(encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: ID, credits: 0 }));
    bytes[17] = 0x00;
    bytes[18] = 0x20; // 2^53 exactly
    expect(decodeTunnelFrame(bytes)).toMatchObject({ ok: true, value: { credits: Number.MAX_SAFE_INTEGER } });
    const big = new Uint8Array(MAX_BACKEND_MESSAGE + 1);
    big[0] = 0x11;
    expect(decodeTunnelFrame(big)).toMatchObject({ ok: false, error: { code: 'MUX_ERR_FRAME_TOO_LARGE' } });
  });

  it('returns the tunnel payload as a view', () => {
    const frame = encodeTunnelFrame({ type: 'tunnel-data', tunnelId: ID, payload: new Uint8Array([5]) });
    const result = decodeTunnelFrame(frame);
    if (!result.ok || result.value.type !== 'tunnel-data') throw new Error('expected tunnel-data');
    expect(result.value.payload.buffer).toBe(frame.buffer);
  });
});
