/**
 * The command token provider (docs/backend-client.md, "Token providers"): how hardware-attested devices
 * obtain tokens. Each token comes from running the configured program (no shell) with the request in its
 * environment; its standard output is the token (first line), or JSON `{"token", "expiry"}`. A program
 * that fails, hangs or floods its output is a {@link TokenCommandError}, never a hang.
 */
import { spawn } from 'node:child_process';
import { InvalidOptionsError, TokenCommandError } from './errors.js';
import {
  cachingHandshake,
  HandshakeTokenCache,
  type IssuedToken,
  type TokenProvider,
  type TokenRequest,
  tokenProblem,
  type UdpRouteClaim,
} from './token-provider.js';

/** Default time the command may run, seconds (reference `timeoutSeconds`). */
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 15;
/** Standard output read from the command at most, bytes; more fails the token. */
export const MAX_COMMAND_OUTPUT = 64 * 1024;
/** Standard error kept for the error message, bytes. */
const MAX_STDERR_KEPT = 2048;

/** Options of {@link createCommandTokenProvider}: the config's `attestation` keys of the same names. */
export interface CommandTokenProviderOptions {
  /** The program to run (a path or a name on `PATH`). Run directly, never through a shell. */
  command: string;
  /** Its arguments. */
  args?: readonly string[];
  /** Extra environment variables (the client's own environment is passed on too). */
  env?: Readonly<Record<string, string>>;
  /** Kill it after this long, seconds. Default: 15. */
  timeoutSeconds?: number;
  /** Reuse a stage-0 token for up to min(this, its expiry), seconds (0 = never). */
  cacheHandshakeSeconds?: number;
  /** Clock for the cache, ms since the epoch (tests). Default: `Date.now`. */
  now?: () => number;
}

const joinPorts = (ports: readonly number[]): string => ports.join(',');
const joinRoutes = (routes: readonly Readonly<UdpRouteClaim>[]): string =>
  routes
    .map((r) =>
      r.flowIdleTimeoutSeconds === undefined ? `${r.port}` : `${r.port}:${r.flowIdleTimeoutSeconds}`,
    )
    .join(',');

/** The variables a command sees for `request` (besides the client's environment and the configured `env`). */
export function commandEnvironment(request: TokenRequest): Record<string, string> {
  return {
    NEXUS_ATTESTATION_STAGE: request.stage,
    NEXUS_SESSION_NONCE: request.stage === 'handshake' ? '' : request.sessionNonce,
    NEXUS_BACKEND_NAME: request.backendName,
    NEXUS_HOSTNAMES: request.hostnames.join(','),
    NEXUS_WEIGHT: String(request.weight),
    NEXUS_TCP_PORTS: joinPorts(request.tcpPorts),
    NEXUS_UDP_ROUTES: joinRoutes(request.udpRoutes),
    NEXUS_OUTBOUND_ALLOWED: String(request.outboundAllowed),
    NEXUS_ALLOWED_OUTBOUND_PORTS: joinPorts(request.allowedOutboundPorts),
  };
}

/**
 * Reads a command's output: JSON `{"token": "…", "expiry": "<RFC 3339>"}` when it starts with `{` (an
 * unparsable expiry is ignored, as in the reference), else the first line. Returns `undefined` when
 * there is no token; the caller checks the token itself.
 */
export function parseCommandOutput(stdout: string): IssuedToken | string | undefined {
  const text = stdout.trim();
  if (text === '') return undefined;
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
    const { token, expiry } = (parsed ?? {}) as { token?: unknown; expiry?: unknown };
    if (typeof token !== 'string' || token.trim() === '') return undefined;
    const when = typeof expiry === 'string' && expiry !== '' ? new Date(expiry) : undefined;
    return when !== undefined && !Number.isNaN(when.getTime()) ? { token, expiry: when } : token;
  }
  return text.split('\n', 1)[0]!.trim() || undefined;
}

/** One line of at most 200 printable characters, for an error message. */
function excerpt(text: string): string {
  const line = text.trim().split('\n', 1)[0] ?? '';
  const clean = line.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

function checkOptions(options: CommandTokenProviderOptions, at: string): void {
  if (typeof options.command !== 'string' || options.command.trim() === '') {
    throw new InvalidOptionsError(`${at}.command`, 'must be a non-empty string');
  }
  if (
    options.args !== undefined &&
    (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))
  ) {
    throw new InvalidOptionsError(`${at}.args`, 'must be a list of strings');
  }
  if (options.env !== undefined) {
    if (typeof options.env !== 'object' || options.env === null || Array.isArray(options.env)) {
      throw new InvalidOptionsError(`${at}.env`, 'must map names to strings');
    }
    for (const [name, value] of Object.entries(options.env)) {
      if (typeof value !== 'string' || name === '' || name.includes('=') || name.includes('\0')) {
        throw new InvalidOptionsError(
          `${at}.env.${name}`,
          'must be a string (and its name must not contain "=")',
        );
      }
    }
  }
  for (const key of ['timeoutSeconds', 'cacheHandshakeSeconds'] as const) {
    const value = options[key];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      throw new InvalidOptionsError(`${at}.${key}`, 'must be a non-negative number of seconds');
    }
  }
}

/** Runs the command once for `request`. */
function runCommand(
  options: CommandTokenProviderOptions,
  request: TokenRequest,
): Promise<IssuedToken | string> {
  const command = options.command.trim();
  const timeoutMs = (options.timeoutSeconds || DEFAULT_COMMAND_TIMEOUT_SECONDS) * 1000;
  return new Promise((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, [...(options.args ?? [])], {
        env: { ...process.env, ...options.env, ...commandEnvironment(request) },
        stdio: ['ignore', 'pipe', 'pipe'],
        shell: false,
        windowsHide: true,
        // Its own process group, so a timeout also ends whatever it started.
        detached: process.platform !== 'win32',
      });
    } catch (err) {
      reject(
        new TokenCommandError(command, 'spawn', `could not be started: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let settled = false;
    const kill = (): void => {
      try {
        if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const fail = (err: TokenCommandError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      kill();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new TokenCommandError(
            command,
            'timeout',
            `did not finish within ${timeoutMs / 1000} s and was killed`,
          ),
        ),
      timeoutMs,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > MAX_COMMAND_OUTPUT) {
        fail(
          new TokenCommandError(
            command,
            'output',
            `printed more than ${MAX_COMMAND_OUTPUT} bytes; it was stopped`,
          ),
        );
      } else stdout.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR_KEPT)
        stderr += chunk.toString('utf8').slice(0, MAX_STDERR_KEPT - stderr.length);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      fail(
        new TokenCommandError(command, 'spawn', `could not be started: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    });
    // 'close': exited and its output is complete (a descendant holding the pipe open runs into the timeout).
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (code !== 0) {
        const status = signal !== null ? `was ended by ${signal}` : `exited with status ${code}`;
        const why = excerpt(stderr);
        reject(
          new TokenCommandError(command, 'exit', why === '' ? status : `${status}: ${why}`, {
            exitCode: code,
            signal,
          }),
        );
        return;
      }
      const token = parseCommandOutput(Buffer.concat(stdout).toString('utf8'));
      const problem = tokenProblem(typeof token === 'string' ? token.trim() : (token?.token.trim() ?? ''));
      if (problem !== undefined) {
        const what = problem.replace('returned', 'printed');
        reject(new TokenCommandError(command, 'output', `exited with status 0 but ${what}`, { exitCode: 0 }));
        return;
      }
      resolve(token!);
    });
  });
}

/**
 * A {@link TokenProvider} that runs `options.command` for every token (stage-0 tokens cached for
 * `cacheHandshakeSeconds` if set). Throws {@link InvalidOptionsError} for bad options; each failed run
 * rejects with a {@link TokenCommandError}.
 */
export function createCommandTokenProvider(
  options: CommandTokenProviderOptions,
  at = 'tokenProvider',
): TokenProvider {
  checkOptions(options, at);
  const run: TokenProvider = (request) => runCommand(options, request);
  return cachingHandshake(
    run,
    new HandshakeTokenCache((options.cacheHandshakeSeconds ?? 0) * 1000, options.now),
  );
}
