import { describe, expect, it } from 'vitest';
import {
  BackendClientError,
  DialError,
  InvalidOptionsError,
  NoMappingError,
  SessionError,
  TokenError,
} from '../src/errors.js';

describe('BackendClientError', () => {
  it.each([
    [new InvalidOptionsError('nodes', 'must not be empty'), 'NEXUS_ERR_INVALID_OPTIONS'],
    [new DialError('refused'), 'NEXUS_ERR_DIAL_FAILED'],
    [new NoMappingError(80, 'a.example.com'), 'NEXUS_ERR_NO_MAPPING'],
    [new TokenError('empty'), 'NEXUS_ERR_TOKEN'],
    [new SessionError('dropped', { closeCode: 1006 }), 'NEXUS_ERR_SESSION'],
  ])('gives %s the stable code %s', (error, code) => {
    expect(error.code).toBe(code);
    expect(error).toBeInstanceOf(BackendClientError);
    expect(BackendClientError.is(error)).toBe(true);
  });

  it('is() rejects look-alikes and non-errors', () => {
    const lookAlike = Object.assign(new Error('x'), { code: 'NEXUS_ERR_DIAL_FAILED' });
    expect(BackendClientError.is(lookAlike)).toBe(false);
    expect(BackendClientError.is(undefined)).toBe(false);
    expect(BackendClientError.is(null)).toBe(false);
    expect(BackendClientError.is('NEXUS_ERR_DIAL_FAILED')).toBe(false);
  });

  it('keeps the close code and cause of a SessionError', () => {
    const cause = new Error('ECONNRESET');
    const error = new SessionError('dropped', { cause, closeCode: 1006 });
    expect(error.closeCode).toBe(1006);
    expect(error.cause).toBe(cause);
  });
});
