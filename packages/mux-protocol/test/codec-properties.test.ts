import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ControlMessage,
  DATA_HEADER_LENGTH,
  decodeBackendMessage,
  decodePeerMessage,
  decodeTunnelFrame,
  encodeControlMessage,
  encodeDataFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  MAX_DATA_PAYLOAD,
  MuxProtocolError,
  type PeerMessage,
  streamIdFromBytes,
  type TunnelFrame,
} from '../src/index.js';

/** Runs per property: the default below, or more with FUZZ_RUNS=100000 for a longer session. */
const fuzzRuns = (n: number): number => Math.max(n, Number(process.env.FUZZ_RUNS ?? 0));

// Reference encoders written the naive way (DataView, JSON.stringify of an ordered object), to check the
// hand-built fast paths against (docs/testing.md, "Parsers and decoders").
function naiveDataFrame(id: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(DATA_HEADER_LENGTH + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0x01);
  const hex = id.replaceAll('-', '');
  for (let i = 0; i < 16; i++) view.setUint8(1 + i, Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  out.set(payload, DATA_HEADER_LENGTH);
  return out;
}

function naiveControlJson(m: Record<string, unknown>): string {
  const ordered: Record<string, unknown> = { event: m.event, client_id: m.client_id };
  for (const key of ['conn_port', 'client_ip', 'transport', 'hostname', 'is_tls', 'reason', 'credits']) {
    const value = m[key];
    if (value !== undefined && value !== 0 && value !== '' && value !== false) ordered[key] = value;
  }
  return JSON.stringify(ordered)
    .replaceAll('<', '\\u003c')
    .replaceAll('>', '\\u003e')
    .replaceAll('&', '\\u0026')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029');
}

const streamId = fc.uuid({ version: [1, 2, 3, 4, 5, 6, 7, 8, 15] }).map((s) => s.toLowerCase());
/** Well-formed strings rich in characters that need escaping (Go escapes < > & U+2028 U+2029 too). */
const text = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        '<',
        '>',
        '&',
        '\u2028',
        '\u2029',
        '"',
        '\\',
        '\n',
        '\u0001',
        '\u007f',
        'é',
        '\u{1d11e}',
      ),
      fc.string({ unit: 'grapheme', maxLength: 4 }),
    ),
    { maxLength: 10 },
  )
  .map((parts) => parts.join(''));
const credits = fc.option(fc.integer({ min: 1, max: 2 ** 31 }), { nil: undefined });

const controlMessage: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.record(
    {
      event: fc.constant('connect' as const),
      client_id: streamId,
      conn_port: fc.integer({ min: 0, max: 65_535 }),
      client_ip: text,
      hostname: text,
      is_tls: fc.boolean(),
      transport: fc.constantFrom('tcp', 'udp'),
      credits: fc.integer({ min: 1, max: 2 ** 31 }),
    },
    { requiredKeys: ['event', 'client_id', 'conn_port', 'client_ip', 'hostname', 'is_tls'] },
  ),
  fc.record(
    {
      event: fc.constantFrom('disconnect' as const, 'pause_stream' as const),
      client_id: streamId,
      reason: text,
    },
    { requiredKeys: ['event', 'client_id'] },
  ),
  fc.record({ event: fc.constantFrom('ping_client' as const, 'pong_client' as const), client_id: streamId }),
  fc.record({ event: fc.constant('resume_stream' as const), client_id: streamId, credits }).map((m) => {
    if (m.credits === undefined) delete m.credits;
    return m;
  }),
);

/** The decoded form of a message: empty optional strings are left out, as on the wire. */
function canonical(message: ControlMessage): ControlMessage {
  const copy: Record<string, unknown> = { ...message };
  if (copy.reason === '') delete copy.reason;
  return copy as unknown as ControlMessage;
}

const tunnelFrame: fc.Arbitrary<TunnelFrame> = fc.oneof(
  fc.record({
    type: fc.constant('tunnel-data' as const),
    tunnelId: streamId,
    payload: fc.uint8Array({ maxLength: 256 }),
  }),
  fc.record({
    type: fc.constantFrom('tunnel-close' as const, 'tunnel-pause' as const, 'tunnel-resume' as const),
    tunnelId: streamId,
  }),
  fc.record({
    type: fc.constant('tunnel-credits' as const),
    tunnelId: streamId,
    credits: fc.maxSafeNat(),
  }),
);

const peerMessage: fc.Arbitrary<PeerMessage> = fc.oneof(
  fc.record({
    type: fc.constant('announce' as const),
    version: fc.maxSafeNat(),
    hostnames: fc.array(text, { maxLength: 10 }),
    client_id: streamId,
  }),
  fc.record(
    {
      type: fc.constant('tunnel_request' as const),
      client_id: streamId,
      conn_port: fc.integer({ min: 0, max: 65_535 }),
      client_ip: text,
      hostname: text,
      is_tls: fc.boolean(),
      transport: fc.constant('tcp'),
    },
    { requiredKeys: ['type', 'client_id', 'conn_port', 'client_ip', 'hostname', 'is_tls'] },
  ),
);

/** Decodes with every decoder; fails the property if any throws or returns something untyped. */
function assertTyped(bytes: Uint8Array): void {
  for (const result of [decodeBackendMessage(bytes), decodeTunnelFrame(bytes)]) {
    if (result.ok) expect(typeof result.value.type).toBe('string');
    else expect(MuxProtocolError.is(result.error)).toBe(true);
  }
  const asText = Buffer.from(bytes).toString('utf8');
  const peer = decodePeerMessage(asText);
  if (!peer.ok) expect(MuxProtocolError.is(peer.error)).toBe(true);
}

describe('codec properties', () => {
  it('decode(encode(data frame)) == frame, and the encoding matches a naive DataView encoder', () => {
    fc.assert(
      fc.property(streamId, fc.uint8Array({ maxLength: 2048 }), (id, payload) => {
        const frame = encodeDataFrame(id, payload);
        expect(new Uint8Array(frame)).toEqual(naiveDataFrame(id, payload));
        const result = decodeBackendMessage(frame);
        expect(result.ok).toBe(true);
        if (result.ok && result.value.type === 'data') {
          expect(result.value.streamId).toBe(id);
          expect(new Uint8Array(result.value.payload)).toEqual(payload);
        }
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('decode(encode(control message)) == message, and the JSON matches a naive ordered encoder', () => {
    fc.assert(
      fc.property(controlMessage, (message) => {
        const frame = encodeControlMessage(message);
        expect(Buffer.from(frame.subarray(1)).toString('utf8')).toBe(
          naiveControlJson(message as unknown as Record<string, unknown>),
        );
        expect(decodeBackendMessage(frame)).toEqual({
          ok: true,
          value: { type: 'control', message: canonical(message) },
        });
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it('decode(encode(tunnel frame)) == frame', () => {
    fc.assert(
      fc.property(tunnelFrame, (frame) => {
        const result = decodeTunnelFrame(encodeTunnelFrame(frame));
        if (!result.ok) throw result.error;
        const value = result.value;
        expect('payload' in value ? { ...value, payload: new Uint8Array(value.payload) } : value).toEqual(
          frame,
        );
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('decode(encode(peer message)) == message', () => {
    fc.assert(
      fc.property(peerMessage, (message) => {
        expect(decodePeerMessage(encodePeerMessage(message))).toEqual({ ok: true, value: message });
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('random bytes never throw and always give a typed result', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom(0x01, 0x02, 0x11, 0x12, 0x15, 0x7b),
        (tail, head) => {
          assertTyped(tail);
          const withType = new Uint8Array(tail.length + 1);
          withType[0] = head;
          withType.set(tail, 1);
          assertTyped(withType);
        },
      ),
      { numRuns: fuzzRuns(5000) },
    );
  });

  it('mutated valid messages never throw and always give a typed result', () => {
    const valid = fc.oneof(
      controlMessage.map(encodeControlMessage),
      tunnelFrame.map(encodeTunnelFrame),
      peerMessage.map((m) => new Uint8Array(Buffer.from(encodePeerMessage(m)))),
      fc.tuple(streamId, fc.uint8Array({ maxLength: 64 })).map(([id, p]) => encodeDataFrame(id, p)),
    );
    const mutation = fc.array(
      fc.tuple(
        fc.nat(),
        fc.oneof(fc.constant('flip' as const), fc.constant('cut' as const), fc.constant('dup' as const)),
      ),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(valid, mutation, fc.integer({ min: 0, max: 255 }), (original, mutations, byte) => {
        let bytes = new Uint8Array(original);
        for (const [position, kind] of mutations) {
          if (bytes.length === 0) break;
          const at = position % bytes.length;
          if (kind === 'flip') bytes[at] = byte;
          else if (kind === 'cut') bytes = bytes.subarray(0, at);
          else bytes = new Uint8Array([...bytes.subarray(0, at + 1), ...bytes.subarray(at)]);
        }
        assertTyped(bytes);
      }),
      { numRuns: fuzzRuns(5000) },
    );
  });

  it('hostile JSON shapes in control messages never throw', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom(
            'event',
            'client_id',
            'conn_port',
            'client_ip',
            'hostname',
            'is_tls',
            'transport',
            'reason',
            'credits',
            '__proto__',
          ),
          fc.jsonValue({ maxDepth: 2 }),
        ),
        fc.constantFrom('connect', 'disconnect', 'resume_stream', 'ping_client', 'x'),
        (object, event) => {
          const json = JSON.stringify({ event, ...object });
          assertTyped(new Uint8Array(Buffer.from('\x02' + json)));
        },
      ),
      { numRuns: fuzzRuns(3000) },
    );
  });

  it('a DATA frame of any length decodes with the id at bytes 1..16', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 17, maxLength: MAX_DATA_PAYLOAD / 256 }), (bytes) => {
        bytes[0] = 0x01;
        const result = decodeBackendMessage(bytes);
        expect(result.ok && result.value.type === 'data' && result.value.streamId).toBe(
          streamIdFromBytes(bytes, 1),
        );
      }),
      { numRuns: fuzzRuns(500) },
    );
  });
});
