/**
 * Runs every example of examples/ the way a reader would (`node <script>`), in its self-test mode: the
 * example makes its own requests through a real node over loopback, prints `SELFTEST OK` and exits 0.
 * Needs the built packages (`npm run build`): the examples import their dist like any user would. They
 * run from a copy under the OS temp dir (`_examples.ts`).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT, copyExamples, type ExamplesCopy, freePortBase, runExample as runIn } from './_examples.js';

let copy: ExamplesCopy;
beforeAll(() => {
  copy = copyExamples();
});
afterAll(() => copy.remove());

const runExample = (script: string, env: Record<string, string>) => runIn(copy.dir, script, env);

describe('examples', () => {
  it('are run against built packages', () => {
    for (const file of BUILT) expect(existsSync(file), `${file} is missing: run npm run build`).toBe(true);
  });

  it('single-node: a node and a backend from their config files relay HTTPS and HTTP end to end', async () => {
    const run = await runExample('single-node/start.mjs', { PORT_BASE: String(await freePortBase(5)) });
    expect(run.output).toContain('SELFTEST OK');
    expect(run.output).toContain('[client] https://app.localhost:');
    expect(run.code, run.output).toBe(0);
  });

  it('embedding: a custom gateway feeds its own sockets and upgrades to createNexus', async () => {
    const run = await runExample('embedding/gateway.mjs', { PORT_BASE: '0', LOG_LEVEL: 'info' });
    expect(run.output).toContain('SELFTEST OK');
    // The typed events the gateway subscribes to were emitted and logged.
    for (const event of ['backend-connected', 'stream-open', 'stream-close', 'route-miss']) {
      expect(run.output).toContain(`event: ${event}`);
    }
    expect(run.code, run.output).toBe(0);
  });

  it('backend-sdk: a connectHandler serves one name in-process and port mappings serve the other', async () => {
    const run = await runExample('backend-sdk/device.mjs', { PORT_BASE: String(await freePortBase(3)) });
    expect(run.output).toContain('[client] api: served in-process by the connectHandler (HTTPS');
    expect(run.output).toContain('[client] web: reached through the port mappings (HTTP');
    expect(run.output).toContain('SELFTEST OK');
    expect(run.code, run.output).toBe(0);
  });
});
