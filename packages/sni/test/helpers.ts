import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Names of the captured ClientHello fixtures (`test/fixtures/<name>.hex`). */
export function fixtureNames(): string[] {
  return readdirSync(fixturesDir)
    .filter((f) => f.endsWith('.hex'))
    .map((f) => f.slice(0, -4))
    .sort();
}

/** Loads a hex fixture; lines starting with '#' are comments. */
export function loadFixture(name: string): Uint8Array {
  const text = readFileSync(join(fixturesDir, `${name}.hex`), 'utf8');
  const hex = text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('')
    .replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

export function u24(n: number): number[] {
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

export function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const total = parts.reduce((sum, p) => sum + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export interface Extension {
  type: number;
  data: ArrayLike<number>;
}

/** server_name extension data with the given entries (RFC 6066 §3). */
export function serverNameExtension(
  ...entries: { type?: number; name: ArrayLike<number> | string }[]
): Extension {
  const list = concat(
    ...entries.map((e) => {
      const name = typeof e.name === 'string' ? Buffer.from(e.name, 'latin1') : e.name;
      return concat([e.type ?? 0], u16(name.length), name);
    }),
  );
  return { type: 0, data: concat(u16(list.length), list) };
}

/** ALPN extension data (RFC 7301 §3.1). */
export function alpnExtension(...protocols: (string | number[])[]): Extension {
  const list = concat(
    ...protocols.map((p) => {
      const bytes = typeof p === 'string' ? Buffer.from(p, 'latin1') : p;
      return concat([bytes.length], bytes);
    }),
  );
  return { type: 0x10, data: concat(u16(list.length), list) };
}

export interface ClientHelloSpec {
  legacyVersion?: number;
  sessionIdLength?: number;
  cipherSuites?: number[];
  /** `undefined` leaves the extensions block out entirely (legal before TLS 1.3). */
  extensions?: Extension[];
}

/** A ClientHello handshake message (type 1 · uint24 length · body). */
export function buildHandshake(spec: ClientHelloSpec = {}): Uint8Array {
  const suites = spec.cipherSuites ?? [0x1301, 0x1302, 0xc02f];
  const sidLen = spec.sessionIdLength ?? 32;
  const parts: ArrayLike<number>[] = [
    u16(spec.legacyVersion ?? 0x0303),
    new Uint8Array(32).fill(0xab),
    [sidLen],
    new Uint8Array(sidLen).fill(0xcd),
    u16(suites.length * 2),
    ...suites.map(u16),
    [1, 0],
  ];
  if (spec.extensions !== undefined) {
    const exts = concat(...spec.extensions.map((e) => concat(u16(e.type), u16(e.data.length), e.data)));
    parts.push(u16(exts.length), exts);
  }
  const body = concat(...parts);
  return concat([1], u24(body.length), body);
}

/** Wraps handshake bytes into handshake records of at most `fragmentSize` payload bytes each. */
export function toRecords(handshake: Uint8Array, fragmentSize = 16_384, recordVersion = 0x0301): Uint8Array {
  const records: Uint8Array[] = [];
  for (let i = 0; i < handshake.length; i += fragmentSize) {
    const frag = handshake.subarray(i, Math.min(i + fragmentSize, handshake.length));
    records.push(concat([22], u16(recordVersion), u16(frag.length), frag));
  }
  return concat(...records);
}

/** The handshake bytes carried by a sequence of complete handshake records. */
export function handshakeOf(records: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let p = 0; p < records.length; ) {
    const len = (records[p + 3]! << 8) | records[p + 4]!;
    parts.push(records.subarray(p + 5, p + 5 + len));
    p += 5 + len;
  }
  return concat(...parts);
}

/** A complete single-record ClientHello. */
export function buildClientHello(spec: ClientHelloSpec = {}, fragmentSize?: number): Uint8Array {
  return toRecords(buildHandshake(spec), fragmentSize);
}

/**
 * Independent reference for "how long is the first complete ClientHello" (no validation beyond lengths),
 * used by the capture server so the parser under test does not decide what it is tested on.
 */
export function referenceWireLength(buf: Uint8Array): number {
  let pos = 0;
  let carried = 0;
  let total = -1;
  const header: number[] = [];
  while (pos + 5 <= buf.length) {
    const len = (buf[pos + 3]! << 8) | buf[pos + 4]!;
    if (pos + 5 + len > buf.length) return -1;
    for (let i = 0; i < len && header.length < 4; i++) header.push(buf[pos + 5 + i]!);
    if (total < 0 && header.length === 4) total = 4 + ((header[1]! << 16) | (header[2]! << 8) | header[3]!);
    carried += len;
    pos += 5 + len;
    if (total >= 0 && carried >= total) return pos;
  }
  return -1;
}

export const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
