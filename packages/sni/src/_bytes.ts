/**
 * Bytes → string, one char per byte. Socket data arrives as `Buffer`s, whose native `toString` is the
 * cheapest way to make a string; plain `Uint8Array`s fall back to a loop.
 */
export function latin1(b: Uint8Array, start: number, end: number): string {
  if (b instanceof Buffer) return b.toString('latin1', start, end);
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** True when `b[start, end)` holds exactly the ASCII characters of `text`. */
export function bytesEqual(b: Uint8Array, start: number, end: number, text: string): boolean {
  if (end - start !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (b[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * Returns the interned string from `known` equal to `b[start, end)`, or a new string. Saves an
 * allocation for the handful of values (methods, ALPN ids) almost every connection carries.
 */
export function internLatin1(b: Uint8Array, start: number, end: number, known: readonly string[]): string {
  for (let k = 0; k < known.length; k++) if (bytesEqual(b, start, end, known[k]!)) return known[k]!;
  return latin1(b, start, end);
}
