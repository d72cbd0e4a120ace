import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type BackendFrame,
  type DecodedBackendMessage,
  decodeBackendMessage,
  decodePeerMessage,
  decodeTunnelFrame,
  encodeControlMessage,
  encodeDataFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  type IgnoredMessage,
  type PeerMessage,
  type TunnelFrame,
} from '../src/index.js';

interface BinaryVector {
  name: string;
  hex: string;
  json?: string;
  direction?: 'decode';
  decoded?: Record<string, unknown>;
  error?: string;
}
interface TextVector {
  name: string;
  text: string;
  direction?: 'decode';
  decoded?: Record<string, unknown>;
  error?: string;
}

function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8')) as T;
}
const backend = load<{ vectors: BinaryVector[] }>('backend.json');
const peer = load<{ text: TextVector[]; binary: BinaryVector[] }>('peer.json');

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const fromHex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

/** Vector form → decoded value: `payloadHex` becomes `payload` bytes. */
function fromVector(decoded: Record<string, unknown>): Record<string, unknown> {
  if (typeof decoded.payloadHex !== 'string') return decoded;
  const { payloadHex, ...rest } = decoded;
  return { ...rest, payload: fromHex(payloadHex as string) };
}

/** Decoded value → comparable form (payload bytes as a plain Uint8Array). */
function comparable(value: DecodedBackendMessage | TunnelFrame | IgnoredMessage): Record<string, unknown> {
  if ('payload' in value) return { ...value, payload: new Uint8Array(value.payload) };
  return { ...value };
}

function encodeBackend(frame: BackendFrame): Uint8Array {
  return frame.type === 'data'
    ? encodeDataFrame(frame.streamId, frame.payload)
    : encodeControlMessage(frame.message);
}

describe('backend.json golden vectors', () => {
  it('has vectors of every kind', () => {
    expect(backend.vectors.filter((v) => v.decoded && !v.direction).length).toBeGreaterThan(10);
    expect(backend.vectors.filter((v) => v.error).length).toBeGreaterThan(5);
  });

  it('keeps the readable "json" field in step with "hex"', () => {
    const withJson = backend.vectors.filter((v) => v.json !== undefined);
    expect(withJson.length).toBeGreaterThan(20);
    for (const vector of withJson)
      expect(`02${Buffer.from(vector.json!, 'utf8').toString('hex')}`).toBe(vector.hex);
  });

  for (const vector of backend.vectors) {
    if (vector.error) {
      it(`rejects: ${vector.name}`, () => {
        const result = decodeBackendMessage(fromHex(vector.hex));
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.error.code).toBe(vector.error);
      });
      continue;
    }
    const expected = fromVector(vector.decoded!);
    it(`decodes: ${vector.name}`, () => {
      const result = decodeBackendMessage(fromHex(vector.hex));
      expect(result.ok).toBe(true);
      if (result.ok) expect(comparable(result.value)).toEqual(expected);
    });
    if (!vector.direction) {
      it(`encodes: ${vector.name}`, () => {
        expect(hex(encodeBackend(expected as unknown as BackendFrame))).toBe(vector.hex);
      });
    }
  }
});

describe('peer.json golden vectors', () => {
  for (const vector of peer.text) {
    if (vector.error) {
      it(`rejects text: ${vector.name}`, () => {
        const result = decodePeerMessage(vector.text);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.error.code).toBe(vector.error);
      });
      continue;
    }
    it(`decodes text: ${vector.name}`, () => {
      expect(decodePeerMessage(vector.text)).toEqual({ ok: true, value: vector.decoded });
    });
    if (!vector.direction) {
      it(`encodes text: ${vector.name}`, () => {
        expect(encodePeerMessage(vector.decoded as unknown as PeerMessage)).toBe(vector.text);
      });
    }
  }

  for (const vector of peer.binary) {
    if (vector.error) {
      it(`rejects binary: ${vector.name}`, () => {
        const result = decodeTunnelFrame(fromHex(vector.hex));
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.error.code).toBe(vector.error);
      });
      continue;
    }
    const expected = fromVector(vector.decoded!);
    it(`decodes binary: ${vector.name}`, () => {
      const result = decodeTunnelFrame(fromHex(vector.hex));
      expect(result.ok).toBe(true);
      if (result.ok) expect(comparable(result.value)).toEqual(expected);
    });
    if (!vector.direction) {
      it(`encodes binary: ${vector.name}`, () => {
        expect(hex(encodeTunnelFrame(expected as unknown as TunnelFrame))).toBe(vector.hex);
      });
    }
  }
});
