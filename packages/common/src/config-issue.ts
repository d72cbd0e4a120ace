/**
 * The error type of the configuration machinery: one problem in a configuration document, naming the key
 * path (`listeners[2].port`) and, once the document's file is known, where it is (`node.yaml:7`). The node
 * and the backend client turn it into their own public error classes (`InvalidConfigError`,
 * `InvalidOptionsError`) at their API boundary, so callers keep matching on those packages' codes.
 */

/** Where in a file a problem is. */
export interface ConfigLocation {
  /** The file (or the name the caller gave the text). */
  readonly source: string;
  /** 1-based line, when the key path was found in the document. */
  readonly line?: number | undefined;
  /** 1-based column (YAML syntax errors). */
  readonly column?: number | undefined;
}

/** What went wrong: a value that failed validation, or a document that is not YAML (or is empty). */
export type ConfigIssueKind = 'invalid' | 'syntax' | 'empty';

/** One problem in a configuration document. */
export class ConfigIssue extends Error {
  /** Stable machine-readable code. */
  readonly code = 'NEXUS_ERR_CONFIG_ISSUE';
  /** Dotted/indexed path of the offending key (`''` = the whole document). */
  readonly path: string;
  /** The reason without the path, e.g. `must be an integer between 0 and 65535 (got 99999)`. */
  readonly detail: string;
  /** Where the problem is, once known. */
  readonly location: ConfigLocation | undefined;
  readonly kind: ConfigIssueKind;

  constructor(
    path: string,
    detail: string,
    options: { location?: ConfigLocation; kind?: ConfigIssueKind; cause?: unknown } = {},
  ) {
    super(
      path ? `${path} ${detail}` : detail,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'ConfigIssue';
    this.path = path;
    this.detail = detail;
    this.location = options.location;
    this.kind = options.kind ?? 'invalid';
  }

  /** `source:line:column`, `source:line` or `source`; `undefined` before the file is known. */
  get where(): string | undefined {
    const l = this.location;
    if (l === undefined) return undefined;
    if (l.line === undefined) return l.source;
    return l.column === undefined ? `${l.source}:${l.line}` : `${l.source}:${l.line}:${l.column}`;
  }

  /** The detail followed by where it is: `must be … (node.yaml:7)`. */
  get locatedDetail(): string {
    const where = this.where;
    return where === undefined ? this.detail : `${this.detail} (${where})`;
  }

  /** True for a ConfigIssue, also across duplicated copies of this package. */
  static is(value: unknown): value is ConfigIssue {
    return value instanceof Error && (value as { code?: unknown }).code === 'NEXUS_ERR_CONFIG_ISSUE';
  }
}
