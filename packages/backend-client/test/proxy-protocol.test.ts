import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBackendClientConfig } from '../src/config.js';
import { InvalidOptionsError } from '../src/errors.js';
import { dialLocal } from '../src/local-dial.js';
import { resolvePortMappings, resolveTarget } from '../src/port-mappings.js';
import { buildProxyHeader, PROXY_PROTOCOL_V2_SIGNATURE, parseClientAddress } from '../src/proxy-protocol.js';

const SIG = '0d0a0d0a000d0a515549540a';

describe('buildProxyHeader v1', () => {
  it.each([
    {
      clientIp: '192.0.2.7:51234',
      connPort: 443,
      expected: 'PROXY TCP4 192.0.2.7 0.0.0.0 51234 443\r\n',
    },
    {
      clientIp: '[2001:db8::7]:51234',
      connPort: 80,
      expected: 'PROXY TCP6 2001:db8::7 :: 51234 80\r\n',
    },
    {
      clientIp: '[::ffff:198.51.100.1]:1',
      connPort: 25,
      expected: 'PROXY TCP4 198.51.100.1 0.0.0.0 1 25\r\n',
    },
    {
      clientIp: '[2001:0DB8:0000:0000:0001:0000:0000:0001]:65535',
      connPort: 65535,
      expected: 'PROXY TCP6 2001:db8::1:0:0:1 :: 65535 65535\r\n',
    },
    { clientIp: '[fe80::1%eth0]:9', connPort: 443, expected: 'PROXY TCP6 fe80::1 :: 9 443\r\n' },
    { clientIp: '', connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: undefined, connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: 'example.com:443', connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: '192.0.2.7', connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: '192.0.2.7:70000', connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: '2001:db8::7:443', connPort: 443, expected: 'PROXY UNKNOWN\r\n' },
    { clientIp: '192.0.2.7:1', connPort: -1, expected: 'PROXY UNKNOWN\r\n' },
  ])('writes $expected for client_ip $clientIp', ({ clientIp, connPort, expected }) => {
    const header = buildProxyHeader({ version: 'v1', clientIp, connPort });
    expect(header.toString('latin1')).toBe(expected);
  });

  it('uses a given destination address of the same family', () => {
    const header = buildProxyHeader({
      version: 'v1',
      clientIp: '192.0.2.7:5',
      connPort: 443,
      destinationAddress: '203.0.113.9',
    });
    expect(header.toString('latin1')).toBe('PROXY TCP4 192.0.2.7 203.0.113.9 5 443\r\n');
  });

  it('stays within the 107 bytes of spec §2.1 for the longest IPv6 form', () => {
    const header = buildProxyHeader({
      version: 'v1',
      clientIp: '[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535',
      connPort: 65535,
      destinationAddress: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    });
    expect(header.toString('latin1')).toBe(
      'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n',
    );
    expect(header.length).toBeLessThanOrEqual(107);
  });
});

describe('buildProxyHeader v2', () => {
  it('writes PROXY TCP4 with a 12-byte address block', () => {
    const header = buildProxyHeader({ version: 'v2', clientIp: '192.0.2.7:51234', connPort: 443 });
    expect(header.toString('hex')).toBe(
      `${SIG}` + '21' + '11' + '000c' + 'c0000207' + '00000000' + 'c822' + '01bb',
    );
  });

  it('writes PROXY TCP6 with a 36-byte address block', () => {
    const header = buildProxyHeader({ version: 'v2', clientIp: '[2001:db8::7]:51234', connPort: 80 });
    expect(header.toString('hex')).toBe(
      `${SIG}21210024` +
        '20010db8000000000000000000000007' +
        '00000000000000000000000000000000' +
        'c822' +
        '0050',
    );
  });

  it('writes an IPv4-mapped source as TCP4 and honours a destination address', () => {
    const header = buildProxyHeader({
      version: 'v2',
      clientIp: '[::ffff:198.51.100.1]:1',
      connPort: 25,
      destinationAddress: '::ffff:203.0.113.9',
    });
    expect(header.toString('hex')).toBe(`${SIG}2111000cc6336401cb0071090001` + '0019');
  });

  it('writes LOCAL with AF_UNSPEC and no addresses when client_ip is unusable', () => {
    for (const clientIp of ['', undefined, 'nope', '[::1]']) {
      expect(buildProxyHeader({ version: 'v2', clientIp, connPort: 443 }).toString('hex')).toBe(
        `${SIG}20000000`,
      );
    }
  });

  it('starts with the signature constant', () => {
    const header = buildProxyHeader({ version: 'v2', clientIp: '10.0.0.1:1', connPort: 1 });
    expect(header.subarray(0, 12).equals(Buffer.from(PROXY_PROTOCOL_V2_SIGNATURE))).toBe(true);
  });

  it('round-trips every IPv6 address through the binary block', () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
        const parsed = parseClientAddress(`[${ip}]:${port}`);
        expect(parsed).toBeDefined();
        const header = buildProxyHeader({ version: 'v2', clientIp: `[${ip}]:${port}`, connPort: 443 });
        const srcBytes = parsed!.family === 4 ? header.subarray(16, 20) : header.subarray(16, 32);
        expect(Buffer.from(srcBytes).equals(Buffer.from(parsed!.bytes))).toBe(true);
        // The canonical text form parses back to the same bytes.
        const again = parseClientAddress(
          parsed!.family === 4 ? `${parsed!.address}:1` : `[${parsed!.address}]:1`,
        );
        expect(Buffer.from(again!.bytes).equals(Buffer.from(parsed!.bytes))).toBe(true);
      }),
    );
  });
});

describe('buildProxyHeader validation', () => {
  it('throws InvalidOptionsError for an unknown version', () => {
    expect(() => buildProxyHeader({ version: 'v3' as 'v1', clientIp: '192.0.2.7:1', connPort: 1 })).toThrow(
      InvalidOptionsError,
    );
  });

  it('throws InvalidOptionsError for a destination of the other family', () => {
    expect(() =>
      buildProxyHeader({ version: 'v1', clientIp: '192.0.2.7:1', connPort: 1, destinationAddress: '::1' }),
    ).toThrow(/destinationAddress must be an IPv4 address/);
  });
});

describe('port mappings with proxyProtocol', () => {
  const mappings = resolvePortMappings({
    443: {
      default: '127.0.0.1:8443',
      proxyProtocol: 'v2',
      hosts: {
        'plain.example.com': { target: '127.0.0.1:9443', proxyProtocol: 'none' },
        'v1.example.com': { target: '127.0.0.1:9444', proxyProtocol: 'v1' },
        'inherit.example.com': '127.0.0.1:9445',
      },
    },
    80: '127.0.0.1:8080',
    25: { hosts: { 'mx.example.com': { target: '127.0.0.1:2525', proxyProtocol: 'v1' } } },
  });

  it.each([
    { port: 443, host: 'www.example.com', expected: 'v2' },
    { port: 443, host: 'plain.example.com', expected: undefined },
    { port: 443, host: 'v1.example.com', expected: 'v1' },
    { port: 443, host: 'inherit.example.com', expected: 'v2' },
    { port: 80, host: 'www.example.com', expected: undefined },
    { port: 25, host: 'mx.example.com', expected: 'v1' },
  ])('resolves $host on $port to proxyProtocol $expected', ({ port, host, expected }) => {
    expect(resolveTarget(mappings, port, host)?.proxyProtocol).toBe(expected);
  });

  it.each([
    { input: { 443: { default: 'a:1', proxyProtocol: 'v3' } }, path: 'portMappings.443.proxyProtocol' },
    { input: { 443: { default: 'a:1', proxyProtocol: true } }, path: 'portMappings.443.proxyProtocol' },
    {
      input: { 443: { hosts: { 'a.example.com': { target: 'a:1', proxy: 'v1' } } } },
      path: 'portMappings.443.hosts["a.example.com"].proxy',
    },
    {
      input: { 443: { hosts: { 'a.example.com': { proxyProtocol: 'v1' } } } },
      path: 'portMappings.443.hosts["a.example.com"].target',
    },
  ])('rejects $path', ({ input, path }) => {
    try {
      resolvePortMappings(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect((err as InvalidOptionsError).path).toBe(path);
    }
  });
});

describe('backend client YAML with proxyProtocol', () => {
  it('reads proxyProtocol on a mapping and on a host override, and names the line of a bad value', () => {
    const yaml = (value: string) => `backends:
  - name: web
    nexusAddresses: ["nexus.example.com"]
    authToken: "t"
    portMappings:
      443:
        default: "127.0.0.1:8443"
        proxyProtocol: ${value}
        hosts:
          legacy.example.com: { target: "127.0.0.1:9443", proxyProtocol: none }
`;
    const config = parseBackendClientConfig(yaml('v2'), { source: 'client.yaml' });
    const mappings = config.backends[0]!.portMappings;
    expect(resolveTarget(mappings, 443, 'app.example.com')).toEqual({
      host: '127.0.0.1',
      port: 8443,
      proxyProtocol: 'v2',
    });
    expect(resolveTarget(mappings, 443, 'legacy.example.com')).toEqual({ host: '127.0.0.1', port: 9443 });
    expect(() => parseBackendClientConfig(yaml('v3'), { source: 'client.yaml' })).toThrow(
      /backends\[0\]\.portMappings\.443\.proxyProtocol must be "v1", "v2" or "none".*client\.yaml:8/,
    );
  });
});

describe('dialLocal header', () => {
  it('delivers the header before any relayed byte', async () => {
    const received: Buffer[] = [];
    let accepted: Socket | undefined;
    const server = createServer((socket) => {
      accepted = socket;
      socket.on('data', (chunk) => received.push(chunk));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const header = buildProxyHeader({ version: 'v1', clientIp: '192.0.2.7:5', connPort: 443 });
    const socket = await dialLocal({ host: '127.0.0.1', port }, { timeoutMs: 2_000, header });
    socket.end('GET / HTTP/1.1\r\n\r\n');
    await once(socket, 'close');
    await new Promise<void>((resolve) =>
      accepted!.readableEnded ? resolve() : accepted!.once('end', resolve),
    );
    expect(Buffer.concat(received).toString('latin1')).toBe(
      'PROXY TCP4 192.0.2.7 0.0.0.0 5 443\r\nGET / HTTP/1.1\r\n\r\n',
    );
    accepted?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
