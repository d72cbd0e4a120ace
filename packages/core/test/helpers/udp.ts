/**
 * UDP helpers for the UDP relay's tests: a free port (the harness's), an echo target, and an end user that sends numbered
 * datagrams with at most `window` unanswered at a time and checks every answer. Loopback sockets drop
 * datagrams when their buffers overflow, so the sender keeps a window rather than a blast: a datagram not
 * answered within `lossAfterMs` is counted as lost (and the run goes on), so a test knows exactly how many
 * were lost instead of hanging.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';

export { freeUdpPort } from '@nexus-proxy/test-harness';

/** A UDP target: echoes every datagram (or stays silent with `silent`), counting what it got. */
export interface UdpTarget {
  port: number;
  received: number;
  /** Source ports seen (one per flow of the backend client). */
  sources: Set<number>;
  close(): Promise<void>;
}

export async function startUdpEcho(options: { silent?: boolean } = {}): Promise<UdpTarget> {
  const socket = dgram.createSocket('udp4');
  const target: UdpTarget = {
    port: 0,
    received: 0,
    sources: new Set(),
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on('message', (msg, rinfo) => {
    target.received++;
    target.sources.add(rinfo.port);
    if (!options.silent) socket.send(msg, rinfo.port, rinfo.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  target.port = socket.address().port;
  return target;
}

/** What {@link echoRun} measured. */
export interface EchoRun {
  sent: number;
  /** Answers that matched a datagram sent (same sequence number and bytes). */
  echoed: number;
  /** Datagrams without an answer within `lossAfterMs`. */
  lost: number;
  /** Answers whose bytes differed from what was sent. */
  corrupt: number;
  ms: number;
}

/** An end user's UDP socket toward `host:port`. */
export interface UdpUser {
  socket: dgram.Socket;
  /** Its source port (what the node keys its flow by). */
  port: number;
  close(): Promise<void>;
}

export async function udpUser(host = '127.0.0.1'): Promise<UdpUser> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.bind(0, host);
  await once(socket, 'listening');
  return {
    socket,
    port: socket.address().port,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

function datagram(seq: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(seq, 0);
  for (let i = 4; i < size; i++) b[i] = (seq + i) & 0xff;
  return b;
}

/**
 * Sends `count` numbered datagrams of `size` bytes from `user` to `host:port`, keeping at most `window`
 * unanswered, and checks each answer against what was sent.
 */
export function echoRun(
  user: UdpUser,
  port: number,
  options: { count: number; window?: number; size?: number; host?: string; lossAfterMs?: number },
): Promise<EchoRun> {
  const { count } = options;
  const window = options.window ?? 32;
  const size = Math.max(8, options.size ?? 200);
  const host = options.host ?? '127.0.0.1';
  const lossAfterMs = options.lossAfterMs ?? 2_000;
  const outstanding = new Map<number, number>();
  const run: EchoRun = { sent: 0, echoed: 0, lost: 0, corrupt: 0, ms: 0 };
  const started = performance.now();
  return new Promise((resolve) => {
    const sendMore = () => {
      while (outstanding.size < window && run.sent < count) {
        const seq = run.sent++;
        outstanding.set(seq, performance.now());
        user.socket.send(datagram(seq, size), port, host);
      }
      if (run.echoed + run.lost + run.corrupt === count) finish();
    };
    const onMessage = (msg: Buffer) => {
      if (msg.length < 4) return;
      const seq = msg.readUInt32BE(0);
      if (!outstanding.delete(seq)) return;
      if (msg.equals(datagram(seq, size))) run.echoed++;
      else run.corrupt++;
      sendMore();
    };
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const [seq, at] of outstanding) {
        if (now - at < lossAfterMs) continue;
        outstanding.delete(seq);
        run.lost++;
      }
      sendMore();
    }, 100);
    const finish = () => {
      clearInterval(sweep);
      user.socket.off('message', onMessage);
      run.ms = performance.now() - started;
      resolve(run);
    };
    user.socket.on('message', onMessage);
    sendMore();
  });
}
