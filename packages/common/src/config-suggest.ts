/** "Did you mean …?" for unknown configuration keys. */
import { distance } from 'fastest-levenshtein';

const MAX_SUGGESTED_KEY_LENGTH = 128;

/**
 * The known key closest to `key`, when it is close enough to be a likely typo: the same key in another
 * case, or at most `max(2, ⌊length/4⌋)` edits away (`relayPort` → `relayPorts`).
 */
export function didYouMean(key: string, known: Iterable<string>): string | undefined {
  // No key is this long; comparing a hostile multi-megabyte key with every known one would only cost time.
  if (key.length > MAX_SUGGESTED_KEY_LENGTH) return undefined;
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase());
    if (d === 0) return k;
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

/** `is not a known key (did you mean \`relayPorts\`?)`, or without the hint when nothing is close. */
export function unknownKeyDetail(key: string, known: Iterable<string>): string {
  const hint = didYouMean(key, known);
  return `is not a known key${hint === undefined ? '' : ` (did you mean \`${hint}\`?)`}`;
}
