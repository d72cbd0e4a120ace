/** The outbound address policy and the outbound_connect checks (docs/edge.md "Outbound connections"). */
import { describe, expect, it } from 'vitest';
import type { OutboundClaims } from '../src/backend-identity.js';
import { InvalidConfigError } from '../src/errors.js';
import { checkOutboundConnect, type OutboundNodeSettings } from '../src/outbound-checks.js';
import { embeddedIPv4, OutboundAddressPolicy, parseNetwork } from '../src/outbound-policy.js';

describe('OutboundAddressPolicy', () => {
  const policy = new OutboundAddressPolicy();

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:0:7f00:1', 'loopback'],
    ['::7f00:1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fc00::1', 'private'],
    ['fec0::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['192.0.0.170', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.1', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['169.254.169.254', 'cloud-metadata'],
    ['::ffff:169.254.169.254', 'cloud-metadata'],
    ['64:ff9b::a9fe:a9fe', 'cloud-metadata'],
    ['169.254.170.2', 'cloud-metadata'],
    ['100.100.100.200', 'cloud-metadata'],
    ['fd00:ec2::254', 'cloud-metadata'],
    ['::808:808', 'reserved'],
    ['2001::1', 'reserved'],
    ['100::1', 'reserved'],
    ['localhost', 'invalid-address'],
    ['127.1', 'invalid-address'],
    ['', 'invalid-address'],
  ])('refuses %s (%s)', (address, reason) => {
    expect(policy.classify(address)).toEqual({ allowed: false, address, reason });
  });

  it.each([
    ['8.8.8.8', 4],
    ['1.1.1.1', 4],
    ['172.32.0.1', 4],
    ['100.128.0.1', 4],
    ['169.253.255.255', 4],
    ['2606:4700:4700::1111', 6],
    ['::ffff:8.8.8.8', 6],
    ['64:ff9b::808:808', 6],
    ['2002:808:808::1', 6],
  ] as const)('allows public %s', (address, family) => {
    expect(policy.classify(address)).toEqual({ allowed: true, address, family });
  });

  it('allows the networks an operator lists, in every form of the address', () => {
    const p = new OutboundAddressPolicy(['10.20.0.0/16', '127.0.0.2', 'fd00:1::/32', '169.254.169.254/32']);
    expect(p.allowedNetworks).toEqual(['10.20.0.0/16', '127.0.0.2/32', 'fd00:1::/32', '169.254.169.254/32']);
    expect(p.classify('10.20.3.4').allowed).toBe(true);
    expect(p.classify('::ffff:10.20.3.4').allowed).toBe(true);
    expect(p.classify('127.0.0.2').allowed).toBe(true);
    expect(p.classify('fd00:1:2::3').allowed).toBe(true);
    expect(p.classify('169.254.169.254').allowed).toBe(true);
    // Just outside each.
    expect(p.classify('10.21.0.1')).toMatchObject({ allowed: false, reason: 'private' });
    expect(p.classify('127.0.0.1')).toMatchObject({ allowed: false, reason: 'loopback' });
    expect(p.classify('fd00:2::1')).toMatchObject({ allowed: false, reason: 'private' });
  });

  it.each([
    '10.0.0.0/33',
    'fd00::/129',
    'example.com/8',
    '10.0.0.0/8/1',
    '10.0.0/8',
    '10.0.0.0/-1',
    '10.0.0.0/ 8',
  ])('refuses the allowed network %j', (entry) => {
    expect(() => new OutboundAddressPolicy([entry])).toThrow(InvalidConfigError);
  });

  it('parseNetwork clears host bits; embeddedIPv4 reads only the forms that carry IPv4', () => {
    expect(parseNetwork('10.1.2.3/8')).toEqual({ network: '10.0.0.0', prefix: 8, family: 4 });
    expect(parseNetwork('fd00::1/8')).toEqual({ network: 'fd00::', prefix: 8, family: 6 });
    expect(embeddedIPv4('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(embeddedIPv4('2002:102:304::')).toBe('1.2.3.4');
    expect(embeddedIPv4('::1')).toBeUndefined();
    expect(embeddedIPv4('::')).toBeUndefined();
    expect(embeddedIPv4('2606:4700::1')).toBeUndefined();
  });
});

describe('checkOutboundConnect', () => {
  const node: OutboundNodeSettings = { allow: true, allowedPorts: [443, 22, 993], maxConnsPerBackend: 2 };
  const claim: OutboundClaims = { allowed: true, ports: [443, 993] };
  const id = '5b0c3f3e-2c59-4f5e-9d0e-1f2a3b4c5d6e';
  const check = (
    targetAddr: unknown,
    over: Partial<{
      node: OutboundNodeSettings;
      claim: OutboundClaims | undefined;
      active: number;
      clientId: string;
    }> = {},
  ) =>
    checkOutboundConnect(
      { clientId: over.clientId ?? id, targetAddr },
      over.node ?? node,
      over.claim ?? claim,
      over.active ?? 0,
    );

  it('accepts a name, an IPv4 and an IPv6 target', () => {
    expect(check('Example.COM:443')).toEqual({ ok: true, host: 'example.com', port: 443, kind: 'name' });
    expect(check('93.184.216.34:993')).toEqual({ ok: true, host: '93.184.216.34', port: 993, kind: 'ipv4' });
    expect(check('[2606:2800::1]:443')).toEqual({ ok: true, host: '2606:2800::1', port: 443, kind: 'ipv6' });
  });

  it.each<[string, unknown, Parameters<typeof check>[1], string, string]>([
    [
      'the node does not allow outbound',
      'example.com:443',
      { node: { ...node, allow: false } },
      'disabled',
      'outbound connections disabled on this proxy',
    ],
    [
      'the claim does not allow outbound',
      'example.com:443',
      { claim: { ...claim, allowed: false } },
      'not-allowed-for-backend',
      'outbound connections not allowed for this backend',
    ],
    ['a target longer than 260', `${'a'.repeat(257)}:443`, {}, 'target-too-long', 'target address too long'],
    [
      'a control character',
      'example.com\n:443',
      {},
      'target-control-characters',
      'target address contains control characters',
    ],
    [
      'DEL',
      'example.com\x7f:443',
      {},
      'target-control-characters',
      'target address contains control characters',
    ],
    ['not a string', 443, {}, 'invalid-target', 'invalid target address'],
    ['no port', 'example.com', {}, 'invalid-target', 'invalid target address'],
    ['an empty host', ':443', {}, 'invalid-target', 'invalid target address'],
    ['an IPv6 address without brackets', '::1:443', {}, 'invalid-target', 'invalid target address'],
    ['a numeric name (127.1)', '127.1:443', {}, 'invalid-target', 'invalid target address'],
    ['a decimal IPv4 (2130706433)', '2130706433:443', {}, 'invalid-target', 'invalid target address'],
    ['a name with a space', 'exa mple.com:443', {}, 'invalid-target', 'invalid target address'],
    ['port 0', 'example.com:0', {}, 'invalid-port', 'invalid target port'],
    ['port 65536', 'example.com:65536', {}, 'invalid-port', 'invalid target port'],
    ['a signed port', 'example.com:+443', {}, 'invalid-port', 'invalid target port'],
    [
      'a port the node does not allow',
      'example.com:25',
      {},
      'port-not-allowed-by-server',
      'outbound port 25 not allowed by server',
    ],
    [
      'a port the claim does not allow',
      'example.com:22',
      {},
      'port-not-allowed-for-backend',
      'outbound port 22 not allowed for this backend',
    ],
    [
      'the backend at its limit',
      'example.com:443',
      { active: 2 },
      'connection-limit',
      'outbound connection limit exceeded',
    ],
    [
      'a nil client id',
      'example.com:443',
      { clientId: '00000000-0000-0000-0000-000000000000' },
      'missing-client-id',
      'missing client ID',
    ],
  ])('refuses %s', (_name, target, over, reason, message) => {
    expect(check(target, over)).toEqual({ ok: false, reason, message });
  });

  it('checks in the reference order: node, claim, target, node ports, claim ports, limit, id', () => {
    const everythingWrong = {
      node: { ...node, allow: false },
      claim: { ...claim, allowed: false },
      active: 9,
      clientId: '',
    };
    expect(check('bad', everythingWrong)).toMatchObject({ reason: 'disabled' });
    expect(check('bad', { ...everythingWrong, node })).toMatchObject({ reason: 'not-allowed-for-backend' });
    expect(check('bad', { ...everythingWrong, node, claim })).toMatchObject({ reason: 'invalid-target' });
    expect(check('example.com:25', { ...everythingWrong, node, claim })).toMatchObject({
      reason: 'port-not-allowed-by-server',
    });
    expect(check('example.com:22', { ...everythingWrong, node, claim })).toMatchObject({
      reason: 'port-not-allowed-for-backend',
    });
    expect(check('example.com:443', { ...everythingWrong, node, claim })).toMatchObject({
      reason: 'connection-limit',
    });
    expect(check('example.com:443', { ...everythingWrong, node, claim, active: 0 })).toMatchObject({
      reason: 'missing-client-id',
    });
  });

  it('a seed-era backend (no outbound claim) is refused like one whose claim says no', () => {
    expect(checkOutboundConnect({ clientId: id, targetAddr: 'example.com:443' }, node, undefined, 0)).toEqual(
      {
        ok: false,
        reason: 'not-allowed-for-backend',
        message: 'outbound connections not allowed for this backend',
      },
    );
  });

  it('empty allow-lists allow any port; -1 means no limit of its own', () => {
    const open = { allow: true, allowedPorts: [], maxConnsPerBackend: -1 };
    expect(
      check('example.com:25', {
        node: open,
        claim: { allowed: true, ports: [] },
        active: 1e6,
      }),
    ).toMatchObject({ ok: true, port: 25 });
  });
});
