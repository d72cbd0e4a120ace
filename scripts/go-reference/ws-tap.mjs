#!/usr/bin/env node
/**
 * A logging TLS relay for looking at the backend protocol on the wire (diagnostics only, loopback only):
 * it terminates the backend client's TLS with the given certificate, opens its own TLS connection to the
 * real hub, copies bytes both ways unchanged, and prints the HTTP upgrade and every WebSocket frame it
 * sees (direction, opcode, length, text payloads in full, binary payloads as a hex prefix and control JSON
 * as text, close code and reason).
 *
 *   node ws-tap.mjs <listen-port> <hub-port> <cert.pem> <key.pem> <ca.pem>
 *
 * Both ports are on 127.0.0.1. Output goes to stdout, one line per frame.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [listenPort, hubPort, certFile, keyFile, caFile] = process.argv.slice(2);
if (!caFile) {
  console.error('usage: ws-tap.mjs <listen-port> <hub-port> <cert.pem> <key.pem> <ca.pem>');
  process.exit(2);
}
const started = Date.now();
const stamp = () => `+${String(Date.now() - started).padStart(6)}ms`;
const MAX_BUFFERED = 1 << 20;

function describe(opcode, payload) {
  if (opcode === 0x1) return `text ${JSON.stringify(payload.toString('utf8'))}`;
  if (opcode === 0x8) {
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : '(none)';
    return `close code=${code} reason=${JSON.stringify(payload.subarray(2).toString('utf8'))}`;
  }
  if (opcode === 0x9 || opcode === 0xa) return `${opcode === 0x9 ? 'ping' : 'pong'} ${payload.length} B`;
  if (opcode === 0x2 && payload[0] === 0x02) return `binary control ${payload.subarray(1).toString('utf8')}`;
  if (opcode === 0x2)
    return `binary type=0x${payload[0]?.toString(16)} ${payload.subarray(0, 24).toString('hex')}`;
  return `opcode=0x${opcode.toString(16)} ${payload.length} B`;
}

/** Returns a function fed with the bytes of one direction; prints the upgrade head, then frames. */
function decoder(label) {
  let buf = Buffer.alloc(0);
  let inHead = true;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length > MAX_BUFFERED) {
      console.log(`${stamp()} ${label} (more than ${MAX_BUFFERED} B undecoded; decoding stopped)`);
      buf = Buffer.alloc(0);
      return;
    }
    if (inHead) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      console.log(`${stamp()} ${label} HTTP ${JSON.stringify(buf.subarray(0, end).toString('latin1'))}`);
      buf = buf.subarray(end + 4);
      inHead = false;
    }
    for (;;) {
      if (buf.length < 2) return;
      const fin = buf[0] & 0x80;
      const opcode = buf[0] & 0x0f;
      const masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
      console.log(
        `${stamp()} ${label} ${fin ? '' : '(fragment) '}${masked ? 'masked ' : ''}${len} B ${describe(opcode, payload)}`,
      );
      buf = buf.subarray(off + len);
    }
  };
}

const server = tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (down) => {
  console.log(`${stamp()} connection from ${down.remoteAddress}:${down.remotePort}`);
  const up = tls.connect({
    host: '127.0.0.1',
    port: Number(hubPort),
    ca: readFileSync(caFile),
    servername: 'localhost',
  });
  const toHub = decoder('backend→hub');
  const toBackend = decoder('hub→backend');
  down.on('data', (d) => {
    toHub(d);
    up.write(d);
  });
  up.on('data', (d) => {
    toBackend(d);
    down.write(d);
  });
  const end = (who) => () => {
    console.log(`${stamp()} ${who} closed`);
    down.destroy();
    up.destroy();
  };
  down.on('close', end('backend side'));
  up.on('close', end('hub side'));
  down.on('error', (e) => console.log(`${stamp()} backend side error ${e.message}`));
  up.on('error', (e) => console.log(`${stamp()} hub side error ${e.message}`));
});
server.listen(Number(listenPort), '127.0.0.1', () =>
  console.log(`tap on 127.0.0.1:${listenPort} → 127.0.0.1:${hubPort}`),
);
