/** A synchronous, recording transport for driving one `MuxSession` by hand in unit tests. */
import {
  type ControlMessage,
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  MuxSession,
  type MuxSessionOptions,
  streamIdFromBytes,
} from '../../src/index.js';

export interface FakeSession {
  session: MuxSession;
  /** Every message the session sent, in order. */
  sent: Uint8Array[];
  /** Sets the transport's reported `bufferedAmount`. */
  setBuffered(bytes: number): void;
  controls(): ControlMessage[];
  dataFrames(): Array<{ id: string; payload: Buffer }>;
  clear(): void;
  pauses: number;
  resumes: number;
  /** Feeds a control message to the session. */
  control(message: ControlMessage): void;
  /** Feeds a DATA frame to the session. */
  data(id: string, payload: Uint8Array): void;
}

export function createFakeSession(
  options: Partial<MuxSessionOptions> & { role: 'hub' | 'backend' },
): FakeSession {
  const sent: Uint8Array[] = [];
  let buffered = 0;
  const fake = {} as FakeSession;
  fake.pauses = 0;
  fake.resumes = 0;
  const session = new MuxSession({
    transport: {
      send: (message) => sent.push(message),
      get bufferedAmount() {
        return buffered;
      },
    },
    pauseTransport: () => fake.pauses++,
    resumeTransport: () => fake.resumes++,
    ...options,
  });
  Object.assign(fake, {
    session,
    sent,
    setBuffered: (bytes: number) => {
      buffered = bytes;
    },
    controls: () =>
      sent
        .filter((m) => m[0] === 0x02)
        .map((m) => {
          const decoded = decodeBackendMessage(m);
          if (!decoded.ok || decoded.value.type !== 'control') throw new Error('bad control sent');
          return decoded.value.message;
        }),
    dataFrames: () =>
      sent
        .filter((m) => m[0] === 0x01)
        .map((m) => ({ id: streamIdFromBytes(m, 1), payload: Buffer.from(m.subarray(17)) })),
    clear: () => {
      sent.length = 0;
    },
    control: (message: ControlMessage) => session.receive(encodeControlMessage(message)),
    data: (id: string, payload: Uint8Array) => session.receive(encodeDataFrame(id, payload)),
  });
  return fake;
}
