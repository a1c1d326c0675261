import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

/**
 * The documentation as the tests read it (test/docs.test.ts, test/kernel/docs.test.ts): README.md,
 * every page under docs/ and container/README.md; their fenced blocks, shell examples, links and
 * headings.
 */

/** Repository-relative paths of the documentation pages, README first. */
export function docPages(): string[] {
  const pages = ['README.md'];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(ROOT, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) pages.push(rel);
    }
  };
  walk('docs');
  pages.push('container/README.md');
  return pages;
}

export const readPage = (page: string): string => readFileSync(join(ROOT, page), 'utf8');

export interface Block {
  readonly page: string;
  /** Line of the opening fence, 1-based. */
  readonly line: number;
  /** The info string's first word ('' when none). */
  readonly lang: string;
  readonly body: readonly string[];
}

/** Fenced code blocks (``` or ~~~, any indentation), their bodies unindented by the fence's indent. */
export function fencedBlocks(page: string, text: string = readPage(page)): Block[] {
  const lines = text.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    // A backtick fence's info string has no backtick (CommonMark): ```` ```sh ```` opening a line is inline code.
    const open = /^(\s*)(`{3,}(?=[^`]*$)|~{3,})\s*(\S*)/.exec(lines[i] as string);
    if (!open) continue;
    const [, indent = '', fence = '', lang = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    for (; j < lines.length && !close.test(lines[j] as string); j++) {
      const l = lines[j] as string;
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
    }
    if (j === lines.length) throw new Error(`${page}:${i + 1}: a fenced block is never closed`);
    out.push({ page, line: i + 1, lang, body });
    i = j;
  }
  return out;
}

/** The languages a fenced block may name; the shell ones are run (or marked as not runnable here). */
export const SHELL_LANGS = ['sh', 'bash', 'shell', 'console'] as const;
export const OTHER_LANGS = ['text', 'json', 'yaml', 'ts', 'js'] as const;
export const isShell = (b: Block): boolean => (SHELL_LANGS as readonly string[]).includes(b.lang);

/**
 * Markers a shell block carries, as a comment line of its own, when it cannot run here. Each says
 * what it needs, and each command of the block must be one that needs it (checked by `needs`).
 */
export const MARKERS = {
  'needs a cluster': 'kubectl, helm and istioctl talk to a Kubernetes cluster; the tests have none',
  'needs a registry': 'image builds pull their base images, and pushes, pulls and npm installs reach a registry; the tests reach none but npm\'s own',
} as const;
export type Marker = keyof typeof MARKERS;

export function markerOf(b: Block): Marker | undefined {
  const found = b.body.map((l) => /^#\s*(needs a [a-z]+)\s*$/.exec(l.trim())?.[1]).filter((m): m is string => m !== undefined);
  if (found.length > 1) throw new Error(`${b.page}:${b.line}: more than one marker`);
  const [m] = found;
  if (m === undefined) return undefined;
  if (!(m in MARKERS)) throw new Error(`${b.page}:${b.line}: unknown marker "# ${m}" (known: ${Object.keys(MARKERS).join(', ')})`);
  return m as Marker;
}

/** A shell block's commands: comment and blank lines dropped, `\` continuations joined, `$ ` prompts of console blocks only. */
export function commandsOf(b: Block): string[] {
  if (b.lang === 'console') return consoleSteps(b).map((s) => s.command);
  const out: string[] = [];
  let pending = '';
  for (const raw of b.body) {
    const l = raw.trimEnd();
    if (pending === '' && (l.trim() === '' || l.trim().startsWith('#'))) continue;
    if (l.endsWith('\\')) pending += `${l.slice(0, -1)} `;
    else {
      out.push((pending + l).trim());
      pending = '';
    }
  }
  if (pending !== '') out.push(pending.trim());
  return out;
}

/** Whether a command needs what its block's marker says. */
export function needs(marker: Marker, command: string): boolean {
  const c = command.replace(/^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*/, '');
  switch (marker) {
    case 'needs a cluster':
      return /^(kubectl|helm|istioctl)\s/.test(c);
    case 'needs a registry':
      return (
        /^(docker|podman)\s+(build|push|pull)\s/.test(c) ||
        /^npm\s+(install|i)\s+[a-z@]/.test(c) ||
        // a command on an image that only a registry has (a reference with a registry host)
        /(^|\s)([a-z0-9-]+\.)+[a-z]{2,}(:\d+)?\/[a-z0-9._/-]+:[\w.-]+(\s|$)/.test(c)
      );
  }
}

export interface ConsoleStep {
  readonly command: string;
  /** The output shown under the command, in lines ('...' lines and within-line '...' are wildcards). */
  readonly expected: readonly string[];
}

/** A console block: `$ command` lines, each followed by the output it shows. */
export function consoleSteps(b: Block): ConsoleStep[] {
  const steps: { command: string; expected: string[] }[] = [];
  for (const l of b.body) {
    if (l.startsWith('$ ')) steps.push({ command: l.slice(2), expected: [] });
    else if (steps.length === 0) throw new Error(`${b.page}:${b.line}: a console block starts with "$ command"`);
    else (steps.at(-1) as { expected: string[] }).expected.push(l);
  }
  for (const s of steps) while (s.expected.length > 0 && s.expected.at(-1) === '') s.expected.pop();
  return steps;
}

/**
 * Whether `actual` is what a page shows: line by line, trailing spaces aside; a line that is only
 * `...` stands for any lines (none included), `...` within a line for any text on that line.
 */
export function matchesShown(expected: readonly string[], actual: string): boolean {
  const pattern = expected
    .map((l) => (l.trim() === '...' ? '(?:[^\\n]*\\n)*?' : `${l.trimEnd().split('...').map(escape).join('[^\\n]*?')}[ \\t]*\\n`))
    .join('');
  if (expected.length === 0) return actual.trim() === '';
  const text = actual.split('\n').map((l) => l.trimEnd()).join('\n').replace(/\n*$/, '\n');
  return new RegExp(`^${pattern}$`).test(text);
}
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`; repeats get -1, -2... */
export function headingAnchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence: string | null = null;
  for (const line of text.split('\n')) {
    const f = /^\s*(`{3,}(?=[^`]*$)|~{3,})/.exec(line);
    if (f) {
      if (fence === null) fence = f[1] as string;
      else if ((f[1] as string)[0] === fence[0] && (f[1] as string).length >= fence.length) fence = null;
      continue;
    }
    if (fence !== null) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = (h[1] as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** A page's text outside fenced blocks and inline code, with each line's number. */
export function prose(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | null = null;
  text.split('\n').forEach((line, i) => {
    const f = /^\s*(`{3,}(?=[^`]*$)|~{3,})/.exec(line);
    if (f) {
      if (fence === null) fence = f[1] as string;
      else if ((f[1] as string)[0] === fence[0] && (f[1] as string).length >= fence.length) fence = null;
      return;
    }
    if (fence === null) out.push({ line: i + 1, text: line });
  });
  return out;
}

/** Inline code spans of a page's prose (one line each; a span does not cross lines in these pages). */
export function inlineCode(text: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  for (const { line, text: l } of prose(text)) {
    for (const m of l.matchAll(/(`+)(?!`)(.+?)(?<!`)\1(?!`)/g)) out.push({ line, code: (m[2] as string).trim() });
  }
  return out;
}

/** Links and images of a page's prose: `[text](target)`, `![alt](target)`, `<https://...>`. */
export function links(text: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text: l } of prose(text)) {
    const plain = l.replace(/(`+)(?!`)(.+?)(?<!`)\1(?!`)/g, '');
    for (const m of plain.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ line, target: m[1] as string });
    for (const m of plain.matchAll(/<(https?:\/\/[^>\s]+)>/g)) out.push({ line, target: m[1] as string });
    for (const m of plain.matchAll(/^\s*\[[^\]]+\]:\s+(\S+)/g)) out.push({ line, target: m[1] as string });
  }
  return out;
}
