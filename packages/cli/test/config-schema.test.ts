import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveBackendClientConfig } from '@nexus-proxy/backend-client';
import { resolveNexusConfig } from '@nexus-proxy/core';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderConfigTemplate } from '../src/init.js';
import { createProgram } from '../src/program.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

async function schemaOf(args: string[]): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  await createProgram({ out: (t) => lines.push(t) })
    .exitOverride()
    .parseAsync(['node', 'nexus-proxy', 'config', 'schema', ...args]);
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

function compile(schema: Record<string, unknown>): ValidateFunction {
  // strictSchema: an unknown keyword in the emitted schema is an error, not silently ignored.
  return new Ajv({ allErrors: true, strictSchema: true, strictTypes: false }).compile(schema);
}

/** The YAML files under examples/ whose name says which configuration they are. */
function exampleFiles(kind: 'node' | 'client'): string[] {
  const out: string[] = [];
  for (const dir of readdirSync(path.join(ROOT, 'examples'))) {
    const full = path.join(ROOT, 'examples', dir);
    for (const f of readdirSync(full)) {
      if (!/\.ya?ml$/.test(f)) continue;
      if ((kind === 'client') === f.startsWith('client')) out.push(path.join(full, f));
    }
  }
  return out;
}

const load = (file: string) => parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/** Each file satisfies the schema, and what the schema accepts the resolver accepts too. */
function expectAccepted(
  validate: ValidateFunction,
  files: string[],
  resolve: (doc: Record<string, unknown>) => unknown,
): void {
  for (const file of files) {
    const doc = load(file);
    expect({ file, ok: validate(doc), errors: validate.errors ?? null }).toEqual({
      file,
      ok: true,
      errors: null,
    });
    expect(() => resolve(doc)).not.toThrow();
  }
}

describe('nexus-proxy config schema', () => {
  it('prints a draft-07 JSON Schema of the node configuration that the examples satisfy', async () => {
    const schema = await schemaOf([]);
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.additionalProperties).toBe(false);
    const validate = compile(schema);
    const files = [path.join(ROOT, 'config.example.yaml'), ...exampleFiles('node')];
    expect(files.length).toBeGreaterThanOrEqual(4);
    expectAccepted(validate, files, resolveNexusConfig);
    expect(
      validate(parse(renderConfigTemplate({ secret: 'x'.repeat(64), hostname: 'nexus1.nexus-test.net' }))),
    ).toBe(true);
  });

  it('rejects a node configuration with an unknown, a misspelt or a mistyped key', async () => {
    const validate = compile(await schemaOf([]));
    const base = load(path.join(ROOT, 'config.example.yaml'));
    const bad: Record<string, unknown>[] = [
      { ...base, frobnicate: 1 },
      { ...base, relayPort: [443] },
      { ...base, relayPorts: '443' },
      { ...base, relayPorts: [70000] },
      { ...base, relayPorts: ['8080/udp'] },
      { ...base, relayPorts: ['8080'] },
      { ...base, limits: { maxStreams: 1 } },
      { ...base, limits: { maxSessions: 1.5 } },
      { ...base, logLevel: 'verbose' },
      { ...base, listeners: [{ mode: 'tls' }] },
      { ...base, auth: { requireExp: 'yes' } },
    ];
    for (const doc of bad) {
      expect(validate(doc)).toBe(false);
      expect(() => resolveNexusConfig(doc)).toThrow();
    }
    // Reference keys Nexus ignores are allowed (the node warns), so editors do not flag them.
    expect(validate({ ...base, udpRelayPorts: [53] })).toBe(true);
  });

  it('accepts the relay port short forms "PORT/tls" and "PORT/http" next to plain numbers', async () => {
    const validate = compile(await schemaOf([]));
    const base = load(path.join(ROOT, 'config.example.yaml'));
    const doc = { ...base, relayPorts: ['20443/tls', '20080/http', 443, 80] };
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(resolveNexusConfig(doc).listeners.map((l) => `${l.port}/${l.mode}`)).toEqual([
      '20443/tls',
      '20080/http',
      '443/tls',
      '80/http',
    ]);
  });

  it('prints the backend client schema with --backend; the examples satisfy it', async () => {
    const validate = compile(await schemaOf(['--backend']));
    const files = exampleFiles('client');
    expect(files.length).toBeGreaterThanOrEqual(2);
    expectAccepted(validate, files, resolveBackendClientConfig);
    const backend = (load(files[0]!).backends as Record<string, unknown>[])[0]!;
    const bad: Record<string, unknown>[] = [
      { backend: [backend] },
      { backends: [{ ...backend, nexusAddress: ['n.example.com'] }] },
      { backends: [{ ...backend, weight: 'heavy' }] },
      { backends: [{ ...backend, portMappings: { 443: 8443 } }] },
      { backends: [{ ...backend, portMappings: { https: 'localhost:8443' } }] },
      { backends: [{ ...backend, healthChecks: { interval: 5 } }] },
      { backends: [] },
    ];
    for (const doc of bad) {
      expect(validate(doc)).toBe(false);
      expect(() => resolveBackendClientConfig(doc)).toThrow();
    }
  });

  it('writes the schema to stdout from the installed command', () => {
    const text = execFileSync(process.execPath, [CLI, 'config', 'schema', '--backend'], { encoding: 'utf8' });
    expect(JSON.parse(text)).toMatchObject({ title: 'Nexus Proxy backend client configuration' });
  });
});
