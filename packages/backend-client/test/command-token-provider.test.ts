/**
 * The command token provider with real programs written to the OS temp dir: what they see, what they
 * print, and every way they can fail (each a TokenCommandError naming the command, never a hang).
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commandEnvironment,
  createCommandTokenProvider,
  MAX_COMMAND_OUTPUT,
  parseCommandOutput,
} from '../src/command-token-provider.js';
import { TokenCommandError } from '../src/errors.js';
import { issueToken, type TokenRequest } from '../src/token-provider.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

const IDENTITY = {
  backendName: 'edge-apps',
  hostnames: ['app.example.com', '*.preview.example.com'],
  tcpPorts: [22, 443],
  udpRoutes: [{ port: 53, flowIdleTimeoutSeconds: 30 }, { port: 67 }],
  weight: 2,
  outboundAllowed: true,
  allowedOutboundPorts: [25, 587],
};
const req = (stage: TokenRequest['stage'], sessionNonce = ''): TokenRequest => ({
  ...IDENTITY,
  stage,
  sessionNonce,
});

let dir: string;
/** Writes a Node script and returns the provider options that run it. */
async function script(name: string, body: string): Promise<{ command: string; args: string[] }> {
  const file = join(dir, `${name}.mjs`);
  await writeFile(file, body);
  return { command: process.execPath, args: [file] };
}

async function failure(promise: Promise<unknown>): Promise<TokenCommandError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TokenCommandError);
    return err as TokenCommandError;
  }
  throw new Error('the command succeeded');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-token-command-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('command token provider: what the command sees and prints', () => {
  it('passes the request in NEXUS_* variables, the configured env, and arguments without a shell', async () => {
    const out = join(dir, 'env.json');
    const run = await script(
      'env',
      `import { writeFileSync } from 'node:fs';
       // The variables the client sets (the command also inherits the client's own environment, which may
       // hold other NEXUS_* names, e.g. under npm test).
       const names = ['NEXUS_ATTESTATION_STAGE', 'NEXUS_SESSION_NONCE', 'NEXUS_BACKEND_NAME', 'NEXUS_HOSTNAMES',
         'NEXUS_WEIGHT', 'NEXUS_TCP_PORTS', 'NEXUS_UDP_ROUTES', 'NEXUS_OUTBOUND_ALLOWED',
         'NEXUS_ALLOWED_OUTBOUND_PORTS', 'EXTRA'];
       const pick = Object.fromEntries(Object.entries(process.env).filter(([k]) => names.includes(k)));
       writeFileSync(process.env.OUT_FILE, JSON.stringify({ env: pick, argv: process.argv.slice(2) }));
       console.log('${JWT}');`,
    );
    const provider = createCommandTokenProvider({
      ...run,
      args: [...run.args, '--backend=edge-apps', '$(touch pwned); echo'],
      env: { OUT_FILE: out, EXTRA: 'yes', NEXUS_ATTESTATION_STAGE: 'overridden-by-the-client' },
    });
    expect(await issueToken(provider, req('handshake'))).toEqual({ token: JWT });
    const handshake = JSON.parse(await readFile(out, 'utf8'));
    expect(handshake.argv).toEqual(['--backend=edge-apps', '$(touch pwned); echo']);
    expect(handshake.env).toEqual({
      EXTRA: 'yes',
      NEXUS_ATTESTATION_STAGE: 'handshake',
      NEXUS_SESSION_NONCE: '',
      NEXUS_BACKEND_NAME: 'edge-apps',
      NEXUS_HOSTNAMES: 'app.example.com,*.preview.example.com',
      NEXUS_WEIGHT: '2',
      NEXUS_TCP_PORTS: '22,443',
      NEXUS_UDP_ROUTES: '53:30,67',
      NEXUS_OUTBOUND_ALLOWED: 'true',
      NEXUS_ALLOWED_OUTBOUND_PORTS: '25,587',
    });
    await issueToken(provider, req('reauth', 'n0nce-42'));
    const reauth = JSON.parse(await readFile(out, 'utf8'));
    expect(reauth.env).toMatchObject({ NEXUS_ATTESTATION_STAGE: 'reauth', NEXUS_SESSION_NONCE: 'n0nce-42' });
  });

  it('formats empty claims as empty variables', () => {
    const env = commandEnvironment({
      ...req('attest', 'n'),
      tcpPorts: [],
      udpRoutes: [],
      outboundAllowed: false,
      allowedOutboundPorts: [],
    });
    expect(env).toMatchObject({
      NEXUS_SESSION_NONCE: 'n',
      NEXUS_TCP_PORTS: '',
      NEXUS_UDP_ROUTES: '',
      NEXUS_OUTBOUND_ALLOWED: 'false',
      NEXUS_ALLOWED_OUTBOUND_PORTS: '',
    });
  });

  it('takes the first line of the output as the token', async () => {
    const run = await script(
      'lines',
      `console.log('  ${JWT}  '); console.log('second line'); console.error('noise');`,
    );
    expect(await issueToken(createCommandTokenProvider(run), req('attest', 'n'))).toEqual({ token: JWT });
  });

  it('reads JSON {token, expiry} (RFC 3339)', async () => {
    const run = await script(
      'json',
      `console.log(JSON.stringify({ token: '${JWT}', expiry: '2026-12-06T13:00:00Z' }));`,
    );
    const issued = await issueToken(createCommandTokenProvider(run), req('handshake'));
    expect(issued).toEqual({ token: JWT, expiry: new Date('2026-12-06T13:00:00Z') });
    expect(parseCommandOutput(JSON.stringify({ token: JWT, expiry: 'tomorrow' }))).toBe(JWT);
    expect(parseCommandOutput('{"expiry":"2026-12-06T13:00:00Z"}')).toBeUndefined();
    expect(parseCommandOutput('{not json')).toBeUndefined();
  });

  it('runs a plain executable script by its path', async () => {
    const file = join(dir, 'attestor.sh');
    await writeFile(file, `#!/bin/sh\necho "${JWT}.$NEXUS_ATTESTATION_STAGE"\n`);
    await chmod(file, 0o755);
    const issued = await issueToken(createCommandTokenProvider({ command: file }), req('attest', 'x'));
    expect(issued.token).toBe(`${JWT}.attest`);
  });
});

describe('command token provider: failures are typed errors naming the command, never a hang', () => {
  it('a non-zero exit: status and the first line of stderr', async () => {
    const run = await script(
      'exit3',
      `console.error('authorizer unreachable: ECONNREFUSED'); process.exit(3);`,
    );
    const err = await failure(issueToken(createCommandTokenProvider(run), req('handshake')));
    expect(err).toMatchObject({
      code: 'NEXUS_ERR_TOKEN',
      failure: 'exit',
      exitCode: 3,
      command: process.execPath,
    });
    expect(err.message).toBe(
      `attestation command ${JSON.stringify(process.execPath)} exited with status 3: authorizer unreachable: ECONNREFUSED`,
    );
  });

  it('a command killed by a signal', async () => {
    const run = await script('signal', `process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 10_000);`);
    const err = await failure(issueToken(createCommandTokenProvider(run), req('handshake')));
    expect(err).toMatchObject({ failure: 'exit', signal: 'SIGTERM' });
    expect(err.message).toContain('was ended by SIGTERM');
  });

  it('a slow command is killed at its timeout, also when a child of it holds the output open', async () => {
    const run = await script(
      'slow',
      `import { spawn } from 'node:child_process';
       spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'inherit' });
       setTimeout(() => console.log('${JWT}'), 60_000);`,
    );
    const started = Date.now();
    const err = await failure(
      issueToken(createCommandTokenProvider({ ...run, timeoutSeconds: 0.5 }), req('handshake')),
    );
    expect(err.failure).toBe('timeout');
    expect(err.message).toContain('did not finish within 0.5 s and was killed');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('output beyond the bound stops the command', async () => {
    const run = await script(
      'flood',
      `const line = Buffer.alloc(64 * 1024, 'A'); const pump = () => { while (process.stdout.write(line)); process.stdout.once('drain', pump); }; pump();`,
    );
    const err = await failure(
      issueToken(createCommandTokenProvider({ ...run, timeoutSeconds: 10 }), req('handshake')),
    );
    expect(err.failure).toBe('output');
    expect(err.message).toContain(`printed more than ${MAX_COMMAND_OUTPUT} bytes`);
  });

  it.each([
    ['nothing', ''],
    ['a sentence', 'console.log("token: not available today")'],
    ['binary garbage', 'process.stdout.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x0a]))'],
    ['JSON without a token', 'console.log(JSON.stringify({ error: "denied" }))'],
  ])('exit 0 with %s is an output failure', async (name, body) => {
    const run = await script(`garbage-${name.replace(/\W/g, '-')}`, body);
    const err = await failure(issueToken(createCommandTokenProvider(run), req('handshake')));
    expect(err).toMatchObject({ failure: 'output', exitCode: 0 });
    expect(err.message).toMatch(/exited with status 0 but printed (no token|something that is not a token)/);
  });

  it('a command that does not exist', async () => {
    const err = await failure(
      issueToken(createCommandTokenProvider({ command: join(dir, 'absent') }), req('handshake')),
    );
    expect(err.failure).toBe('spawn');
    expect(err.message).toContain('could not be started: ENOENT');
  });

  it.each([
    [{ command: '' }, 'tokenProvider.command'],
    [{ command: 'x', args: ['a', 1] }, 'tokenProvider.args'],
    [{ command: 'x', env: { 'A=B': 'c' } }, 'tokenProvider.env.A=B'],
    [{ command: 'x', timeoutSeconds: -1 }, 'tokenProvider.timeoutSeconds'],
  ])('refuses options %j naming %s', (options, path) => {
    expect(() => createCommandTokenProvider(options as never)).toThrow(expect.objectContaining({ path }));
  });
});

describe('command token provider: stage-0 cache', () => {
  async function counting(
    name: string,
    output: string,
  ): Promise<{ run: { command: string; args: string[] }; runs: () => Promise<number> }> {
    const counter = join(dir, `${name}.count`);
    await writeFile(counter, '');
    const run = await script(
      name,
      `import { appendFileSync } from 'node:fs';
       appendFileSync(${JSON.stringify(counter)}, 'x');
       console.log(${JSON.stringify(output)});`,
    );
    return { run, runs: async () => (await readFile(counter, 'utf8')).length };
  }

  it('runs once for stage-0 tokens within cacheHandshakeSeconds, every time for the others', async () => {
    let now = 1_000_000;
    const { run, runs } = await counting('cached', JWT);
    const provider = createCommandTokenProvider({ ...run, cacheHandshakeSeconds: 30, now: () => now });
    await issueToken(provider, req('handshake'));
    await issueToken(provider, req('handshake'));
    await issueToken(provider, req('attest', 'a'));
    await issueToken(provider, req('reauth', 'b'));
    expect(await runs()).toBe(3);
    now += 31_000;
    await issueToken(provider, req('handshake'));
    expect(await runs()).toBe(4);
  });

  it('runs once for concurrent stage-0 requests', async () => {
    const { run, runs } = await counting('concurrent', JWT);
    const provider = createCommandTokenProvider({ ...run, cacheHandshakeSeconds: 30 });
    const tokens = await Promise.all([1, 2, 3].map(() => issueToken(provider, req('handshake'))));
    expect(tokens.map((t) => t.token)).toEqual([JWT, JWT, JWT]);
    expect(await runs()).toBe(1);
  });

  it('caches no longer than the token’s own expiry', async () => {
    let now = Date.parse('2026-12-06T12:00:00Z');
    const { run, runs } = await counting(
      'expiring',
      JSON.stringify({ token: JWT, expiry: '2026-12-06T12:00:05Z' }),
    );
    const provider = createCommandTokenProvider({ ...run, cacheHandshakeSeconds: 60, now: () => now });
    await issueToken(provider, req('handshake'));
    now += 4_000;
    await issueToken(provider, req('handshake'));
    expect(await runs()).toBe(1);
    now += 2_000;
    await issueToken(provider, req('handshake'));
    expect(await runs()).toBe(2);
  });

  it('without cacheHandshakeSeconds every stage-0 token runs the command; a failure is not cached', async () => {
    const { run, runs } = await counting('uncached', JWT);
    const provider = createCommandTokenProvider(run);
    await issueToken(provider, req('handshake'));
    await issueToken(provider, req('handshake'));
    expect(await runs()).toBe(2);
    const bad = await script('fails-once', 'process.exit(1)');
    const failing = createCommandTokenProvider({ ...bad, cacheHandshakeSeconds: 60 });
    await failure(issueToken(failing, req('handshake')));
    await failure(issueToken(failing, req('handshake')));
  });
});
