/** A ClientHello builder for hostile sniffing input (arbitrary extensions, sizes and record splits). */

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

/** One TLS extension. */
export interface Extension {
  type: number;
  data: Uint8Array;
}

/** server_name extension (RFC 6066 §3) with one host_name entry of raw bytes. */
export function sniExtension(name: Uint8Array | string): Extension {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : Buffer.from(name);
  const entry = Buffer.concat([Buffer.from([0, ...u16(bytes.length)]), bytes]);
  return { type: 0, data: Buffer.concat([Buffer.from(u16(entry.length)), entry]) };
}

/**
 * A ClientHello handshake message (type 1 · uint24 length · body) with the given extensions and
 * `cipherSuites` suites (at most 32 767: the list has a 16-bit length).
 */
export function clientHelloHandshake(extensions: Extension[], cipherSuites = 3): Buffer {
  const suites = Buffer.alloc(cipherSuites * 2);
  for (let i = 0; i < cipherSuites; i++)
    suites.writeUInt16BE([0x1301, 0x1302, 0xc02f][i] ?? 0x0a00 + i, i * 2);
  const exts = Buffer.concat(
    extensions.map((e) => Buffer.concat([Buffer.from([...u16(e.type), ...u16(e.data.length)]), e.data])),
  );
  const body = Buffer.concat([
    Buffer.from(u16(0x0303)),
    Buffer.alloc(32, 0xab), // random
    Buffer.from([32]),
    Buffer.alloc(32, 0xcd), // session id
    Buffer.from(u16(suites.length)),
    suites,
    Buffer.from([1, 0]), // compression: null
    Buffer.from(u16(exts.length)),
    exts,
  ]);
  return Buffer.concat([Buffer.from([1, ...u24(body.length)]), body]);
}

/** Wraps a handshake message into TLS records of at most `fragment` bytes each. */
export function toRecords(handshake: Buffer, fragment = 16_384): Buffer {
  const records: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += fragment) {
    const part = handshake.subarray(i, Math.min(i + fragment, handshake.length));
    records.push(Buffer.concat([Buffer.from([22, 3, 1, ...u16(part.length)]), part]));
  }
  return Buffer.concat(records);
}

/** A complete ClientHello for `serverName` with `extra` extensions after the SNI. */
export function clientHello(
  serverName: string | Uint8Array | undefined,
  extra: Extension[] = [],
  cipherSuites?: number,
): Buffer {
  const exts = serverName === undefined ? extra : [sniExtension(serverName), ...extra];
  return toRecords(clientHelloHandshake(exts, cipherSuites));
}
