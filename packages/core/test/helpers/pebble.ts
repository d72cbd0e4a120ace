/**
 * Runs Debian's `pebble` ACME test server (and `pebble-challtestsrv` as its DNS) on loopback for tests.
 * Every name resolves to 127.0.0.1; pebble validates HTTP-01 on `httpPort` of 127.0.0.1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '../../src/certificates.js';
import { portsToBind } from '@nexus-proxy/test-harness/ports';

export interface PebbleOptions {
  /** Port on 127.0.0.1 where pebble sends HTTP-01 validation requests. */
  httpPort: number;
  /** Lifetime of issued certificates, seconds. Default: pebble's (5 years). */
  certificateValidityPeriod?: number;
  /** Percentage of valid nonces pebble rejects as bad (exercises badNonce retries). Default: `0`. */
  nonceRejectPercent?: number;
  /**
   * Percentage of orders that reuse an account's still-valid authorization instead of validating again
   * (`PEBBLE_AUTHZREUSE`). Default: pebble's (50). `0` makes every order validate HTTP-01.
   */
  authzReusePercent?: number;
}

export interface Pebble {
  /** `https://127.0.0.1:<port>/dir`. */
  directoryUrl: string;
  /** PEM of the CA that signed pebble's API certificate (trust it to talk to the API). */
  apiCaPem: string;
  /** Path of a file holding `apiCaPem` (for `caFile`). */
  apiCaFile: string;
  /** The root that signs issued certificates (new on every pebble start). */
  rootCaPem(): Promise<string>;
  /** Kills both processes and removes the temporary directory. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

export function assertPebbleInstalled(): void {
  for (const binary of ['pebble', 'pebble-challtestsrv']) {
    const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
    if (found.status !== 0) {
      throw new Error(
        `${binary} is not installed: the ACME tests need Debian's pebble package ` +
          '(apt-get install -y pebble; CI installs it in .ci/run)',
      );
    }
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  // Below the ephemeral range: no outbound socket can take it before it is bound.
  return (await portsToBind(1))[0]!;
}

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  assertPebbleInstalled();
  const dir = await mkdtemp(join(tmpdir(), 'pebble-'));
  const ca = await createCertificateAuthority({ commonName: 'Pebble API Test CA', validityDays: 2 });
  const leaf = await issueCertificate(ca, {
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    validityDays: 2,
  });
  const apiCaFile = join(dir, 'api-ca.pem');
  await writeFile(join(dir, 'cert.pem'), leaf.certPem);
  await writeFile(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  await writeFile(apiCaFile, ca.certPem);

  const processes: ChildProcess[] = [];
  const output: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map(terminate));
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const [apiPort, managementPort, tlsPort, dnsPort, challtestManagementPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${apiPort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: options.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.certificateValidityPeriod === undefined
          ? {}
          : { certificateValidityPeriod: options.certificateValidityPeriod }),
      },
    };
    await writeFile(join(dir, 'pebble.json'), JSON.stringify(config));

    // Its own challenge listeners off: otherwise it would take the HTTP-01 port itself.
    processes.push(
      launch(
        'pebble-challtestsrv',
        [
          '-defaultIPv4',
          '127.0.0.1',
          '-defaultIPv6',
          '',
          '-dns01',
          `127.0.0.1:${dnsPort}`,
          '-http01',
          '',
          '-https01',
          '',
          '-tlsalpn01',
          '',
          '-management',
          `127.0.0.1:${challtestManagementPort}`,
        ],
        {},
        output,
      ),
    );
    processes.push(
      launch(
        'pebble',
        ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`],
        {
          PEBBLE_VA_NOSLEEP: '1',
          PEBBLE_WFE_NONCEREJECT: String(options.nonceRejectPercent ?? 0),
          ...(options.authzReusePercent === undefined
            ? {}
            : { PEBBLE_AUTHZREUSE: String(options.authzReusePercent) }),
        },
        output,
      ),
    );

    const directoryUrl = `https://127.0.0.1:${apiPort}/dir`;
    await waitForDirectory(directoryUrl, ca.certPem, processes, output);
    return {
      directoryUrl,
      apiCaPem: ca.certPem,
      apiCaFile,
      rootCaPem: () => httpsGet(`https://127.0.0.1:${managementPort}/roots/0`, ca.certPem),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function launch(
  command: string,
  args: string[],
  env: Record<string, string>,
  output: string[],
): ChildProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (chunk: Buffer) => {
    output.push(`[${command}] ${chunk.toString('utf8')}`);
    if (output.length > 200) output.shift();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (error) => output.push(`[${command}] ${error.message}`));
  return child;
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
  await exited;
  clearTimeout(timer);
}

async function waitForDirectory(
  url: string,
  caPem: string,
  processes: ChildProcess[],
  output: string[],
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const dead = processes.find((child) => child.exitCode !== null || child.signalCode !== null);
    if (dead !== undefined) {
      throw new Error(`${dead.spawnfile} exited while starting:\n${output.join('')}`);
    }
    try {
      const body = await httpsGet(url, caPem);
      if (body.includes('newOrder')) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`pebble did not answer at ${url}:\n${output.join('')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function httpsGet(url: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: caPem, agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}
