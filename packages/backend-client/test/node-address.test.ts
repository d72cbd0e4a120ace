import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../src/errors.js';
import { normalizeNodeAddress } from '../src/node-address.js';

describe('normalizeNodeAddress', () => {
  it.each([
    ['wss://node.example.com:8443/connect', 'wss://node.example.com:8443/connect'],
    ['node.example.com:8443', 'wss://node.example.com:8443/connect'],
    ['node.example.com', 'wss://node.example.com:8443/connect'],
    ['  node.example.com:9000  ', 'wss://node.example.com:9000/connect'],
    ['[2001:db8::1]:8443', 'wss://[2001:db8::1]:8443/connect'],
    ['wss://node.example.com', 'wss://node.example.com/connect'],
    ['wss://node.example.com:8443/', 'wss://node.example.com:8443/connect'],
    ['wss://node.example.com:8443/custom/connect', 'wss://node.example.com:8443/custom/connect'],
    ['ws://127.0.0.1:8080/connect', 'ws://127.0.0.1:8080/connect'],
  ])('turns %j into %j', (input, expected) => {
    expect(normalizeNodeAddress(input)).toBe(expected);
  });

  it.each([
    [''],
    ['https://node.example.com/connect'],
    ['wss://user:pw@node.example.com/connect'],
    ['node.example.com:notaport'],
  ])('rejects %j with InvalidOptionsError', (input) => {
    expect(() => normalizeNodeAddress(input, 'nodes[0]')).toThrow(InvalidOptionsError);
    try {
      normalizeNodeAddress(input, 'nodes[0]');
    } catch (err) {
      expect((err as InvalidOptionsError).code).toBe('NEXUS_ERR_INVALID_OPTIONS');
      expect((err as InvalidOptionsError).path).toBe('nodes[0]');
    }
  });
});
