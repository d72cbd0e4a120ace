/**
 * docs/reliability.md items 22 and 25: the control-message validator (`decodeBackendMessage` on `0x02` + JSON)
 * under structured-but-hostile JSON objects — every field with a random value of a random type (huge and
 * fractional numbers, nested objects, arrays, unicode, `null`), extra fields, prototype keys — checked
 * against an independent oracle of docs/protocol.md §1.4: a known field of the wrong type is an error, `null` is
 * absent, unknown fields are ignored, known events need a UUID `client_id`; an accepted message carries
 * exactly the typed values sent. `codec-properties.test.ts` only checks that such input never throws.
 * Runs: `FUZZ_RUNS` (default 3 000 per property).
 */
import { decodeBackendMessage } from '../src/index.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 3_000);

const KNOWN_EVENTS = [
  'connect',
  'disconnect',
  'ping_client',
  'pong_client',
  'pause_stream',
  'resume_stream',
  'outbound_connect',
  'outbound_result',
];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Any JSON value, biased to the hostile: huge/fractional/negative numbers, unicode, deep nesting. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.integer({ min: 0, max: 65_535 }),
  fc.constantFrom(0, -0, -1, 65_536, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 0.5, 443.0000001, 5e-324),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', '\u0000', '\ud83d\ude00', '\u202e', 'ǅ', '\ufeff', '<script>', '443', 'true'),
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid(),
  fc.jsonValue({ maxDepth: 4 }),
  fc.array(fc.uuid(), { maxLength: 3 }),
);

const fieldValue = (key: string): fc.Arbitrary<unknown> => {
  const typed: Record<string, fc.Arbitrary<unknown>> = {
    event: fc.oneof(fc.constantFrom(...KNOWN_EVENTS), fc.constantFrom('bind_request', 'CONNECT', '')),
    client_id: fc.oneof(
      fc.uuid(),
      fc.uuid().map((u) => u.toUpperCase()),
    ),
    conn_port: fc.integer({ min: 0, max: 65_535 }),
    credits: fc.oneof(fc.nat(), fc.constant(2 ** 40)),
    is_tls: fc.boolean(),
    success: fc.boolean(),
  };
  // Half the time a value of the right type, half the time anything at all.
  return fc.oneof(typed[key] ?? fc.string({ unit: 'grapheme', maxLength: 30 }), hostileValue);
};

const FIELDS = [
  'event',
  'client_id',
  'conn_port',
  'client_ip',
  'hostname',
  'is_tls',
  'transport',
  'reason',
  'target_addr',
  'success',
  'credits',
];

/** An object with a random subset of the known fields plus random extra keys. */
const hostileObject = fc
  .tuple(
    fc
      .subarray(FIELDS, { minLength: 1 })
      .chain((keys) => fc.tuple(...keys.map((k) => fieldValue(k).map((v) => [k, v] as const)))),
    fc.dictionary(
      fc.oneof(
        fc.string({ maxLength: 12 }),
        fc.constantFrom('__proto__', 'constructor', 'toString', 'Event'),
      ),
      hostileValue,
      { maxKeys: 4 },
    ),
  )
  .map(([known, extra]) => {
    const object: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(extra)) if (!FIELDS.includes(k)) object[k] = v;
    for (const [k, v] of known) object[k] = v;
    return object;
  });

type Verdict = { ok: true; type: 'control' | 'unknown-control' } | { ok: false; code: string };

/** The oracle: docs/protocol.md §1.4 written out plainly. */
function expected(o: Record<string, unknown>): Verdict {
  const get = (k: string) => (Object.hasOwn(o, k) && o[k] !== null ? o[k] : undefined);
  const isInt = (v: unknown, max: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
  const event = get('event');
  if (typeof event !== 'string') return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  const port = get('conn_port');
  if (port !== undefined && !isInt(port, 65_535)) return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  for (const k of ['client_ip', 'transport', 'hostname', 'reason', 'target_addr']) {
    const v = get(k);
    if (v !== undefined && typeof v !== 'string') return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  }
  const tls = get('is_tls');
  if (tls !== undefined && typeof tls !== 'boolean') return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  const success = get('success');
  if (success !== undefined && typeof success !== 'boolean')
    return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  const credits = get('credits');
  if (credits !== undefined && !isInt(credits, Number.MAX_VALUE))
    return { ok: false, code: 'MUX_ERR_INVALID_CONTROL' };
  if (!KNOWN_EVENTS.includes(event)) return { ok: true, type: 'unknown-control' };
  const id = get('client_id');
  if (typeof id !== 'string' || !UUID.test(id)) return { ok: false, code: 'MUX_ERR_INVALID_STREAM_ID' };
  return { ok: true, type: 'control' };
}

const encode = (o: unknown) => new Uint8Array(Buffer.from(`\x02${JSON.stringify(o)}`, 'utf8'));

describe('control-message validator under hostile JSON (fuzz)', () => {
  it('accepts or rejects exactly as docs/protocol.md §1.4 says, and never throws', () => {
    fc.assert(
      fc.property(hostileObject, (object) => {
        const want = expected(object);
        const got = decodeBackendMessage(encode(object));
        if (!want.ok) {
          expect(got.ok).toBe(false);
          if (!got.ok) expect(got.error.code).toBe(want.code);
          return;
        }
        expect(got.ok).toBe(true);
        if (!got.ok) return;
        expect(got.value.type).toBe(want.type);
        const m =
          got.value.type === 'control' || got.value.type === 'unknown-control'
            ? got.value.message
            : undefined;
        expect(m?.event).toBe(object.event);
        if (got.value.type !== 'control' || m === undefined) return;
        // The typed values sent are the values returned (ids lowercased, zero values omitted).
        const message = m as unknown as Record<string, unknown>;
        expect(message.client_id).toBe(String(object.client_id).toLowerCase());
        if (message.event === 'connect') {
          expect(message.conn_port).toBe(object.conn_port ?? 0);
          expect(message.hostname).toBe(object.hostname ?? '');
          expect(message.is_tls).toBe(object.is_tls ?? false);
        }
        if (message.event === 'outbound_connect') expect(message.target_addr).toBe(object.target_addr ?? '');
        if (message.event === 'outbound_result') expect(message.success).toBe(object.success ?? false);
        if (message.credits !== undefined) expect(message.credits).toBe(object.credits);
        if (message.reason !== undefined) expect(message.reason).toBe(object.reason);
        // Nothing that was not a known field leaks into the message.
        for (const key of Object.keys(message)) expect(FIELDS).toContain(key);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('survives hostile JSON text: deep nesting, huge numbers, duplicate keys, lone surrogates', () => {
    const id = '0b4f3a52-5d0e-4c52-9b1a-2f3c8d7e6a10';
    const texts = fc.oneof(
      fc
        .nat({ max: 5_000 })
        .map((d) => `{"event":"disconnect","client_id":"${id}","reason":${'['.repeat(d)}${']'.repeat(d)}}`),
      fc
        .nat({ max: 400 })
        .map((n) => `{"event":"resume_stream","client_id":"${id}","credits":1${'0'.repeat(n)}}`),
      fc
        .string({ unit: 'binary', maxLength: 60 })
        .map((r) => `{"event":"ping_client","client_id":"${id}","event":${JSON.stringify(r)}}`),
      fc.constantFrom(
        `{"event":"connect","client_id":"${id}","hostname":"\\ud800"}`,
        `{"event":"connect","client_id":"${id}","conn_port":443e0}`,
        `{"event":"connect","client_id":"${id}","conn_port":4.43e2}`,
        `{"__proto__":{"event":"connect"},"client_id":"${id}"}`,
        `{"event":"disconnect","client_id":"${id}"}garbage`,
        `  {"event":"disconnect","client_id":"${id}"}  `,
      ),
    );
    fc.assert(
      fc.property(texts, (text) => {
        const result = decodeBackendMessage(new Uint8Array(Buffer.from(`\x02${text}`, 'utf8')));
        expect(typeof result.ok).toBe('boolean');
        if (!result.ok) expect(result.error.code).toMatch(/^MUX_ERR_/);
        else if (result.value.type === 'control') expect(result.value.message.client_id).toBe(id);
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 3) },
    );
  });
});
