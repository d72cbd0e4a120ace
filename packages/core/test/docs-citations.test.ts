/**
 * Comments cite only what exists: documents of this repository and the numbered sections of
 * docs/protocol.md (or of the document they name). Covers every package's `src` and `test`, and the
 * test harness, and the root `scripts/` and `bench/`. The scanner is `helpers/doc-citations.ts`.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  citationContext,
  commentBlocks,
  findCitationProblems,
  findMarkdownCitationProblems,
  headingNumbers,
  listSourceFiles,
} from './helpers/doc-citations.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** Every workspace package, so a new one is covered without editing this list. */
const PACKAGES = readdirSync(path.join(ROOT, 'packages'), { withFileTypes: true })
  .filter(
    (entry) => entry.isDirectory() && existsSync(path.join(ROOT, 'packages', entry.name, 'package.json')),
  )
  .map((entry) => entry.name);
const SCANNED = [
  ...PACKAGES.flatMap((p) => [`packages/${p}/src`, `packages/${p}/test`]),
  'packages/test-harness/src',
  'scripts',
  'bench',
];

describe('citations in comments', () => {
  it('cite only documents of this repository and sections that exist', () => {
    const context = citationContext(ROOT);
    const files = listSourceFiles(ROOT, SCANNED);
    // The scan must actually see the sources (a wrong root would pass vacuously).
    expect(PACKAGES).toEqual(
      expect.arrayContaining(['sni', 'mux-protocol', 'core', 'backend-client', 'cli']),
    );
    expect(files.length).toBeGreaterThan(100);
    expect(files).toContain(path.join(ROOT, 'packages/core/src/hub.ts'));
    const problems = files.flatMap((file) => findCitationProblems(file, context));
    const lines = problems.map((p) => `${p.file}:${p.line}: "${p.citation}" ${p.problem}`);
    expect(lines, `bad citations:\n${lines.join('\n')}`).toEqual([]);
  });

  it('in the documentation (docs/, the READMEs) likewise cite only what exists', () => {
    const context = citationContext(ROOT);
    const files = [
      ...listSourceFiles(ROOT, ['docs'], ['.md']),
      path.join(ROOT, 'README.md'),
      ...PACKAGES.map((p) => path.join(ROOT, 'packages', p, 'README.md')).filter((f) => existsSync(f)),
      ...listSourceFiles(ROOT, ['examples'], ['.md']),
    ];
    expect(files).toContain(path.join(ROOT, 'docs/protocol.md'));
    const problems = files.flatMap((file) => findMarkdownCitationProblems(file, context));
    const lines = problems.map((p) => `${p.file}:${p.line}: "${p.citation}" ${p.problem}`);
    expect(lines, `bad citations:\n${lines.join('\n')}`).toEqual([]);
  });

  it('finds the section headings of docs/protocol.md the code relies on', () => {
    const numbers = headingNumbers(
      '# Title\n## 1. Backend session\n### 1.5 Credits\n#### 4.2.1 Deep\nnot ## 9 a heading\n## 10 Ten\n',
    );
    expect([...numbers].sort()).toEqual(['1', '1.5', '10', '4.2.1']);
  });
});

describe('the scanner', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A throwaway repository with docs/protocol.md (§1, §1.5, §2.1), docs/reliability.md (items 1–3). */
  function fixture(source: string, fileName = 'src/x.ts', extra: Record<string, string> = {}): string[] {
    dir = mkdtempSync(path.join(tmpdir(), 'nexus-citations-'));
    mkdirSync(path.join(dir, 'docs'));
    mkdirSync(path.join(dir, 'src'));
    writeFileSync(path.join(dir, 'docs/protocol.md'), '# P\n## 1. One\n### 1.5 Credits\n### 2.1 Peer\n');
    writeFileSync(
      path.join(dir, 'docs/reliability.md'),
      '| # | a |\n|---|---|\n| 1 | x |\n| 2 | y |\n| 3 | z |\n',
    );
    writeFileSync(path.join(dir, 'docs/guide.md'), '# Guide\n## 1 Only\n');
    writeFileSync(path.join(dir, 'README.md'), '# Readme\n');
    writeFileSync(path.join(dir, fileName), source);
    for (const [name, text] of Object.entries(extra)) writeFileSync(path.join(dir, name), text);
    const context = citationContext(dir);
    return findCitationProblems(path.join(dir, fileName), context).map((p) => `${p.line}:${p.citation}`);
  }

  it('accepts repository documents, their sections, RFCs and bare sections of docs/protocol.md', () => {
    const source = [
      '/** Credits (docs/protocol.md §1.5, §2.1); see README.md and ./guide.md §1. */',
      '// §1.5: one credit per frame, RFC 6455 §5.2 framing, RFC 1123',
      '// §2.1 on the next line; docs/reliability.md items 1 and 3.',
      "const s = 'PROTOCOL.md §9 in a string is not a comment';",
      'const r = /\\/\\/ PROTOCOL.md §9/;',
      '/* HAProxy proxy-protocol.txt §2.2 */',
    ].join('\n');
    expect(fixture(source)).toEqual([]);
  });

  it('refuses outside notes by name, missing documents, unknown sections and items, with their line', () => {
    const source = [
      'export const a = 1; // PROTOCOL.md §1.5',
      '/**',
      ' * REFERENCE.md, RELIABILITY.md item 2, STYLE.md 27, RELIABILITY item 13.',
      ' * Missing: docs/nothing.md and other.md; sections docs/protocol.md §1.6, §3 and guide.md §2.',
      ' */',
      '// docs/reliability.md item 26',
    ].join('\n');
    expect(fixture(source)).toEqual([
      '1:PROTOCOL.md',
      '3:REFERENCE.md',
      '3:RELIABILITY.md',
      '3:STYLE.md',
      '3:RELIABILITY',
      '4:docs/nothing.md',
      '4:other.md',
      '4:§1.6',
      '4:§3',
      '4:§2',
      '6:docs/reliability.md item 26',
    ]);
  });

  it('reads Markdown by paragraph and table row, code blocks included', () => {
    const markdown = [
      'See [protocol.md §1.5](./protocol.md#15-credits) and RFC 6455',
      '§5.2 on a wrapped line.',
      '',
      '| a | RFC 8446 §4.1.2 |',
      '| b | §2.1, then §7 |',
      '',
      '```ts',
      'normalize(x) // PROTOCOL §3',
      '```',
    ].join('\n');
    const problems = fixture('', 'src/x.ts', { 'docs/page.md': markdown });
    expect(problems).toEqual([]);
    const context = citationContext(dir!);
    expect(
      findMarkdownCitationProblems(path.join(dir!, 'docs/page.md'), context).map(
        (p) => `${p.line}:${p.citation}`,
      ),
    ).toEqual(['5:§7', '8:PROTOCOL', '8:§3']);
  });

  it('joins consecutive line comments, so a citation may wrap', () => {
    expect(fixture('// a label may not start with a hyphen (RFC 5891\n// §4.2.3.1)\nconst x = 1;\n')).toEqual(
      [],
    );
    // A clause end between the document and the section makes the section a docs/protocol.md one.
    expect(fixture('// RFC 5891 says so. §4.2.3.1 then\nconst x = 1;\n')).toEqual(['1:§4.2.3.1']);
  });

  it('reads comments of JavaScript modules and comments before closing braces', () => {
    const source = 'export function f() {\n  return 1;\n  // PROTOCOL.md §1\n}\n';
    expect(fixture(source, 'src/y.mjs')).toEqual(['3:PROTOCOL.md']);
    // A template literal with a substitution holds no comment; the block comment after it is one.
    const template = ['const a = `// not $', '{1} a comment`; /* yes */'].join('');
    expect(commentBlocks('z.ts', template).length).toBe(1);
  });
});
