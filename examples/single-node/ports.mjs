/**
 * The example's ports. node.yaml and client.yaml use the defaults below; with PORT_BASE=N every port moves
 * to N…N+4 so several copies (or the test suite) can run side by side. start.mjs then writes shifted
 * copies of the two files next to the originals (relative paths in them stay valid).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));

/** Ports written in node.yaml and client.yaml. */
export const DEFAULT_PORTS = Object.freeze({
  relayTls: 18443,
  relayHttp: 18080,
  hub: 18444,
  serviceHttps: 19443,
  serviceHttp: 19080,
});

/** The ports of this run: the defaults, or PORT_BASE…PORT_BASE+4. */
export function ports(env = process.env) {
  const base = env.PORT_BASE === undefined || env.PORT_BASE === '' ? undefined : Number(env.PORT_BASE);
  if (base === undefined) return { ...DEFAULT_PORTS };
  if (!Number.isInteger(base) || base < 1024 || base > 65530) {
    throw new Error(`PORT_BASE must be an integer between 1024 and 65530 (got ${env.PORT_BASE})`);
  }
  return {
    relayTls: base,
    relayHttp: base + 1,
    hub: base + 2,
    serviceHttps: base + 3,
    serviceHttp: base + 4,
  };
}

/**
 * Returns the path of `file` (node.yaml or client.yaml) for this run: the file itself with the default
 * ports, else a copy with every default port replaced, and a function that removes the copy.
 */
export function configFile(file, current = ports()) {
  const original = join(here, file);
  const shift = new Map(Object.entries(DEFAULT_PORTS).map(([name, port]) => [String(port), current[name]]));
  if ([...shift].every(([from, to]) => from === String(to))) return { path: original, remove() {} };
  const text = readFileSync(original, 'utf8').replace(/\b\d{5}\b/g, (p) => String(shift.get(p) ?? p));
  const path = join(here, `.port-${current.relayTls}-${file}`);
  writeFileSync(path, text);
  return { path, remove: () => rmSync(path, { force: true }) };
}
