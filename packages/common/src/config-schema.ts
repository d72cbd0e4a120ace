/**
 * The configuration schema machinery the node and the backend client share, on valibot (see
 * docs/configuration.md, "How configuration is validated"). Each builder is a valibot schema whose error
 * messages are the project's own (`must be an integer between 0 and 65535 (got 99999)`), so a field is
 * declared once and gives both the runtime check and the JSON Schema that editors use.
 *
 * Conventions of every configuration document: `null` (YAML `key:` with nothing after it) counts as
 * absent; mappings are strict (an unknown key is an error with a "did you mean" hint); keys of later
 * reference versions can be accepted and ignored with a warning.
 */
import { type ConversionConfig, type JsonSchema, toJsonSchema } from '@valibot/to-json-schema';
import * as v from 'valibot';
import { ConfigIssue } from './config-issue.js';
import { describeValue, formatPath, type PathSegment } from './config-path.js';
import { unknownKeyDetail } from './config-suggest.js';
import { isMapping, present } from './config-values.js';

/** Any valibot schema. */
export type AnySchema = v.GenericSchema<unknown, unknown>;
/** What a schema gives after validation. */
export type Output<S extends AnySchema> = v.InferOutput<S>;
/** What a mapping of `entries` gives after validation. */
export type Parsed<E extends v.ObjectEntries> = v.InferOutput<v.StrictObjectSchema<E, undefined>>;
/** A message for an input that failed: gets the input, returns the detail (without the key path). */
export type DetailFor = (input: unknown) => string;

const detail =
  (f: DetailFor) =>
  (issue: v.BaseIssue<unknown>): string =>
    f(issue.input);

/** An integer in [min, max]. */
export function integer(min: number, max: number) {
  const m = detail((x) => `must be an integer between ${min} and ${max} (got ${describeValue(x)})`);
  return v.pipe(v.number(m), v.integer(m), v.minValue(min, m), v.maxValue(max, m));
}

/** `true` or `false`. */
export function flag() {
  return v.boolean(detail((x) => `must be true or false (got ${describeValue(x)})`));
}

const mustBeString = (x: unknown) => `must be a string (got ${describeValue(x)})`;

/** A string, trimmed; an empty one counts as absent (`undefined`). */
export function text(message: DetailFor = mustBeString) {
  return v.pipe(
    v.string(detail(message)),
    v.transform((s) => {
      const t = s.trim();
      return t === '' ? undefined : t;
    }),
  );
}

/** A non-empty string, trimmed. */
export function nonEmptyText(message: DetailFor = mustBeString, empty = 'must not be empty') {
  return v.pipe(v.string(detail(message)), v.trim(), v.nonEmpty(empty));
}

/** A list of `item`s. */
export function list<S extends AnySchema>(
  item: S,
  message: DetailFor = (x) => `must be a list (got ${describeValue(x)})`,
) {
  return v.array(item, detail(message));
}

/** One of `values`. */
export function oneOf<const T extends readonly [string, ...string[]]>(
  values: T,
  message: DetailFor = (x) => `must be one of ${values.join(', ')} (got ${describeValue(x)})`,
) {
  return v.picklist(values, detail(message));
}

/** An optional key: absent or `null` gives `undefined`. `description` shows in editors. */
export function optional<S extends AnySchema>(schema: S, description?: string) {
  const s = v.nullish(schema);
  return description === undefined ? s : v.pipe(s, v.description(description));
}

/** A key that must be there and not `null` ("is required"). */
export function required<S extends AnySchema>(schema: S, description?: string) {
  const s = v.pipe(v.custom<v.InferInput<S>>(present, 'is required'), schema);
  return description === undefined ? s : v.pipe(s, v.description(description));
}

/** Keys that are accepted and ignored (each gets a warning from the resolver). */
export function ignoredKeys<const K extends readonly string[]>(keys: K, description: string) {
  const ignored = v.pipe(v.optional(v.unknown()), v.description(description));
  return Object.fromEntries(keys.map((k) => [k, ignored])) as { [P in K[number]]: typeof ignored };
}

/**
 * A strict mapping of `entries`. Something else than a mapping is "must be a mapping"; an unknown key is
 * "is not a known key", with a hint when it looks like a typo of one of `entries`. Unknown keys are
 * reported before anything else in the mapping: a typo usually explains the "is required" that follows.
 */
export function mapping<const E extends v.ObjectEntries>(
  entries: E,
  message: DetailFor = (x) => `must be a mapping (got ${describeValue(x)})`,
) {
  const known = Object.keys(entries);
  // Typed as what the entries accept, so a mapping's inferred input type is its keys' types.
  type Input = v.InferInput<v.StrictObjectSchema<E, undefined>>;
  return v.pipe(
    v.custom<Input>(isMapping, detail(message)),
    v.rawCheck<Input>(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const input = dataset.value as Record<string, unknown>;
      const key = Object.keys(input).find((k) => !Object.hasOwn(entries, k));
      if (key === undefined) return;
      addIssue({
        message: unknownKeyDetail(key, known),
        path: [{ type: 'object', origin: 'key', input, key, value: input[key] }],
      });
    }),
    v.strictObject(entries, 'is required'),
  );
}

type Forms<O> = Extract<O[keyof O], AnySchema>;

type JsKind = 'string' | 'number' | 'boolean' | 'list' | 'mapping';

function kindOf(value: unknown): JsKind | undefined {
  if (Array.isArray(value)) return 'list';
  if (isMapping(value)) return 'mapping';
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' ? t : undefined;
}

/**
 * A value written in one of several forms, chosen by its JavaScript type (`"127.0.0.1:9090"` or
 * `{ address: … }`), so an error inside the chosen form keeps its own path and message; a value of no
 * listed type gets `message`. The JSON Schema lists every form.
 */
export function byKind<const O extends Partial<Record<JsKind, AnySchema>>>(options: O, message: DetailFor) {
  const forms = [...new Set(Object.values(options) as AnySchema[])];
  const all = v.union(forms);
  const none = v.custom<never>(() => false, detail(message));
  return v.lazy((input: unknown) => {
    if (input === undefined) return all;
    const kind = kindOf(input);
    return (kind === undefined ? undefined : options[kind]) ?? none;
  }) as unknown as v.GenericSchema<v.InferInput<Forms<O>>, v.InferOutput<Forms<O>>>;
}

/** Thrown by a {@link convert} function to report a bad value; `path` is relative to the value. */
export class ConvertIssue extends Error {
  constructor(
    readonly detail: string,
    readonly path: readonly PathSegment[] = [],
  ) {
    super(detail);
    this.name = 'ConvertIssue';
  }
}

/**
 * `schema`, then `fn` on its output (parsing an address, normalising a URL). `fn` reports a bad value by
 * throwing a {@link ConvertIssue} (or a {@link ConfigIssue}, whose detail is used).
 */
export function convert<S extends AnySchema, T>(schema: S, fn: (value: v.InferOutput<S>) => T) {
  return v.pipe(
    schema,
    v.rawTransform<v.InferOutput<S>, T>(({ dataset, addIssue, NEVER }) => {
      try {
        return fn(dataset.value);
      } catch (err) {
        if (err instanceof ConvertIssue || ConfigIssue.is(err)) {
          const at = (err instanceof ConvertIssue ? err.path : []).map(
            (key): v.IssuePathItem =>
              typeof key === 'number'
                ? { type: 'array', origin: 'value', input: [], key, value: undefined }
                : { type: 'object', origin: 'value', input: {}, key, value: undefined },
          );
          const [first, ...rest] = at;
          addIssue({ message: err.detail, ...(first === undefined ? {} : { path: [first, ...rest] }) });
          return NEVER;
        }
        throw err;
      }
    }),
  );
}

function issuePath(issue: v.BaseIssue<unknown>): string {
  return formatPath((issue.path ?? []).map((item) => item.key as PathSegment));
}

/**
 * Validate `input` against `schema` and return its output. Throws a {@link ConfigIssue} naming the key
 * path of the first problem (in the order the schema declares its keys).
 */
export function validate<S extends AnySchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input, { abortEarly: true });
  if (result.success) return result.output;
  const issue = result.issues[0];
  throw new ConfigIssue(issuePath(issue), issue.message);
}

/** Titles of an exported JSON Schema. */
export interface JsonSchemaInfo {
  /** `$id`, e.g. `https://nexus-proxy.dev/schema/node-config.json`. */
  id?: string;
  title: string;
  description?: string;
}

const NOT_IN_JSON_SCHEMA: NonNullable<ConversionConfig['ignoreActions']> = [
  'transform',
  'raw_transform',
  'trim',
  'check',
  'raw_check',
];

/**
 * The JSON Schema (draft-07) of what a document may contain, for editors and other tools. Checks that
 * only code can make (an address's syntax, cross-field rules) are left to the resolver.
 */
export function configJsonSchema(schema: AnySchema, info: JsonSchemaInfo): JsonSchema {
  const json = toJsonSchema(schema, { typeMode: 'output', ignoreActions: NOT_IN_JSON_SCHEMA });
  const { $schema, ...rest } = json;
  return {
    $schema,
    ...(info.id === undefined ? {} : { $id: info.id }),
    title: info.title,
    ...(info.description === undefined ? {} : { description: info.description }),
    ...rest,
  };
}
