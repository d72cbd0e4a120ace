/**
 * The example's ports. The YAML files use the defaults below; with PORT_BASE=N every port moves to
 * N…N+13 so several copies (or a test suite) can run side by side. start.mjs then writes shifted copies of
 * the YAML files next to the originals (relative paths in them stay valid).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));

/** Ports written in node-a.yaml, node-b.yaml, node-c.yaml and client.yaml. */
export const DEFAULT_PORTS = Object.freeze({
  aTls: 21443,
  aHttp: 21080,
  aHub: 21444,
  aPeer: 21445,
  bTls: 22443,
  bHttp: 22080,
  bHub: 22444,
  bPeer: 22445,
  cTls: 23443,
  cHttp: 23080,
  cHub: 23444,
  cPeer: 23445,
  serviceHttps: 24443,
  serviceHttp: 24080,
});

/** The ports of this run: the defaults, or PORT_BASE…PORT_BASE+13 in the order above. */
export function ports(env = process.env) {
  const base = env.PORT_BASE === undefined || env.PORT_BASE === '' ? undefined : Number(env.PORT_BASE);
  if (base === undefined) return { ...DEFAULT_PORTS };
  if (!Number.isInteger(base) || base < 1024 || base > 65_500) {
    throw new Error(`PORT_BASE must be an integer between 1024 and 65500 (got ${env.PORT_BASE})`);
  }
  return Object.fromEntries(Object.keys(DEFAULT_PORTS).map((name, i) => [name, base + i]));
}

/**
 * Returns the path of `file` for this run: the file itself with the default ports, else a copy with every
 * default port replaced, and a function that removes the copy.
 */
export function configFile(file, current = ports()) {
  const original = join(here, file);
  const shift = new Map(Object.entries(DEFAULT_PORTS).map(([name, port]) => [String(port), current[name]]));
  if ([...shift].every(([from, to]) => from === String(to))) return { path: original, remove() {} };
  const text = readFileSync(original, 'utf8').replace(/\b\d{5}\b/g, (p) => String(shift.get(p) ?? p));
  const path = join(here, `.port-${current.aTls}-${file}`);
  writeFileSync(path, text);
  return { path, remove: () => rmSync(path, { force: true }) };
}
