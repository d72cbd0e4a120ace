/**
 * Access to the admin listener when it has a token. Scripts send `Authorization: Bearer <token>`. A
 * browser cannot add that header to a page or an EventSource, so the dashboard has a login form
 * (`POST /login`, the token in the body: never in a URL, a history entry or a Referer) that sets a
 * session cookie: an HMAC of a per-process random key under the token (the cookie is not the token, and
 * it stops working when the node restarts or the token changes), `HttpOnly` (no script reads it),
 * `SameSite=Strict` (no other site's page sends it), 12 hours. The cookie opens the dashboard (`/`,
 * `/events`) only; `/metrics` and `/status` keep asking for the bearer token. Failed logins are limited
 * to {@link LOGIN_FAILURES_PER_MINUTE} a minute for the whole listener.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Name of the dashboard's session cookie. */
export const SESSION_COOKIE = 'nexus_admin_session';
/** Lifetime of the session cookie, seconds (12 h). */
export const SESSION_MAX_AGE_SECONDS = 12 * 3_600;
/** Failed logins accepted per minute (all clients together); more are answered 429. */
export const LOGIN_FAILURES_PER_MINUTE = 10;
/** Largest login form body read, bytes. */
const MAX_LOGIN_BODY = 4 * 1024;

/** Constant-time comparison of two strings (digests: equal lengths). */
function sameSecret(given: string, wanted: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(wanted).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer` header, if there is one. */
function bearer(req: IncomingMessage): string | undefined {
  return /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Reads a small `application/x-www-form-urlencoded` body; `undefined` when it is too large or not a form. */
function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  return new Promise((resolve) => {
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, and the form counts as wrong.
      if (size <= MAX_LOGIN_BODY) chunks.push(chunk);
    });
    req.on('end', () =>
      resolve(
        size > MAX_LOGIN_BODY ? undefined : new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      ),
    );
    req.on('error', () => resolve(undefined));
  });
}

/** Access checks of one admin listener. */
export interface AdminAuth {
  /** Whether the request carries the bearer token (always true without a token). */
  bearer(req: IncomingMessage): boolean;
  /** Whether the request carries the bearer token or a valid session cookie. */
  session(req: IncomingMessage): boolean;
  /**
   * Handles `POST /login`: a right token answers 303 to `/` with the session cookie; a wrong one calls
   * `refused(res, message)` (the caller renders the form again).
   */
  login(
    req: IncomingMessage,
    res: ServerResponse,
    refused: (res: ServerResponse, status: number, message: string) => void,
  ): Promise<void>;
  /** Answers `GET /logout`: clears the cookie, 303 to `/`. */
  logout(res: ServerResponse): void;
}

/** Access checks for `token` (`undefined`: everything open). */
export function createAdminAuth(token: string | undefined, now: () => number = Date.now): AdminAuth {
  const key = randomBytes(32);
  const session = token === undefined ? '' : createHmac('sha256', key).update(token).digest('base64url');
  let windowStart = 0;
  let failures = 0;
  return {
    bearer(req) {
      return token === undefined || sameSecret(bearer(req) ?? '', token);
    },
    session(req) {
      if (token === undefined) return true;
      if (sameSecret(bearer(req) ?? '', token)) return true;
      return sameSecret(cookie(req, SESSION_COOKIE) ?? '', session);
    },
    async login(req, res, refused) {
      if (now() - windowStart >= 60_000) {
        windowStart = now();
        failures = 0;
      }
      if (failures >= LOGIN_FAILURES_PER_MINUTE) {
        req.resume();
        refused(res, 429, 'Too many failed logins: wait a minute.');
        return;
      }
      const form = await readForm(req);
      const given = form?.get('token')?.trim() ?? '';
      if (token === undefined || !sameSecret(given, token) || given === '') {
        if (token !== undefined) failures++;
        refused(
          res,
          token === undefined ? 400 : 401,
          token === undefined ? 'No token is set.' : 'Wrong token.',
        );
        return;
      }
      res.writeHead(303, {
        location: '/',
        'set-cookie': `${SESSION_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_SECONDS}`,
        'cache-control': 'no-store',
        'content-length': 0,
      });
      res.end();
    },
    logout(res) {
      res.writeHead(303, {
        location: '/',
        'set-cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`,
        'cache-control': 'no-store',
        'content-length': 0,
      });
      res.end();
    },
  };
}
