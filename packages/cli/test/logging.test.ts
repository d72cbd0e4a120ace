import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createCliLogger } from '../src/logger.js';
import { serve } from '../src/serve.js';
import { echoSizeService, startService, waitUntil } from '@nexus-proxy/test-harness';
import {
  backend,
  CLI,
  createWorkdir,
  SECRET_A,
  SECRET_B,
  token,
  writeNodeConfig,
  LiveNodeFixture,
} from './_ops-helpers.js';

/** A pino destination that keeps every line in memory. */
function memoryDestination(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      partial += chunk.toString('utf8');
      let nl = partial.indexOf('\n');
      while (nl !== -1) {
        lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
      done();
    },
  });
  return { stream, lines };
}

describe('createCliLogger', () => {
  it('redacts token and secret fields', () => {
    const { stream, lines } = memoryDestination();
    const logger = createCliLogger({ level: 'trace', destination: stream });
    logger.info({ token: 'tok-123', nested: { secret: 'sec-456' }, backendsJWTSecrets: ['s-789'] }, 'x');
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/tok-123|sec-456|s-789/);
    expect(JSON.parse(lines[0]!)).toMatchObject({ token: '[redacted]', nested: { secret: '[redacted]' } });
  });
});

describe('node logs at trace', () => {
  const f = new LiveNodeFixture();
  afterEach(() => f.reset());

  it('never contain a token or secret, log one info line per stream close, and no line per frame', async () => {
    f.work = await createWorkdir();
    const service = await startService(echoSizeService);
    const { stream, lines } = memoryDestination();
    try {
      f.node = await serve({
        config: writeNodeConfig(f.work, { backendsJWTSecrets: [SECRET_A] }),
        handleSignals: false,
        logLevel: 'trace',
        logDestination: stream,
        graceMs: 0,
      });
      const n = f.node;
      const good = await token(SECRET_A, ['app.test']);
      const bad = await token(SECRET_B, ['app.test']);
      f.clients.push(backend(n.addresses.hub.port, f.work.ca.certPem, good, service.port));
      await waitUntil(() => n.nexus.hub.sessions.length === 1, 10_000, 'the backend');
      f.clients.push(backend(n.addresses.hub.port, f.work.ca.certPem, bad, service.port));
      await waitUntil(
        () => lines.some((l) => l.includes('backend authentication failed')),
        10_000,
        'the auth failure',
      );
      await f.clients.pop()!.close();

      // 2 MiB down: at least 64 DATA frames of ≤ 32 KiB each.
      const size = 2 * 1024 * 1024;
      const before = lines.length;
      const request = `GET /${size} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`;
      const received = await new Promise<number>((resolve, reject) => {
        let bytes = 0;
        const s = netConnect(
          { host: '127.0.0.1', port: n.addresses.listeners.find((l) => l.mode === 'http')!.address.port },
          () => s.write(request),
        );
        s.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        s.on('close', () => resolve(bytes));
        s.on('error', reject);
      });
      expect(received).toBeGreaterThan(size);
      await waitUntil(() => lines.some((l) => l.includes('"msg":"stream closed"')), 10_000, 'the close line');
      const during = lines.slice(before);
      expect(during.length).toBeLessThan(10);

      const closes = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'stream closed');
      expect(closes).toHaveLength(1);
      // The routed name under `host`; `hostname` stays pino's field for the machine's name.
      expect(closes[0]).toMatchObject({
        level: 30,
        host: 'app.test',
        hostname: osHostname(),
        reason: 'completed',
        bytesUp: request.length,
        bytesDown: received,
      });

      await n.close();
      f.node = undefined;
      const all = lines.join('\n');
      expect(lines.length).toBeGreaterThan(5);
      expect(lines.some((l) => JSON.parse(l).level === 20)).toBe(true); // debug and below are enabled
      for (const secret of [good, bad, SECRET_A, SECRET_B, ...good.split('.'), ...bad.split('.')]) {
        expect(all).not.toContain(secret);
      }
    } finally {
      await service.close();
    }
  });
});

describe('nexus-proxy serve --log-format', () => {
  const f = new LiveNodeFixture();
  afterEach(() => f.reset());

  it('pretty: one readable line per event (time, level, message, fields); json: one JSON object per line', async () => {
    f.work = await createWorkdir();
    const config = writeNodeConfig(f.work);
    for (const format of ['pretty', 'json'] as const) {
      const child = spawn(process.execPath, [CLI, 'serve', '-c', config, '--log-format', format], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => {
        err += c;
      });
      child.stdout.resume();
      const exited = new Promise((r) => child.on('exit', r));
      try {
        await waitUntil(() => err.includes('nexus listening') || child.exitCode !== null, 15_000, 'the node');
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
      const lines = err.split('\n').filter((l) => l !== '');
      expect(lines.length).toBeGreaterThan(3);
      if (format === 'pretty') {
        for (const line of lines) expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN)[: ]/);
        expect(lines.some((l) => /INFO.*hub listening .*"port":\d+/.test(l))).toBe(true);
      } else {
        for (const line of lines) expect(JSON.parse(line)).toMatchObject({ hostname: osHostname() });
      }
    }
  });
});
