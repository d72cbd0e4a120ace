import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import {
  byKind,
  ConfigIssue,
  ConvertIssue,
  configJsonSchema,
  convert,
  deepFreeze,
  didYouMean,
  formatPath,
  integer,
  list,
  locateIssue,
  mapping,
  optional,
  parseYamlConfig,
  presentKeys,
  required,
  splitPath,
  text,
  validate,
} from '../src/config.js';

function issueOf(fn: () => unknown): ConfigIssue {
  try {
    fn();
  } catch (err) {
    expect(ConfigIssue.is(err)).toBe(true);
    return err as ConfigIssue;
  }
  throw new Error('no issue');
}

describe('key paths', () => {
  it.each([
    ['listeners[2].port', ['listeners', 2, 'port']],
    ['backends[0].portMappings.443.hosts', ['backends', 0, 'portMappings', '443', 'hosts']],
    [
      'portMappings.443.hosts["*.preview.example.com"]',
      ['portMappings', '443', 'hosts', '*.preview.example.com'],
    ],
    ['a[0][1]', ['a', 0, 1]],
    ['', []],
  ])('splits %s', (text, segments) => {
    expect(splitPath(text)).toEqual(segments);
    expect(formatPath(segments)).toBe(text);
  });

  it('stops at a part it cannot read', () => {
    expect(splitPath('a.b[x].c')).toEqual(['a', 'b']);
  });
});

describe('didYouMean', () => {
  const known = ['relayPorts', 'backendsJWTSecret', 'nexusAddresses', 'limits'];
  it.each([
    ['relayPort', 'relayPorts'],
    ['backendsJwtSecret', 'backendsJWTSecret'],
    ['nexusAddress', 'nexusAddresses'],
    ['limts', 'limits'],
    ['frobnicate', undefined],
  ])('%s → %s', (key, hint) => {
    expect(didYouMean(key, known)).toBe(hint);
  });

  it('does not compare a huge key with every known one', () => {
    expect(didYouMean(`relayPorts${'x'.repeat(1 << 20)}`, known)).toBeUndefined();
  });
});

describe('parseYamlConfig', () => {
  const text = `a: 1
list:
  - x: 1
  - x: 2
    y: 3
hosts:
  "*.example.com": z
`;

  it('finds the line of a key, a list item and a quoted key', () => {
    const doc = parseYamlConfig(text, 'f.yaml');
    expect(doc.value).toEqual({ a: 1, list: [{ x: 1 }, { x: 2, y: 3 }], hosts: { '*.example.com': 'z' } });
    expect(doc.lineOf('a')).toBe(1);
    expect(doc.lineOf('list[1]')).toBe(4);
    expect(doc.lineOf('list[1].y')).toBe(5);
    expect(doc.lineOf('hosts["*.example.com"]')).toBe(7);
    expect(doc.lineOf('nope.deeper')).toBeUndefined();
    expect(doc.lineOf('')).toBeUndefined();
  });

  it('locates an issue: detail (source:line)', () => {
    const doc = parseYamlConfig(text, 'f.yaml');
    const located = locateIssue(new ConfigIssue('list[1].y', 'is bad'), doc, 'f.yaml');
    expect(located.where).toBe('f.yaml:5');
    expect(located.locatedDetail).toBe('is bad (f.yaml:5)');
    expect(located.message).toBe('list[1].y is bad');
  });

  it('reports syntax errors with line and column, and a key written twice', () => {
    const syntax = issueOf(() => parseYamlConfig('a: [1\nb: 2\n', 'f.yaml'));
    expect(syntax.kind).toBe('syntax');
    expect(syntax.where).toMatch(/^f\.yaml:\d+:\d+$/);
    expect(issueOf(() => parseYamlConfig('a: 1\na: 2\n', 'f.yaml')).kind).toBe('syntax');
  });

  it('reports an empty document, and refuses alias bombs', () => {
    expect(issueOf(() => parseYamlConfig('# nothing\n', 'f.yaml'))).toMatchObject({ kind: 'empty' });
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      lines.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    expect(issueOf(() => parseYamlConfig(lines.join('\n'), 'f.yaml')).kind).toBe('syntax');
  });
});

describe('schema builders', () => {
  const schema = mapping({
    port: required(integer(0, 65535)),
    name: optional(text()),
    tags: optional(list(text())),
    nested: optional(mapping({ level: optional(integer(1, 3)) })),
    target: optional(
      byKind(
        { string: v.string(), mapping: mapping({ address: required(v.string()) }) },
        () => 'must be an address or { address }',
      ),
    ),
    even: optional(
      convert(integer(0, 100), (n) => {
        if (n % 2 !== 0) throw new ConvertIssue('must be even');
        return n / 2;
      }),
    ),
  });

  it('validates and converts; null counts as absent; strings are trimmed', () => {
    expect(validate(schema, { port: 1, name: ' a ', nested: null, even: 4 })).toEqual({
      port: 1,
      name: 'a',
      nested: null,
      even: 2,
    });
  });

  it.each([
    [{ port: 70000 }, 'port', 'must be an integer between 0 and 65535 (got 70000)'],
    [{ port: '1' }, 'port', 'must be an integer between 0 and 65535 (got "1")'],
    [{}, 'port', 'is required'],
    [{ port: null }, 'port', 'is required'],
    [{ port: 1, tags: 'a' }, 'tags', 'must be a list (got "a")'],
    [{ port: 1, tags: ['a', 2] }, 'tags[1]', 'must be a string (got 2)'],
    [{ port: 1, nested: [1] }, 'nested', 'must be a mapping (got a list)'],
    [{ port: 1, nested: { levle: 1 } }, 'nested.levle', 'is not a known key (did you mean `level`?)'],
    [{ port: 1, target: 5 }, 'target', 'must be an address or { address }'],
    [{ port: 1, target: {} }, 'target.address', 'is required'],
    [{ port: 1, even: 3 }, 'even', 'must be even'],
    [{ prot: 1 }, 'prot', 'is not a known key (did you mean `port`?)'],
    [[1], '', 'must be a mapping (got a list)'],
  ])('%j: %s %s', (input, path, detail) => {
    expect(issueOf(() => validate(schema, input))).toMatchObject({ path, detail });
  });

  it('gives a JSON Schema of what may be written', () => {
    const json = configJsonSchema(schema, { title: 'T' });
    const properties = json.properties as Record<string, { anyOf?: unknown[] }>;
    expect(json).toMatchObject({
      $schema: 'http://json-schema.org/draft-07/schema#',
      title: 'T',
      type: 'object',
      required: ['port'],
      additionalProperties: false,
    });
    expect(properties.port).toEqual({ type: 'integer', minimum: 0, maximum: 65535 });
    expect(properties.nested?.anyOf?.[0]).toMatchObject({ additionalProperties: false });
  });
});

describe('values', () => {
  it('presentKeys keeps the document order and skips nulls', () => {
    expect(presentKeys({ b: 1, a: 2, c: null, d: 3 }, ['a', 'b', 'c'])).toEqual(['b', 'a']);
  });

  it('deepFreeze freezes objects and lists, not maps', () => {
    const m = new Map([[1, { x: 1 }]]);
    const v = deepFreeze({ a: [{ b: 1 }], m });
    expect(Object.isFrozen(v.a[0])).toBe(true);
    expect(Object.isFrozen(m)).toBe(false);
  });
});
