import { describe, expect, it } from 'vitest';
import { decodePeerMessage, encodePeerMessage, NIL_STREAM_ID } from '../src/index.js';

const EPOCH = '0123456789abcdef0123456789abcdef';

describe('route sync messages (docs/protocol.md §2.6)', () => {
  it('writes the capabilities last in an announce, after the keys the reference reads', () => {
    const text = encodePeerMessage({
      type: 'announce',
      version: 3,
      hostnames: ['a.example.com'],
      nexus: { deltas: 1, epoch: EPOCH, seq: 7, max_message_bytes: 1_048_576 },
    });
    expect(text).toBe(
      `{"version":3,"type":"announce","hostnames":["a.example.com"],"client_id":"${NIL_STREAM_ID}",` +
        `"nexus":{"deltas":1,"epoch":"${EPOCH}","seq":7,"max_message_bytes":1048576}}`,
    );
    expect(decodePeerMessage(text)).toEqual({
      ok: true,
      value: {
        type: 'announce',
        version: 3,
        hostnames: ['a.example.com'],
        client_id: NIL_STREAM_ID,
        nexus: { deltas: 1, epoch: EPOCH, seq: 7, max_message_bytes: 1_048_576 },
      },
    });
    const partial = encodePeerMessage({
      type: 'announce',
      version: 1,
      hostnames: [],
      nexus: { deltas: 1, epoch: EPOCH, seq: 0, partial: true },
    });
    expect(partial).toContain(`"nexus":{"deltas":1,"epoch":"${EPOCH}","seq":0,"partial":true}`);
  });

  it('writes deltas, state parts and resync requests in their documented layout', () => {
    expect(
      encodePeerMessage({
        type: 'route_delta',
        epoch: EPOCH,
        seq: 8,
        version: 12,
        added: ['b.example.com'],
        removed: [],
      }),
    ).toBe(`{"type":"route_delta","epoch":"${EPOCH}","seq":8,"version":12,"added":["b.example.com"]}`);
    expect(
      encodePeerMessage({
        type: 'route_state',
        epoch: EPOCH,
        seq: 8,
        version: 12,
        part: 1,
        hostnames: ['a.example.com'],
        last: true,
      }),
    ).toBe(
      `{"type":"route_state","epoch":"${EPOCH}","seq":8,"version":12,"part":1,"hostnames":["a.example.com"],"last":true}`,
    );
    expect(encodePeerMessage({ type: 'route_resync', epoch: EPOCH, seq: 6 })).toBe(
      `{"type":"route_resync","epoch":"${EPOCH}","seq":6}`,
    );
    expect(encodePeerMessage({ type: 'route_resync' })).toBe('{"type":"route_resync"}');
  });

  it('decodes them with defaults for what was left out', () => {
    expect(
      decodePeerMessage(`{"type":"route_delta","epoch":"${EPOCH}","seq":2,"removed":["x.example.com"]}`),
    ).toEqual({
      ok: true,
      value: { type: 'route_delta', epoch: EPOCH, seq: 2, version: 0, added: [], removed: ['x.example.com'] },
    });
    expect(decodePeerMessage(`{"type":"route_state","epoch":"${EPOCH}","seq":2}`)).toEqual({
      ok: true,
      value: { type: 'route_state', epoch: EPOCH, seq: 2, version: 0, part: 0, hostnames: [], last: false },
    });
    expect(decodePeerMessage('{"type":"route_resync"}')).toEqual({
      ok: true,
      value: { type: 'route_resync' },
    });
  });

  it.each([
    ['a delta without an epoch', '{"type":"route_delta","seq":1}'],
    ['an epoch that is not hex', '{"type":"route_delta","epoch":"Z1","seq":1}'],
    ['a negative seq', `{"type":"route_delta","epoch":"${EPOCH}","seq":-1}`],
    ['added that is not a list of strings', `{"type":"route_delta","epoch":"${EPOCH}","seq":1,"added":[1]}`],
    ['a fractional part', `{"type":"route_state","epoch":"${EPOCH}","seq":1,"part":0.5}`],
    ['last that is not a boolean', `{"type":"route_state","epoch":"${EPOCH}","seq":1,"last":1}`],
    ['capabilities that are not an object', '{"type":"announce","version":1,"nexus":[1]}'],
    [
      'capabilities with a hex-less epoch',
      '{"type":"announce","version":1,"nexus":{"deltas":1,"epoch":"no"}}',
    ],
    [
      'a zero message limit',
      `{"type":"announce","nexus":{"deltas":1,"epoch":"${EPOCH}","max_message_bytes":0}}`,
    ],
  ])('refuses %s with MUX_ERR_INVALID_PEER_MESSAGE', (_what, text) => {
    const result = decodePeerMessage(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe('MUX_ERR_INVALID_PEER_MESSAGE');
  });

  it('reads an announce without capabilities, or with null ones, as a full-state announce', () => {
    for (const text of ['{"version":2,"type":"announce"}', '{"version":2,"type":"announce","nexus":null}']) {
      expect(decodePeerMessage(text)).toEqual({
        ok: true,
        value: { type: 'announce', version: 2, hostnames: [] },
      });
    }
  });
});
