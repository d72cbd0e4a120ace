/**
 * Runs examples/mesh the way its README does (`node start.mjs`) in self-test mode: three `nexus-proxy
 * serve` processes mesh over mutual TLS, a `nexus-backend` process attaches a device to node C only, and
 * the example's own client reaches it through A (TLS passthrough) and B (HTTP by Host). Needs the built
 * packages (`npm run build`): the example runs their dist and bin scripts like any user would, from a copy
 * under the OS temp dir (`_examples.ts`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUILT,
  copyExamples,
  type ExamplesCopy,
  freePortBase,
  type Run,
  runExample as runIn,
} from './_examples.js';

let copy: ExamplesCopy;
beforeAll(() => {
  copy = copyExamples();
});
afterAll(() => copy.remove());

/** examples/mesh/ports.mjs: PORT_BASE…PORT_BASE+13, in this order. */
const PORT_NAMES = [
  'aTls',
  'aHttp',
  'aHub',
  'aPeer',
  'bTls',
  'bHttp',
  'bHub',
  'bPeer',
  'cTls',
  'cHttp',
  'cHub',
  'cPeer',
  'serviceHttps',
  'serviceHttp',
] as const;

/** Runs `node start.mjs` in the copy of examples/mesh with `env` until it exits. */
const runExample = (env: Record<string, string>) => runIn(`${copy.dir}mesh/`, 'start.mjs', env, 40_000);

/** Runs the self-test on a free port range; once more on a fresh range if a port was taken meanwhile. */
async function runSelfTest(): Promise<{ run: Run; ports: Record<(typeof PORT_NAMES)[number], number> }> {
  for (let attempt = 1; ; attempt++) {
    const base = await freePortBase(PORT_NAMES.length);
    const run = await runExample({ PORT_BASE: String(base) });
    if (attempt < 2 && run.code !== 0 && run.output.includes('EADDRINUSE')) continue;
    const ports = Object.fromEntries(PORT_NAMES.map((name, i) => [name, base + i])) as Record<
      (typeof PORT_NAMES)[number],
      number
    >;
    return { run, ports };
  }
}

describe('examples/mesh', () => {
  it('is run against built packages', () => {
    for (const file of BUILT) expect(existsSync(file), `${file} is missing: run npm run build`).toBe(true);
  });

  it('three nodes mesh; a device attached to C only is reached through A (TLS) and B (HTTP)', async () => {
    const { run, ports } = await runSelfTest();
    const { output } = run;
    expect(output).toContain('SELFTEST OK');
    expect(run.code, output).toBe(0);

    // The client's view: HTTPS at A and HTTP at B, both tunnelled to C; and C's own local route.
    expect(output).toContain(
      `[client] https://app.localhost:${ports.aTls}/hello (node A → tunnel → C) -> Hello from app.localhost over HTTPS`,
    );
    expect(output).toContain(
      `[client] http://app.localhost:${ports.bHttp}/hello (node B → tunnel → C) -> Hello from app.localhost over HTTP`,
    );
    expect(output).toContain(`[client] http://app.localhost:${ports.cHttp}/hello (node C, local backend)`);

    // The nodes' logs: A accepted C by certificate name (serverAuth-only certificates used as
    // client certificates), learned C's route, and relayed the end user's stream on its own TLS port.
    const lines = output.split('\n');
    const logged = (label: string, ...parts: string[]) =>
      lines.some((l) => l.startsWith(`[${label}] `) && parts.every((p) => l.includes(p)));
    // (B's link to A is not asserted: B may still be in its dial backoff when the self-test ends, since
    // nothing in it needs that link.)
    expect(logged('node-a', 'peer link established', 'peer=c.mesh.localhost', 'direction=inbound')).toBe(
      true,
    );
    expect(logged('node-a', 'peer routes updated', 'peer=c.mesh.localhost', 'routes=1')).toBe(true);
    expect(logged('node-c', 'peer link established', `peer=wss://127.0.0.1:${ports.aPeer}/mesh`)).toBe(true);
    expect(logged('node-a', 'stream closed', `port=${ports.aTls}`, 'reason=completed')).toBe(true);
    expect(logged('node-b', 'stream closed', `port=${ports.bHttp}`, 'reason=completed')).toBe(true);
    // No node refused a peer, and every process stopped cleanly.
    expect(output).not.toContain('refusing peer');
    expect(logged('node-a', 'nexus closed')).toBe(true);
    expect(logged('node-c', 'nexus closed')).toBe(true);
    expect(logged('backend', 'stopped')).toBe(true);
    // The port-shifted copies of the configuration this run wrote were removed.
    expect(readdirSync(`${copy.dir}mesh/`).filter((f) => f.startsWith(`.port-${ports.aTls}-`))).toEqual([]);
  });
});
