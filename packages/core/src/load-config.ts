/**
 * Reading the node's YAML configuration file (docs/protocol.md §6.1 format). Relative file paths in it (TLS
 * certificate and key, CA files, ACME cache directory) are resolved against the file's directory, so a
 * node can be started from any working directory.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { type ResolvedNexusConfig, resolveNexusConfig } from './config.js';
import { InvalidConfigError } from './errors.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Directory relative paths are resolved against. Default: kept as written. */
  baseDir?: string;
  /** Name used in error messages (usually the file path). Default: `config`. */
  source?: string;
}

/** A YAML document with enough bookkeeping to point at a line. @internal */
interface ParsedYaml {
  value: unknown;
  lineOf(fieldPath: string): number | undefined;
}

const MAX_ALIAS_COUNT = 100;

function parseYaml(text: string, source: string): ParsedYaml {
  const lineCounter = new LineCounter();
  // uniqueKeys: a key written twice is almost always a mistake, and the reference's decoder refuses it too.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    const where = pos ? `${source}:${pos.line}:${pos.col}` : source;
    const message = first.message.split('\n')[0];
    throw new InvalidConfigError('', `${where}: invalid YAML: ${message}`, { cause: first });
  }
  let value: unknown;
  try {
    // Alias expansion is capped so a "billion laughs" document cannot exhaust memory.
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    throw new InvalidConfigError('', `${source}: invalid YAML: ${(err as Error).message}`, { cause: err });
  }
  return {
    value,
    lineOf(fieldPath) {
      const segments = splitPath(fieldPath);
      if (segments.length === 0) return undefined;
      // Point at the key when the path ends in a mapping key (the most useful place for "unknown key").
      const parent = segments.length === 1 ? doc.contents : doc.getIn(segments.slice(0, -1), true);
      const last = segments[segments.length - 1]!;
      let node: Node | undefined;
      if (isMap(parent)) {
        const pair = parent.items.find(
          (p) => String((p.key as { value?: unknown })?.value ?? p.key) === String(last),
        );
        node = (pair?.key as Node | undefined) ?? undefined;
      } else if (isSeq(parent) && typeof last === 'number') {
        node = parent.items[last] as Node | undefined;
      }
      const offset = node?.range?.[0];
      return offset === undefined ? undefined : lineCounter.linePos(offset).line;
    },
  };
}

/** `listeners[2].port` → `['listeners', 2, 'port']`; `portMappings.443.hosts` → `['portMappings', '443', 'hosts']`. */
function splitPath(fieldPath: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of fieldPath.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return out;
    if (m[1] !== '') out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/**
 * Parse and resolve a YAML configuration document. YAML syntax errors and validation errors are
 * {@link InvalidConfigError}s whose message carries `source:line`.
 */
export function parseConfig(text: string, options: ParseConfigOptions = {}): ResolvedNexusConfig {
  const source = options.source ?? 'config';
  const parsed = parseYaml(text, source);
  if (parsed.value === null || parsed.value === undefined) {
    throw new InvalidConfigError('', `${source}: the configuration is empty`);
  }
  try {
    return resolveNexusConfig(parsed.value as Record<string, unknown>, { baseDir: options.baseDir });
  } catch (err) {
    if (!InvalidConfigError.is(err)) throw err;
    const line = parsed.lineOf(err.path);
    const where = line === undefined ? source : `${source}:${line}`;
    throw new InvalidConfigError(err.path, `${err.detail} (${where})`, { cause: err });
  }
}

/**
 * Read, parse and resolve the YAML configuration file at `file`. Relative paths inside it are resolved
 * against the file's directory. Throws {@link InvalidConfigError} (also when the file cannot be read).
 */
export async function loadConfig(file: string): Promise<ResolvedNexusConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOENT' ? 'not found' : ((err as Error)?.message ?? String(err));
    throw new InvalidConfigError('', `cannot read configuration file ${file}: ${why}`, { cause: err });
  }
  return parseConfig(text, { baseDir: path.dirname(path.resolve(file)), source: file });
}
