/**
 * The re-authentication answers' bounds against a hub that asks too often, on fake timers: one token at
 * a time, at least 1 s between an answer and the next provider run, the newest nonce answered, and a
 * flood of early challenges ending the session — while a hub that asks every second is answered at once.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AttestationContext } from '../src/attestation.js';
import { type BackendClientError, SessionError, TokenError } from '../src/errors.js';
import {
  MAX_EARLY_REAUTH_CHALLENGES,
  REAUTH_MIN_SPACING_MS,
  ReauthResponder,
} from '../src/reauth-responder.js';
import type { TokenRequest } from '../src/token-provider.js';

const challenge = (nonce: string) => Buffer.from(JSON.stringify({ type: 'reauth_challenge', nonce }));

/** A responder whose provider answers `tok.<nonce>` (at once, or when `release()` is called). */
function setup(options: { manual?: boolean } = {}) {
  const requests: TokenRequest[] = [];
  const waiting: Array<() => void> = [];
  const sent: string[] = [];
  const failures: BackendClientError[] = [];
  const floods: SessionError[] = [];
  const context: AttestationContext = {
    provider: (request) => {
      requests.push(request);
      const token = `tok.${request.sessionNonce}`;
      if (!options.manual) return token;
      return new Promise<string>((resolve) => waiting.push(() => resolve(token)));
    },
    identity: {
      backendName: 'device-7',
      hostnames: ['app.example.com'],
      tcpPorts: [],
      udpRoutes: [],
      weight: 1,
      outboundAllowed: false,
      allowedOutboundPorts: [],
    },
    challengeTimeoutMs: 15_000,
    issueTimeoutMs: 30_000,
  };
  const responder = new ReauthResponder(context, {
    send: (token) => sent.push(token),
    fail: (err) => failures.push(err),
    flooded: (err) => floods.push(err),
    answered: () => {},
    ignored: () => {},
  });
  const release = async (): Promise<void> => {
    waiting.shift()!();
    await vi.advanceTimersByTimeAsync(0);
  };
  return { responder, requests, sent, failures, floods, release };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ReauthResponder', () => {
  it('answers a hub that asks every second (or a hair sooner) at once, round after round', async () => {
    const { responder, requests, sent, floods } = setup();
    for (let round = 0; round < 20; round++) {
      responder.onText(challenge(`n${round}`));
      await vi.advanceTimersByTimeAsync(1); // at once, or after the millisecond the hub's timer was early
      expect(sent.at(-1)).toBe(`tok.n${round}`);
      // The reference hub's next round: its interval (1 s, a timer that may fire a millisecond early)
      // after it received the answer.
      await vi.advanceTimersByTimeAsync(
        round % 2 === 0 ? REAUTH_MIN_SPACING_MS + 3 : REAUTH_MIN_SPACING_MS - 1,
      );
    }
    expect(requests.map((r) => [r.stage, r.sessionNonce])).toEqual(
      Array.from({ length: 20 }, (_, i) => ['reauth', `n${i}`]),
    );
    expect(sent).toHaveLength(20);
    expect(floods).toEqual([]);
  });

  it('a flood of back-to-back challenges runs the provider once, then closes the session', async () => {
    const { responder, requests, sent, floods, failures, release } = setup({ manual: true });
    for (let i = 0; i < 100; i++) responder.onText(challenge(`flood${i}`));
    expect(requests.map((r) => r.sessionNonce)).toEqual(['flood0']);
    expect(floods).toHaveLength(1);
    expect(floods[0]).toBeInstanceOf(SessionError);
    expect(floods[0]!.message).toBe(
      `the hub sent ${MAX_EARLY_REAUTH_CHALLENGES + 1} reauth_challenge frames in a row before its previous one was answered or within 500 ms of the answer`,
    );
    await release(); // the token issued meanwhile is dropped: the session is over
    await vi.advanceTimersByTimeAsync(60_000);
    expect(requests).toHaveLength(1);
    expect(sent).toEqual([]);
    expect(failures).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a hub answering each answer with a new challenge gets one per second, then is cut off', async () => {
    const { responder, requests, sent, floods } = setup();
    responder.onText(challenge('c0'));
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual(['tok.c0']);
    for (let i = 1; i <= MAX_EARLY_REAUTH_CHALLENGES; i++) {
      responder.onText(challenge(`c${i}`));
      await vi.advanceTimersByTimeAsync(REAUTH_MIN_SPACING_MS - 1);
      expect(sent).toHaveLength(i); // held back for the spacing…
      await vi.advanceTimersByTimeAsync(1);
      expect(sent.at(-1)).toBe(`tok.c${i}`); // …then answered
    }
    expect(floods).toEqual([]);
    responder.onText(challenge('one-too-many'));
    expect(floods).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(requests).toHaveLength(MAX_EARLY_REAUTH_CHALLENGES + 1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a challenge arriving while one is issued supersedes the waiting one; the newest is answered after the spacing', async () => {
    const { responder, requests, sent, floods, release } = setup({ manual: true });
    responder.onText(challenge('a'));
    responder.onText(challenge('b'));
    responder.onText(challenge('c'));
    expect(requests.map((r) => r.sessionNonce)).toEqual(['a']); // one at a time
    await release();
    expect(sent).toEqual(['tok.a']);
    await vi.advanceTimersByTimeAsync(REAUTH_MIN_SPACING_MS - 1);
    expect(requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(requests.map((r) => r.sessionNonce)).toEqual(['a', 'c']); // b was superseded
    await release();
    expect(sent).toEqual(['tok.a', 'tok.c']);
    expect(floods).toEqual([]);
  });

  it('an on-time challenge resets the early count', async () => {
    const { responder, sent, floods } = setup();
    for (let cycle = 0; cycle < 3; cycle++) {
      // On time, then early ones up to the limit, each answered after the spacing.
      await vi.advanceTimersByTimeAsync(REAUTH_MIN_SPACING_MS);
      responder.onText(challenge(`on-time-${cycle}`));
      await vi.advanceTimersByTimeAsync(0);
      for (let i = 0; i < MAX_EARLY_REAUTH_CHALLENGES; i++) {
        responder.onText(challenge(`early-${cycle}-${i}`));
        await vi.advanceTimersByTimeAsync(REAUTH_MIN_SPACING_MS);
      }
    }
    expect(floods).toEqual([]);
    expect(sent).toHaveLength(3 * (MAX_EARLY_REAUTH_CHALLENGES + 1));
  });

  it('stop() drops the waiting answer and its timer; a failing provider fails once', async () => {
    const { responder, requests, failures } = setup();
    responder.onText(challenge('x'));
    await vi.advanceTimersByTimeAsync(0);
    responder.onText(challenge('y'));
    expect(vi.getTimerCount()).toBe(1); // the spacing
    responder.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(requests).toHaveLength(1);
    expect(failures).toEqual([]);

    const failing = new ReauthResponder(
      { ...setupContextThatFails() },
      {
        send: () => {},
        fail: (err) => failures.push(err),
        flooded: () => {},
        answered: () => {},
        ignored: () => {},
      },
    );
    failing.onText(challenge('z'));
    await vi.advanceTimersByTimeAsync(0);
    failing.onText(challenge('z2'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(TokenError);
  });
});

function setupContextThatFails(): AttestationContext {
  return {
    provider: () => {
      throw new Error('attestor offline');
    },
    identity: {
      backendName: 'device-7',
      hostnames: [],
      tcpPorts: [],
      udpRoutes: [],
      weight: 1,
      outboundAllowed: false,
      allowedOutboundPorts: [],
    },
    challengeTimeoutMs: 15_000,
    issueTimeoutMs: 30_000,
  };
}
