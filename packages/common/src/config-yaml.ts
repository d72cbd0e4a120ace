/**
 * Reading a YAML configuration document with enough bookkeeping to point an error at its line. A key
 * written twice is an error (the reference's decoder refuses it too), and alias expansion is capped so a
 * "billion laughs" document cannot exhaust memory.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigIssue } from './config-issue.js';
import { type PathSegment, splitPath } from './config-path.js';

/** Most aliases a document may expand. */
export const MAX_YAML_ALIAS_COUNT = 100;

/** A parsed YAML document. */
export interface YamlConfigDocument {
  /** The document as plain data (`null` for an empty one). */
  readonly value: unknown;
  /** The line of the key at `path` (`listeners[2].port`), or of the list item; `undefined` if absent. */
  lineOf(path: string): number | undefined;
}

function keyText(key: unknown): string {
  return String(isScalar(key) ? key.value : key);
}

/** The YAML node at `segments` below `root`; map keys compare as text, so `443` finds a key `443:`. */
export function nodeAt(root: unknown, segments: readonly PathSegment[]): unknown {
  let node = root;
  for (const segment of segments) {
    if (isMap(node)) node = node.items.find((p) => keyText(p.key) === String(segment))?.value;
    else if (isSeq(node) && typeof segment === 'number') node = node.items[segment];
    else return undefined;
  }
  return node;
}

/** Longest stretch of the offending line an error quotes. */
const MAX_QUOTED_LINE = 80;

/**
 * The yaml library's message on one line, without its trailing `at line 5, column 3:` (the location is
 * given separately), followed by the offending line as written: `Sequence item without - indicator
 * (line 5: "   mode: tls")`.
 */
function syntaxDetail(message: string, text: string, line: number | undefined): string {
  const reason = message
    .split('\n')[0]!
    .replace(/\s*at line \d+, column \d+:?\s*$/, '')
    .trim();
  if (line === undefined) return reason;
  const written = text.split(/\r?\n/)[line - 1];
  if (written === undefined || written.trim() === '') return reason;
  const quoted = written.length > MAX_QUOTED_LINE ? `${written.slice(0, MAX_QUOTED_LINE)}…` : written;
  return `${reason} (line ${line}: ${JSON.stringify(quoted)})`;
}

/**
 * Parse `text` (named `source` in errors). Throws a {@link ConfigIssue} of kind `syntax` (with line and
 * column) for YAML errors, duplicate keys and alias bombs, and of kind `empty` for an empty document.
 */
export function parseYamlConfig(text: string, source: string): YamlConfigDocument {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    throw new ConfigIssue('', syntaxDetail(first.message, text, pos?.line), {
      kind: 'syntax',
      location: { source, line: pos?.line, column: pos?.col },
      cause: first,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (err) {
    throw new ConfigIssue('', (err as Error).message, { kind: 'syntax', location: { source }, cause: err });
  }
  if (value === null || value === undefined) {
    throw new ConfigIssue('', 'is empty', { kind: 'empty', location: { source } });
  }
  return {
    value,
    lineOf(path) {
      const segments = splitPath(path);
      if (segments.length === 0) return undefined;
      // Point at the key when the path ends in a mapping key (the useful place for "unknown key").
      const parent = nodeAt(doc.contents, segments.slice(0, -1));
      const last = segments[segments.length - 1]!;
      let node: Node | undefined;
      if (isMap(parent)) node = parent.items.find((p) => keyText(p.key) === String(last))?.key as Node;
      else if (isSeq(parent) && typeof last === 'number') node = parent.items[last] as Node | undefined;
      const offset = node?.range?.[0];
      return offset === undefined ? undefined : lineCounter.linePos(offset).line;
    },
  };
}

/** `issue` with the line of its key in `doc` (and `source`) added. */
export function locateIssue(issue: ConfigIssue, doc: YamlConfigDocument, source: string): ConfigIssue {
  return new ConfigIssue(issue.path, issue.detail, {
    kind: issue.kind,
    location: { source, line: doc.lineOf(issue.path) },
    cause: issue.cause ?? issue,
  });
}
