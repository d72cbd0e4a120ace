import { describe, expect, it } from 'vitest';
import {
  AcmeError,
  AuthError,
  InvalidConfigError,
  LimitError,
  MAX_CLOSE_REASON_BYTES,
  NexusError,
  NexusErrorCode,
  NoRouteError,
  TlsError,
  truncateUtf8,
} from '../src/errors.js';

describe('NexusError', () => {
  it('carries a stable code, a default message and a cause', () => {
    const cause = new Error('boom');
    const err = new NexusError(NexusErrorCode.Listen, undefined, { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('NEXUS_ERR_LISTEN');
    expect(err.message).toBe('listener error');
    expect(err.cause).toBe(cause);
    expect(err.name).toBe('NexusError');
  });

  it('has no cause property when none is given', () => {
    expect('cause' in new NexusError(NexusErrorCode.Closed)).toBe(false);
  });

  it('is() recognises Nexus errors and filters by code', () => {
    const err = new NexusError(NexusErrorCode.Peer, 'link down');
    expect(NexusError.is(err)).toBe(true);
    expect(NexusError.is(err, NexusErrorCode.Peer)).toBe(true);
    expect(NexusError.is(err, NexusErrorCode.Auth)).toBe(false);
  });

  it.each([
    ['a plain Error', new Error('x')],
    ['an object with a matching code', { code: 'NEXUS_ERR_AUTH', message: 'x' }],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'NEXUS_ERR_AUTH'],
  ])('is() rejects %s', (_name, value) => {
    expect(NexusError.is(value)).toBe(false);
  });

  it('is() recognises an error branded by another copy of the module', () => {
    // A CJS and an ESM copy of the package share the registry symbol, not the class.
    const foreign = Object.assign(new Error('x'), { code: 'NEXUS_ERR_LIMIT', limit: 'maxSessions' });
    Object.defineProperty(foreign, Symbol.for('@nexus-proxy/core.NexusError'), { value: true });
    expect(NexusError.is(foreign)).toBe(true);
    expect(LimitError.is(foreign)).toBe(true);
  });
});

describe('InvalidConfigError', () => {
  it('prefixes the message with the field path', () => {
    const err = new InvalidConfigError('listeners[2].port', 'must be an integer between 0 and 65535');
    expect(err.code).toBe('NEXUS_ERR_INVALID_CONFIG');
    expect(err.path).toBe('listeners[2].port');
    expect(err.detail).toBe('must be an integer between 0 and 65535');
    expect(err.message).toBe('listeners[2].port must be an integer between 0 and 65535');
    expect(InvalidConfigError.is(err)).toBe(true);
    expect(NexusError.is(err, NexusErrorCode.InvalidConfig)).toBe(true);
    expect(err).toBeInstanceOf(NexusError);
  });

  it('uses the detail alone for the whole document', () => {
    expect(new InvalidConfigError('', 'must be a mapping').message).toBe('must be a mapping');
  });

  it('is() rejects other Nexus errors', () => {
    expect(InvalidConfigError.is(new AuthError('x'))).toBe(false);
    expect(InvalidConfigError.is(new Error('x'))).toBe(false);
  });
});

describe('AuthError', () => {
  it('keeps a short reason as is', () => {
    const err = new AuthError('token expired');
    expect(err.reason).toBe('token expired');
    expect(err.message).toBe('token expired');
    expect(err.code).toBe('NEXUS_ERR_AUTH');
    expect(AuthError.is(err)).toBe(true);
    expect(AuthError.is(new TlsError())).toBe(false);
  });

  it('truncates a reason to 123 UTF-8 bytes without splitting a character', () => {
    const err = new AuthError('é'.repeat(100)); // 200 bytes
    expect(Buffer.byteLength(err.reason, 'utf8')).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(err.reason).toBe('é'.repeat(61));
  });
});

describe('truncateUtf8', () => {
  it.each([
    { text: 'abc', max: 3, expected: 'abc' },
    { text: 'abcd', max: 3, expected: 'abc' },
    { text: '€€', max: 5, expected: '€' },
    { text: '😀x', max: 3, expected: '' },
    { text: '', max: 0, expected: '' },
  ])('truncateUtf8($text, $max) = $expected', ({ text, max, expected }) => {
    expect(truncateUtf8(text, max)).toBe(expected);
  });
});

describe('NoRouteError, LimitError, TlsError, AcmeError', () => {
  it('carry their fields and codes and have guards', () => {
    const noRoute = new NoRouteError('a.example.com');
    expect(noRoute.hostname).toBe('a.example.com');
    expect(noRoute.code).toBe('NEXUS_ERR_NO_ROUTE');
    expect(NoRouteError.is(noRoute)).toBe(true);
    expect(NoRouteError.is(new LimitError('maxSessions'))).toBe(false);

    const limit = new LimitError('maxStreamsPerSession');
    expect(limit.limit).toBe('maxStreamsPerSession');
    expect(limit.message).toBe('limit exceeded: maxStreamsPerSession');
    expect(LimitError.is(limit)).toBe(true);
    expect(LimitError.is(noRoute)).toBe(false);

    expect(TlsError.is(new TlsError('bad key'))).toBe(true);
    expect(TlsError.is(new AcmeError())).toBe(false);
    expect(AcmeError.is(new AcmeError('order failed'))).toBe(true);
    expect(new AcmeError().code).toBe('NEXUS_ERR_ACME');
  });
});
