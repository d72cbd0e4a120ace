/**
 * A binary message received as parts: views of the transport's reads, in order, not joined (the
 * WebSocket links of `@nexus-proxy/common` deliver DATA frames this way, see its ws-data-frames.ts). A DATA
 * frame keeps its payload as views; only its 17-byte header is copied, when it straddles two parts.
 */
import { toBuffer } from './buffer-view.js';
import { DATA_HEADER_LENGTH } from './frame.js';
import { streamIdFromBytes } from './stream-id.js';

/** A DATA frame's stream id and payload parts (`length` bytes in all; no empty part). */
export interface DataFrameParts {
  readonly id: string;
  readonly payload: Buffer[];
  readonly length: number;
}

/**
 * The DATA frame in `parts` (`length` bytes in all), or undefined when the message is no DATA frame of
 * type `dataFrameType` between its header's length and `maxMessageSize` bytes.
 */
export function dataFrameParts(
  parts: readonly Uint8Array[],
  length: number,
  dataFrameType: number,
  maxMessageSize: number,
): DataFrameParts | undefined {
  if (length < DATA_HEADER_LENGTH || length > maxMessageSize) return undefined;
  const first = parts[0]!;
  if (first[0] !== dataFrameType) return undefined;
  const header =
    first.length >= DATA_HEADER_LENGTH
      ? first
      : Buffer.concat(parts.slice(0, DATA_HEADER_LENGTH), DATA_HEADER_LENGTH);
  const payload: Buffer[] = [];
  let skip = DATA_HEADER_LENGTH;
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    payload.push(toBuffer(skip === 0 ? part : part.subarray(skip)));
    skip = 0;
  }
  return { id: streamIdFromBytes(header, 1), payload, length: length - DATA_HEADER_LENGTH };
}

/** The message of `parts` as one buffer (a view when it is one part already). */
export function joinParts(parts: readonly Uint8Array[], length?: number): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}
