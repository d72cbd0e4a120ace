/**
 * The optional `bufferutil` package (native WebSocket masking, the one ws itself uses when installed),
 * loaded once for the modules that mask or unmask frames themselves.
 */
import { createRequire } from 'node:module';

/** `bufferutil`'s functions (RFC 6455 §5.3 masking). */
export interface BufferUtil {
  /** Writes `source` masked with `mask` into `output` at `offset`, `length` bytes. */
  mask(source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number): void;
  /** Unmasks `buffer` in place with `mask` (its first byte with `mask[0]`). */
  unmask(buffer: Uint8Array, mask: Uint8Array): void;
}

let loaded: BufferUtil | null | undefined;

/** `bufferutil`, or null when it is not installed or ws is told not to use it (`WS_NO_BUFFER_UTIL`). */
export function nativeBufferUtil(): BufferUtil | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.WS_NO_BUFFER_UTIL) return loaded;
  try {
    const require = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);
    const mod = require('bufferutil') as Partial<BufferUtil>;
    if (typeof mod.mask === 'function' && typeof mod.unmask === 'function') loaded = mod as BufferUtil;
  } catch {
    // Optional dependency not installed: masking runs in JS.
  }
  return loaded;
}
