/**
 * Finds comments (and Markdown documents) that cite documents which are not in the repository, or
 * sections that the cited document does not have. Used by `docs-citations.test.ts`; see docs/testing.md.
 *
 * What counts as a citation — in source files, in comments only (strings and code are not read):
 * - a Markdown file name (`docs/protocol.md`, `README.md`): it must exist, relative to the repository root
 *   or the citing file, or (a bare name, or `./name`) anywhere in the repository. The names of the
 *   project's background notes that live outside the repository ({@link OUTSIDE_DOCUMENTS}) are refused
 *   outright, with or without `.md`, and so are their short forms followed by `item` or a section sign.
 * - a section sign and number (`§1.5`): it belongs to the nearest document named before it in the same
 *   clause of the same comment (`RFC 6455 §5.2`, `docs/reliability.md §x`); with none, to
 *   docs/protocol.md. For a document of this repository the number must be one of its heading numbers.
 * - `reliability.md item N` (or `items N and M`): N must be a row of the table in docs/reliability.md.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** One bad citation. `line` is 1-based. */
export interface CitationProblem {
  /** Path relative to the repository root. */
  file: string;
  line: number;
  /** The citation as written. */
  citation: string;
  /** Why it is refused. */
  problem: string;
}

/** Background notes kept outside the repository: code and docs must cite the docs/ pages instead. */
export const OUTSIDE_DOCUMENTS: readonly string[] = ['PROTOCOL', 'REFERENCE', 'RELIABILITY', 'STYLE'];

const SKIPPED_DIRECTORIES = new Set(['node_modules', 'dist', '.git', '.turbo', 'coverage']);
const SOURCE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

/** A document name: a Markdown file, a plain-text spec, or an RFC. */
const DOCUMENT = /(?:[\w.-]*\/)*[\w-][\w.-]*\.(?:md|txt)\b|\bRFC ?\d+\b/g;
const SECTION = /§ ?(\d+(?:\.\d+)*)/g;
const OUTSIDE_NAME = new RegExp(
  `\\b(?:${OUTSIDE_DOCUMENTS.join('|')})(?:\\.md\\b|(?=\\s+(?:items?\\b|§)))`,
  'g',
);
const RELIABILITY_ITEMS =
  /(?<![\w.-])(?:[\w.-]+\/)*reliability\.md\b[^§\n]*?\bitems? (\d+(?:\s*(?:,|and|or|–|-)\s*\d+)*)/g;
/** A clause ends at a full stop, semicolon or colon followed by a space (or at the end of a comment). */
const CLAUSE_END = /[.;:](?:\s|$)/;

/**
 * Every source file under `dirs` (relative to `root`), skipping build output and dependencies; or every
 * file with one of `extensions`.
 */
export function listSourceFiles(
  root: string,
  dirs: readonly string[],
  extensions: readonly string[] = SOURCE_EXTENSIONS,
): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRECTORIES.has(entry.name)) walk(full);
      } else if (extensions.some((ext) => entry.name.endsWith(ext)) && !entry.name.endsWith('.d.ts')) {
        out.push(full);
      }
    }
  };
  for (const dir of dirs) walk(path.join(root, dir));
  return out.sort();
}

/** The heading numbers of a Markdown document: `### 1.5 Credits` → `1.5`, `## 4. Relay` → `4`. */
export function headingNumbers(markdown: string): Set<string> {
  const numbers = new Set<string>();
  for (const line of markdown.split('\n')) {
    const m = /^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/.exec(line);
    if (m !== null) numbers.add(m[1]!);
  }
  return numbers;
}

/**
 * A span of text read as one unit: a comment, a run of `//` comments on consecutive lines (a paragraph
 * written as line comments), or a Markdown paragraph. Offsets into the file; markers are kept.
 */
interface CommentBlock {
  start: number;
  end: number;
}

/** The comments of a source file, found by the TypeScript parser (strings and regexes are never comments). */
export function commentBlocks(fileName: string, text: string): CommentBlock[] {
  const kind = /\.[mc]?js$/.test(fileName) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const ranges = new Map<number, ts.CommentRange>();
  const collect = (list: ts.CommentRange[] | undefined): void => {
    for (const r of list ?? []) ranges.set(r.pos, r);
  };
  const visit = (node: ts.Node): void => {
    collect(ts.getLeadingCommentRanges(text, node.pos));
    collect(ts.getTrailingCommentRanges(text, node.end));
    // Tokens are children too (getChildren), so trivia before a `}` or `)` is seen; JSDoc nodes live
    // inside comment text and are skipped (their comment is the leading trivia of their owner).
    for (const child of node.getChildren(source)) if (!ts.isJSDoc(child)) visit(child);
  };
  visit(source);
  const sorted = [...ranges.values()].sort((a, b) => a.pos - b.pos);
  const blocks: CommentBlock[] = [];
  for (const r of sorted) {
    const last = blocks[blocks.length - 1];
    const between = last === undefined ? '' : text.slice(last.end, r.pos);
    const adjacentLineComment =
      last !== undefined &&
      r.kind === ts.SyntaxKind.SingleLineCommentTrivia &&
      text.startsWith('//', last.start) &&
      /^[ \t]*\r?\n[ \t]*$/.test(between);
    if (adjacentLineComment) last.end = r.end;
    else blocks.push({ start: r.pos, end: r.end });
  }
  return blocks;
}

/** Context for {@link findCitationProblems}. */
export interface CitationContext {
  /** Repository root. */
  root: string;
  /** Base names of every Markdown file in the repository. */
  markdownNames: ReadonlySet<string>;
  /** Heading numbers per repository document, keyed by absolute path; read on demand. */
  headings: Map<string, Set<string>>;
  /** Row numbers of the failure-mode table of docs/reliability.md. */
  reliabilityItems: ReadonlySet<number>;
}

/** Builds the context once for a repository. */
export function citationContext(root: string): CitationContext {
  const markdownNames = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRECTORIES.has(entry.name)) walk(path.join(dir, entry.name));
      } else if (entry.name.endsWith('.md')) {
        markdownNames.add(entry.name);
      }
    }
  };
  walk(root);
  const reliability = readFileSync(path.join(root, 'docs', 'reliability.md'), 'utf8');
  const reliabilityItems = new Set<number>();
  for (const m of reliability.matchAll(/^\|\s*(\d+)\s*\|/gm)) reliabilityItems.add(Number(m[1]));
  return { root, markdownNames, headings: new Map(), reliabilityItems };
}

/** Resolves a cited Markdown name to a file of the repository, or `undefined` when there is none. */
function resolveMarkdown(cited: string, citingFile: string, context: CitationContext): string | undefined {
  let name = cited;
  if (name.includes('/')) {
    for (const base of [context.root, path.dirname(citingFile)]) {
      const full = path.resolve(base, name);
      if (existsSync(full)) return full;
    }
    if (!name.startsWith('./')) return undefined;
    name = name.slice(2);
  }
  if (!context.markdownNames.has(name)) return undefined;
  const inDocs = path.join(context.root, 'docs', name);
  return existsSync(inDocs) ? inDocs : path.join(context.root, name);
}

function headingsOf(file: string, context: CitationContext): Set<string> {
  let numbers = context.headings.get(file);
  if (numbers === undefined) {
    numbers = existsSync(file) ? headingNumbers(readFileSync(file, 'utf8')) : new Set();
    context.headings.set(file, numbers);
  }
  return numbers;
}

interface DocumentMention {
  index: number;
  name: string;
}

/** Every bad citation in the comments of one source file. */
export function findCitationProblems(file: string, context: CitationContext): CitationProblem[] {
  const text = readFileSync(file, 'utf8');
  return checkBlocks(file, text, commentBlocks(file, text), context);
}

/**
 * Every bad citation in a Markdown file. Each paragraph is a block, and so is each table row (a row's
 * last document must not claim the next row's section signs).
 */
export function findMarkdownCitationProblems(file: string, context: CitationContext): CitationProblem[] {
  const text = readFileSync(file, 'utf8');
  const blocks: CommentBlock[] = [];
  let offset = 0;
  let open: CommentBlock | undefined;
  for (const line of text.split('\n')) {
    const end = offset + line.length;
    if (line.trim() === '' || line.trimStart().startsWith('|')) {
      open = undefined;
      if (line.trim() !== '') blocks.push({ start: offset, end });
    } else if (open === undefined) {
      open = { start: offset, end };
      blocks.push(open);
    } else {
      open.end = end;
    }
    offset = end + 1;
  }
  return checkBlocks(file, text, blocks, context);
}

function checkBlocks(
  file: string,
  text: string,
  blocks: readonly CommentBlock[],
  context: CitationContext,
): CitationProblem[] {
  const relative = path.relative(context.root, file);
  const problems: CitationProblem[] = [];
  const lineOf = (offset: number): number => text.slice(0, offset).split('\n').length;
  const protocol = path.join(context.root, 'docs', 'protocol.md');

  for (const block of blocks) {
    const comment = text.slice(block.start, block.end);
    const report = (offset: number, citation: string, problem: string): void => {
      problems.push({ file: relative, line: lineOf(block.start + offset), citation, problem });
    };

    for (const m of comment.matchAll(OUTSIDE_NAME)) {
      report(m.index, m[0], 'names a note kept outside the repository: cite the docs/ page instead');
    }

    const mentions: DocumentMention[] = [];
    for (const m of comment.matchAll(DOCUMENT)) {
      const name = m[0];
      mentions.push({ index: m.index, name });
      if (!name.endsWith('.md')) continue;
      const base = path.basename(name);
      if (OUTSIDE_DOCUMENTS.some((n) => base === `${n}.md`)) continue; // reported above
      if (resolveMarkdown(name, file, context) === undefined) {
        report(m.index, name, 'is not a document of this repository');
      }
    }

    for (const m of comment.matchAll(SECTION)) {
      const number = m[1]!;
      const owner = [...mentions].reverse().find((d) => d.index < m.index);
      const clauseOpen = owner !== undefined && !CLAUSE_END.test(comment.slice(owner.index, m.index));
      let document: string;
      if (owner === undefined || !clauseOpen) {
        document = protocol;
      } else if (owner.name.endsWith('.md')) {
        const base = path.basename(owner.name);
        if (OUTSIDE_DOCUMENTS.some((n) => base === `${n}.md`)) continue; // the name is the problem
        const resolved = resolveMarkdown(owner.name, file, context);
        if (resolved === undefined) continue; // reported with the name
        document = resolved;
      } else {
        continue; // an RFC or an outside plain-text spec
      }
      if (!headingsOf(document, context).has(number)) {
        report(
          m.index,
          m[0],
          `is not a section of ${path.relative(context.root, document)} (no heading numbered ${number})`,
        );
      }
    }

    for (const m of comment.matchAll(RELIABILITY_ITEMS)) {
      for (const n of m[1]!.match(/\d+/g) ?? []) {
        if (!context.reliabilityItems.has(Number(n))) {
          report(m.index, m[0], `item ${n} is not a row of docs/reliability.md`);
        }
      }
    }
  }
  return problems;
}
