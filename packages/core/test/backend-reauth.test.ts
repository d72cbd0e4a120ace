import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendReauth, type BackendReauthOptions } from '../src/backend-reauth.js';
import { parseCurrentClaims } from '../src/current-claims.js';
import { AuthError } from '../src/errors.js';
import { noopLogger } from '../src/logger.js';

/** Test tokens are the claims as JSON (the verifier is not what these tests are about). */
const verifyToken = async (token: string) => {
  if (token === 'bad-signature') throw new AuthError('invalid token signature');
  return JSON.parse(token) as Record<string, unknown>;
};
const base = { iss: 'authorizer', aud: ['nexus'], hostnames: ['a.test'], weight: 2 };

function setup(claims: Record<string, unknown>, extra: Partial<BackendReauthOptions> = {}) {
  const sent: Array<{ type: string; nonce: string }> = [];
  const failures: string[] = [];
  const warnings: string[] = [];
  const logger = {
    ...noopLogger,
    warn: (a: unknown, b?: unknown) => warnings.push(String(typeof a === 'string' ? a : b)),
    child: () => logger,
  };
  const reauth = new BackendReauth({
    claims: parseCurrentClaims({ ...base, ...claims }),
    verifyToken,
    policy: { ...parseDefaults },
    sendText: (text) => sent.push(JSON.parse(text)),
    fail: (reason) => failures.push(reason),
    logger,
    ...extra,
  });
  reauth.start();
  /** The backend's answer to the latest challenge, with `over` claims. */
  const answer = (over: Record<string, unknown> = {}) =>
    reauth.handleText(JSON.stringify({ ...base, ...claims, session_nonce: sent.at(-1)?.nonce, ...over }));
  return { reauth, sent, failures, warnings, answer };
}
const parseDefaults = {
  allowedTCPPortClaims: [],
  allowedUDPPortClaims: [],
  udpFlowIdleTimeoutDefaultSeconds: 30,
  udpFlowIdleTimeoutMinSeconds: 5,
  udpFlowIdleTimeoutMaxSeconds: 300,
  allowOutbound: false,
  allowedOutboundPorts: [],
  maxHostnames: 1000,
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('BackendReauth', () => {
  it('challenges after the interval plus less than a fifth of it, and again after each good answer', async () => {
    const { reauth, sent, failures, answer } = setup({ reauth_interval_seconds: 10 });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_001);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.type).toBe('reauth_challenge');
    expect(sent[0]?.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    answer({ policy_version: 'v2' });
    await vi.advanceTimersByTimeAsync(0);
    expect(reauth.rounds).toBe(1);
    expect(reauth.claims.policyVersion).toBe('v2');
    await vi.advanceTimersByTimeAsync(12_000);
    expect(sent).toHaveLength(2);
    expect(sent[1]?.nonce).not.toBe(sent[0]?.nonce);
    expect(failures).toEqual([]);
    reauth.stop();
  });

  it('closes the session when the answer is later than reauth_grace_seconds (default 10 s)', async () => {
    const { sent, failures, answer } = setup({ reauth_interval_seconds: 1 });
    while (sent.length === 0) await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(failures).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(failures).toEqual(['re-authentication timed out']);
    answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(failures).toHaveLength(1);
  });

  it('uses reauth_grace_seconds from the claims', async () => {
    const { failures } = setup({ reauth_interval_seconds: 1, reauth_grace_seconds: 2 });
    await vi.advanceTimersByTimeAsync(1_200 + 2_000);
    expect(failures).toEqual(['re-authentication timed out']);
  });

  for (const [name, over, reason] of [
    ['a wrong nonce', { session_nonce: 'other' }, 're-authentication nonce mismatch'],
    [
      'a changed hostname set',
      { hostnames: ['a.test', 'b.test'] },
      'hostnames differ from the registered set',
    ],
    ['a weight change', { weight: 3 }, 'weight differs from the registered set'],
    ['a bad signature', 'bad-signature', 'invalid token signature'],
  ] as const) {
    it(`closes the session on ${name}`, async () => {
      const { reauth, sent, failures, answer } = setup({ reauth_interval_seconds: 1 });
      await vi.advanceTimersByTimeAsync(1_200);
      expect(sent).toHaveLength(1);
      if (typeof over === 'string') reauth.handleText(over);
      else answer(over);
      await vi.advanceTimersByTimeAsync(0);
      expect(failures).toEqual([reason]);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(sent).toHaveLength(1);
    });
  }

  it('ignores text messages while no challenge is pending, logging them rate-limited', async () => {
    const { reauth, failures, warnings } = setup({ reauth_interval_seconds: 60 });
    for (let i = 0; i < 5; i++) reauth.handleText('hello');
    expect(failures).toEqual([]);
    expect(warnings.filter((w) => w.includes('no re-authentication is pending'))).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(warnings.some((w) => w.includes('more unexpected text messages'))).toBe(true);
    reauth.stop();
  });

  it('keeps the weight when the answer claims none, and stops when the answer drops the interval', async () => {
    const { reauth, sent, failures, answer } = setup({ reauth_interval_seconds: 1 });
    await vi.advanceTimersByTimeAsync(1_200);
    answer({ weight: 0, reauth_interval_seconds: undefined });
    await vi.advanceTimersByTimeAsync(0);
    expect(reauth.rounds).toBe(1);
    expect(reauth.claims.weight).toBe(2);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(sent).toHaveLength(1);
    expect(failures).toEqual([]);
  });

  it('defers while the authorizer is unhealthy, up to maintenance_grace_cap_seconds, then challenges anyway', async () => {
    const checks: number[] = [];
    const { sent, failures } = setup(
      {
        reauth_interval_seconds: 10,
        maintenance_grace_cap_seconds: 25,
        authorizer_status_uri: 'https://auth.test/s',
      },
      {
        checkStatus: async () => {
          checks.push(Date.now());
          return false;
        },
      },
    );
    const start = Date.now();
    while (sent.length === 0 && Date.now() - start < 60_000) await vi.advanceTimersByTimeAsync(100);
    const at = Date.now() - start;
    // First round at 10–12 s, then 25 s of deferral in waits of min(interval, remaining) plus jitter.
    expect(at).toBeGreaterThanOrEqual(35_000);
    expect(at).toBeLessThanOrEqual(37_100);
    expect(checks).toHaveLength(4);
    expect(failures).toEqual([]);
  });

  it('challenges at once when the authorizer is healthy, and defers by maintenanceGraceDefaultSeconds when the claims name no cap', async () => {
    let healthy = true;
    let checks = 0;
    const { sent, answer } = setup(
      { reauth_interval_seconds: 10, authorizer_status_uri: 'https://auth.test/s' },
      {
        maintenanceGraceDefaultSeconds: 15,
        checkStatus: async () => {
          checks++;
          return healthy;
        },
      },
    );
    await vi.advanceTimersByTimeAsync(12_000);
    expect(checks).toBe(1);
    expect(sent).toHaveLength(1);
    answer();
    healthy = false;
    const start = Date.now();
    while (sent.length === 1 && Date.now() - start < 60_000) await vi.advanceTimersByTimeAsync(100);
    // Next round after 10–12 s, then 15 s deferred (10–12 s, then the rest of the cap).
    expect(Date.now() - start).toBeGreaterThanOrEqual(25_000);
    expect(Date.now() - start).toBeLessThanOrEqual(27_100);
    expect(checks).toBe(4);
  });

  it('stop() clears every timer: no challenge and no failure afterwards', async () => {
    const { reauth, sent, failures } = setup({ reauth_interval_seconds: 1 });
    await vi.advanceTimersByTimeAsync(1_200);
    expect(sent).toHaveLength(1);
    reauth.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(sent).toHaveLength(1);
    expect(failures).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does nothing without reauth_interval_seconds', async () => {
    const { sent } = setup({});
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(sent).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
