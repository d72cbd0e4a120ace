import { describe, expect, it } from 'vitest';
import { MuxProtocolError, WS_CLOSE_INTERNAL_ERROR, WS_CLOSE_POLICY_VIOLATION } from '../src/index.js';

describe('MuxProtocolError', () => {
  it('carries a stable code, a default message, a cause and a close code', () => {
    const cause = new Error('boom');
    const error = new MuxProtocolError('MUX_ERR_FRAME_TOO_LARGE', undefined, { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('MuxProtocolError');
    expect(error.code).toBe('MUX_ERR_FRAME_TOO_LARGE');
    expect(error.message).toBe('frame too large');
    expect(error.cause).toBe(cause);
    expect(error.closeCode).toBe(WS_CLOSE_POLICY_VIOLATION);
    expect(new MuxProtocolError('MUX_ERR_CLOSED').closeCode).toBe(WS_CLOSE_INTERNAL_ERROR);
    expect(new MuxProtocolError('MUX_ERR_MALFORMED_FRAME', 'x', { closeCode: 1009 }).closeCode).toBe(1009);
  });

  describe('is()', () => {
    it('recognises instances', () => {
      expect(MuxProtocolError.is(new MuxProtocolError('MUX_ERR_INVALID_CONTROL'))).toBe(true);
    });

    it('rejects look-alikes, plain errors and non-objects', () => {
      const fake = Object.assign(new Error('x'), {
        code: 'MUX_ERR_INVALID_CONTROL',
        name: 'MuxProtocolError',
      });
      expect(MuxProtocolError.is(fake)).toBe(false);
      expect(MuxProtocolError.is(new Error('x'))).toBe(false);
      expect(MuxProtocolError.is(null)).toBe(false);
      expect(MuxProtocolError.is(undefined)).toBe(false);
      expect(MuxProtocolError.is('MUX_ERR_INVALID_CONTROL')).toBe(false);
    });

    it('recognises an error from another copy of the class (ESM and CJS builds side by side)', () => {
      // A second copy shares only the registry-wide brand symbol, like the dual-package case.
      const brand = Symbol.for('@nexus-proxy/mux-protocol.MuxProtocolError');
      const foreign = Object.assign(new Error('x'), { code: 'MUX_ERR_CLOSED', [brand]: true });
      expect(MuxProtocolError.is(foreign)).toBe(true);
      expect(foreign instanceof MuxProtocolError).toBe(false);
    });
  });
});
