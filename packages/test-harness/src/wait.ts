/** Waiting for state that has no event, and pacing real traffic. */

/**
 * Resolves once `condition()` holds (polled every 10 ms; it may be async), or rejects after `timeoutMs`
 * naming `what`. For assertions that should eventually hold, `vi.waitFor` reads better.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** Resolves after `ms` (only for pacing real traffic; state changes are awaited with {@link waitUntil}). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
