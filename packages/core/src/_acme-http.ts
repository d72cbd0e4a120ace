import type * as https from 'node:https';
import type * as acme from 'acme-client';
import { AcmeError } from './errors.js';

/** An RFC 7807 problem document as an ACME server returns it (RFC 8555 §6.7). */
export interface AcmeProblem {
  /** Problem type URN, e.g. `urn:ietf:params:acme:error:unauthorized`. */
  type?: string;
  /** Human-readable explanation. */
  detail?: string;
  /** HTTP status the server answered with. */
  status?: number;
  /** Per-identifier problems (RFC 8555 §6.7.1). */
  subproblems?: unknown[];
}

/** Options of `routeClientRequests`. @internal */
export interface AcmeTransportOptions {
  /** Agent for HTTPS requests to the ACME server (extra CA). Default: Node's global agent. */
  httpsAgent?: https.Agent;
  /** Per-request timeout in ms. */
  timeout: number;
  /** Called with every problem document the server sends back (error answers and invalid objects). */
  onProblem(problem: AcmeProblem): void;
}

interface AxiosLikeResponse {
  status: number;
  headers: Record<string, unknown>;
  data: unknown;
}

interface RequestOptions {
  headers?: Record<string, string>;
  [key: string]: unknown;
}

interface HttpClientLike {
  request(url: string, method: string, opts?: RequestOptions): Promise<AxiosLikeResponse>;
}

/**
 * Sends one `acme.Client`'s requests through a private axios instance.
 *
 * Why: acme-client sends every request through one module-wide axios instance, so an extra CA set on
 * `acme.axios.defaults.httpsAgent` would apply to every other user of the library in the process, and its
 * shared retry interceptor waits 5 s × attempt on connection errors and then fails with a `TypeError` that
 * hides the real cause. A private instance (`acme.axios.create()`, which keeps acme-client's defaults but
 * not its interceptors) scopes the CA to this client, adds a timeout, and surfaces the real network error;
 * `AcmeCertificateManager` retries a failed issuance as a whole with its own backoff. The module is passed
 * in because core loads acme-client lazily, on the first order.
 *
 * This replaces `client.http.request`, an internal of acme-client 5.x (the version core pins); when the
 * shape is not there it throws instead of silently ignoring the CA. @internal
 */
export function routeClientRequests(
  acmeModule: Pick<typeof acme, 'axios'>,
  client: acme.Client,
  options: AcmeTransportOptions,
): void {
  const http = (client as unknown as { http?: Partial<HttpClientLike> }).http;
  if (http === undefined || typeof http.request !== 'function') {
    throw new AcmeError('unsupported acme-client version: cannot route its requests');
  }
  const instance = acmeModule.axios.create({
    timeout: options.timeout,
    ...(options.httpsAgent === undefined ? {} : { httpsAgent: options.httpsAgent }),
  });
  http.request = async (url, method, opts = {}) => {
    let response: AxiosLikeResponse;
    try {
      // Same request shape as acme-client's HttpClient.request: every status resolves, callers check it.
      response = (await instance.request({
        ...opts,
        url,
        method,
        validateStatus: null,
        headers: { ...opts.headers, 'Content-Type': 'application/jose+json' },
      })) as AxiosLikeResponse;
    } catch (cause) {
      const code = (cause as { code?: string }).code;
      throw new AcmeError(
        `ACME request ${method.toUpperCase()} ${url} failed: ${(cause as Error).message}${code ? ` (${code})` : ''}`,
        { cause },
      );
    }
    const problem = problemOf(response);
    if (problem !== undefined) options.onProblem(problem);
    return response;
  };
}

/** The problem in an error answer, or the `error` of an object the server marked invalid. */
function problemOf(response: AxiosLikeResponse): AcmeProblem | undefined {
  const data = response.data as Record<string, unknown> | undefined;
  if (data === null || typeof data !== 'object') return undefined;
  if (response.status >= 400 && typeof data.type === 'string') return toProblem(data, response.status);
  if (data.status === 'invalid') {
    if (data.error !== null && typeof data.error === 'object') {
      return toProblem(data.error as Record<string, unknown>, undefined);
    }
    // An invalid authorization carries the problem on the challenge that failed.
    if (Array.isArray(data.challenges)) {
      for (const challenge of data.challenges as Record<string, unknown>[]) {
        if (challenge?.error !== null && typeof challenge?.error === 'object') {
          return toProblem(challenge.error as Record<string, unknown>, undefined);
        }
      }
    }
  }
  return undefined;
}

function toProblem(value: Record<string, unknown>, status: number | undefined): AcmeProblem {
  const problem: AcmeProblem = {};
  if (typeof value.type === 'string') problem.type = value.type;
  if (typeof value.detail === 'string') problem.detail = value.detail;
  if (typeof value.status === 'number') problem.status = value.status;
  else if (status !== undefined) problem.status = status;
  if (Array.isArray(value.subproblems)) problem.subproblems = value.subproblems;
  return problem;
}
