import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';
import {
  type Block,
  commandsOf,
  consoleSteps,
  docPages,
  fencedBlocks,
  headingAnchors,
  inlineCode,
  isShell,
  links,
  markerOf,
  MARKERS,
  matchesShown,
  needs,
  OTHER_LANGS,
  readPage,
  SHELL_LANGS,
} from './support/docs.js';

/**
 * The documentation holds together: every shell example is either run (test/kernel/docs.test.ts,
 * inside a network namespace of its own) or says what it needs that the tests do not have, and is
 * only commands that need it; links and anchors resolve; paths written in code exist. README's
 * first block is the two commands for a fresh machine.
 */

const pages = docPages();
const blocks = pages.flatMap((p) => fencedBlocks(p));
const shell = blocks.filter(isShell);
const where = (b: Block): string => `${b.page}:${b.line}`;

describe('the pages', () => {
  it('are README.md, container/README.md and every page under docs/, each listed in docs/README.md', () => {
    expect(pages.slice(0, 1)).toEqual(['README.md']);
    expect(pages).toContain('container/README.md');
    expect(pages).toContain('docs/istio.md');
    const index = readPage('docs/README.md');
    const listed = new Set(links(index).map((l) => normalize(join('docs', l.target.split('#')[0] as string))));
    const unlisted = pages.filter((p) => p.startsWith('docs/') && p !== 'docs/README.md' && !listed.has(p));
    expect(unlisted, 'pages docs/README.md does not link').toEqual([]);
    expect(listed.has('container/README.md')).toBe(true);
    expect(links(readPage('README.md')).map((l) => l.target)).toContain('docs/README.md');
  });

  it('README.md is a user\'s README: at most 300 lines', () => {
    const n = readPage('README.md').split('\n').length - 1;
    expect(n).toBeLessThanOrEqual(300);
  });
});

describe('README\'s first block: the two commands for a fresh machine', () => {
  const first = shell.find((b) => b.page === 'README.md') as Block;

  it('is exactly the set-up and main job, then all tests', () => {
    expect(first.line).toBe(3);
    expect(first.body).toEqual(['npm ci && npm run build && npm run -s dry-run:sidecar', 'npm test']);
  });

  it('prints the sidecar\'s rules README names, through the command README names', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // The prose quotes the dry run as a user would type it; the script runs the same through the bin.
    const quoted = /\(`(istio-iptables [^`]+?)`\)/s.exec(readPage('README.md').split('\n').slice(8, 14).join('\n'))?.[1]?.replace(/\s+/g, ' ');
    expect(quoted).toBeDefined();
    expect(pkg.scripts['dry-run:sidecar']).toBe(`node bin/istio-iptables.js ${(quoted as string).replace(/-x "" /, "-x '' ")}`);
    // pretest builds what the first command builds, so the second alone works on a fresh clone after the first.
    expect(pkg.scripts.pretest).toContain('npm run -s build');
    const viaNpm = await execa('npm', ['run', '-s', 'dry-run:sidecar'], { cwd: ROOT, reject: false, timeout: 60_000 });
    expect(viaNpm.exitCode).toBe(0);
    expect(viaNpm.stdout).toContain('-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN');
    const direct = await execa('bash', ['-c', `node bin/istio-iptables.js ${(quoted as string).replace(/^istio-iptables /, '')}`], { cwd: ROOT, reject: false, timeout: 60_000 });
    expect(direct.exitCode).toBe(0);
    expect(viaNpm.stdout).toBe(direct.stdout);
  });
});

describe('fenced blocks', () => {
  it('each names its language, so no shell example hides in an untagged block', () => {
    const known: readonly string[] = [...SHELL_LANGS, ...OTHER_LANGS];
    expect(blocks.filter((b) => !known.includes(b.lang)).map((b) => `${where(b)} "${b.lang}"`)).toEqual([]);
    expect(shell.length).toBeGreaterThanOrEqual(30);
  });

  it('console blocks are "$ command" lines, each with the output it shows', () => {
    for (const b of shell.filter((x) => x.lang === 'console')) expect(() => consoleSteps(b), where(b)).not.toThrow();
  });

  it('a block not run here carries one marker, and every command in it needs what the marker says', () => {
    const skipped = shell.filter((b) => markerOf(b) !== undefined);
    expect(skipped.length).toBeGreaterThanOrEqual(8);
    for (const b of skipped) {
      const marker = markerOf(b) as keyof typeof MARKERS;
      const commands = commandsOf(b);
      expect(commands.length, where(b)).toBeGreaterThan(0);
      for (const c of commands) expect(needs(marker, c), `${where(b)}: "${c}" does not need what "# ${marker}" says`).toBe(true);
    }
  });

  it('the marker rules refuse what does not need a cluster or a registry', () => {
    expect(needs('needs a cluster', 'kubectl get pods')).toBe(true);
    expect(needs('needs a cluster', 'helm upgrade istiod istio/istiod')).toBe(true);
    expect(needs('needs a cluster', 'istio-iptables -n')).toBe(false);
    expect(needs('needs a cluster', 'ip netns add demo')).toBe(false);
    expect(needs('needs a registry', 'docker build -f container/Dockerfile .')).toBe(true);
    expect(needs('needs a registry', 'npm install istio-iptables-ts')).toBe(true);
    expect(needs('needs a registry', 'npm run -s image:files -- registry.example.com/x:1.0.0 > a.txt')).toBe(true);
    expect(needs('needs a registry', 'npm run -s image:files -- localhost/x:latest > a.txt')).toBe(false);
    expect(needs('needs a registry', 'istio-iptables --dry-run')).toBe(false);
    expect(() => markerOf({ page: 'x.md', line: 1, lang: 'sh', body: ['# needs a miracle', 'ls'] })).toThrow(/unknown marker/);
  });

  it('YAML and JSON blocks parse', () => {
    for (const b of blocks.filter((x) => x.lang === 'yaml')) expect(() => parseYaml(b.body.join('\n')), where(b)).not.toThrow();
    for (const b of blocks.filter((x) => x.lang === 'json')) expect(() => JSON.parse(b.body.join('\n')) as unknown, where(b)).not.toThrow();
  });
});

describe('a page\'s output as the test compares it', () => {
  it.each([
    [['a', 'b'], 'a\nb\n', true],
    [['a', 'b'], 'a\nb  \n\n', true],
    [['a', 'b'], 'a\nc\n', false],
    [['a', '...', 'd'], 'a\nb\nc\nd\n', true],
    [['a', '...', 'd'], 'a\nd\n', true],
    [['a', '...', 'd'], 'a\nb\nc\n', false],
    [['engine: ...'], 'engine: QuickJS 2025-04-26\n', true],
    [['engine: ...'], 'engine: x\nmore\n', false],
    [['x...z'], 'x-y-z\n', true],
    [['x.z'], 'xyz\n', false],
    [[], '', true],
    [[], 'something\n', false],
  ])('%j against %j: %s', (expected, actual, ok) => {
    expect(matchesShown(expected, actual)).toBe(ok);
  });
});

describe('links', () => {
  it('every relative link and image resolves to a file, and every anchor to a heading', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const { line, target } of links(readPage(page))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const [path = '', anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? page : normalize(join(dirname(page), path));
        if (file.startsWith('..') || !existsSync(join(ROOT, file))) {
          broken.push(`${page}:${line}: ${target} (no ${file})`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!file.endsWith('.md') || statSync(join(ROOT, file)).isDirectory()) broken.push(`${page}:${line}: ${target} (an anchor into a file that is not a page)`);
        else if (!headingAnchors(readFileSync(join(ROOT, file), 'utf8')).has(anchor)) broken.push(`${page}:${line}: ${target} (no heading #${anchor} in ${file})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('external links are well-formed https URLs (listed here; not fetched: no network)', () => {
    const external = pages.flatMap((page) => links(readPage(page)).filter((l) => /^[a-z][a-z0-9+.-]*:/i.test(l.target)).map((l) => ({ page, ...l })));
    for (const { page, line, target } of external) {
      const at = `${page}:${line}: ${target}`;
      expect(target, at).toMatch(/^https:\/\//);
      const url = new URL(target);
      expect(url.hostname, at).toMatch(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/);
      expect(target, at).not.toMatch(/[.,;:)]$/);
    }
  });

  it('GitHub\'s anchors, as computed here', () => {
    expect([...headingAnchors('# A b\n## `--dry-run --explain`\n## trace says why\n## A b\n```sh\n# not a heading\n```\n')]).toEqual(['a-b', '--dry-run---explain', 'trace-says-why', 'a-b-1']);
  });
});

describe('paths written in code', () => {
  it('every repository path a page names in code exists (build output aside)', () => {
    const missing: string[] = [];
    for (const page of pages) {
      for (const { line, code } of inlineCode(readPage(page))) {
        for (const word of code.split(/[\s,()]+/)) {
          const m = /^((?:src|test|scripts|native|golden|bench|container|docs|api|bin)\/[A-Za-z0-9_./-]*[A-Za-z0-9_/])(?::\d+)?$/.exec(word);
          if (!m || /\.\.\.|\*|<|>/.test(word)) continue;
          if (!existsSync(join(ROOT, m[1] as string)) && !existsSync(join(ROOT, dirname(page), m[1] as string))) missing.push(`${page}:${line}: ${m[1]}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
