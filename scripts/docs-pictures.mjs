#!/usr/bin/env node
/**
 * The pictures and examples of docs/explain.md, made by the commands the page shows (npm run
 * docs:pictures), and checked to be current (test/docs-pictures.test.ts runs this with --check).
 *
 *   node scripts/docs-pictures.mjs           write docs/pictures/*.svg and the example outputs
 *   node scripts/docs-pictures.mjs --check   exit 1, naming each, when one differs from what is there
 *   --page FILE                              read that copy of the page instead
 *
 * The page holds two kinds of generated blocks, each a command and what it makes:
 *  - a ```sh block whose one line is `istio-iptables ... > docs/pictures/NAME.svg` (or .mmd): the
 *    command's output is that file;
 *  - a ```console block whose first line is `$ istio-iptables ...`: the lines after it are the
 *    command's output, stdout then stderr (test/kernel/docs.test.ts runs the same blocks through
 *    both programs in a shell, where the two streams interleave as a terminal shows them).
 * Each command is run through the CLI built in dist/ (npm run build), on a fixed host: pictures
 * and outputs do not depend on the machine that makes them.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PAGE = join(ROOT, 'docs', 'explain.md');
const { main } = await import(join(ROOT, 'dist', 'cli.js'));
const { fixedHost } = await import(join(ROOT, 'dist', 'config', 'host.js'));

/** A command line split into words as a POSIX shell would for our examples: spaces, '...' and "..." quotes. */
function words(line) {
  const out = [];
  const re = /'([^']*)'|"([^"\\]*)"|(\S+)/g;
  let m;
  let word = null;
  let last = 0;
  while ((m = re.exec(line)) !== null) {
    const adjacent = word !== null && m.index === last;
    const piece = m[1] ?? m[2] ?? m[3];
    if (adjacent) word += piece;
    else {
      if (word !== null) out.push(word);
      word = piece;
    }
    last = re.lastIndex;
  }
  if (word !== null) out.push(word);
  return out;
}

async function run(argv) {
  if (argv[0] !== 'istio-iptables') throw new Error(`not an istio-iptables command: ${argv.join(' ')}`);
  let stdout = '';
  let stderr = '';
  const code = await main(argv.slice(1), { env: {}, host: fixedHost(), io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) } });
  return { code, stdout, stderr };
}

const check = process.argv.includes('--check');
// --page FILE: check another copy of the page (the test of the check itself).
const pageAt = process.argv.indexOf('--page');
const pagePath = pageAt > 0 ? process.argv[pageAt + 1] : PAGE;
const page = readFileSync(pagePath, 'utf8');
const stale = [];
let next = page;

// Pictures: ```sh blocks with `istio-iptables ... > docs/pictures/NAME.ext`.
for (const m of page.matchAll(/```sh\n(istio-iptables [^\n]*?) > (docs\/pictures\/[a-z0-9-]+\.(?:svg|mmd))\n```/g)) {
  const [, command, file] = m;
  const r = await run(words(command));
  if (r.code !== 0) throw new Error(`${command} failed (${r.code}): ${r.stderr}`);
  const path = join(ROOT, file);
  const have = existsSync(path) ? readFileSync(path, 'utf8') : null;
  if (have !== r.stdout) {
    stale.push(file);
    if (!check) writeFileSync(path, r.stdout);
  }
}

// Examples: ```console blocks starting with `$ istio-iptables ...`.
for (const m of page.matchAll(/```console\n\$ (istio-iptables [^\n]*)\n([\s\S]*?)```/g)) {
  const [block, command, shown] = m;
  const r = await run(words(command));
  // As a terminal shows it: the result on stdout, then what the run said on stderr (an --expect
  // mismatch, a warning); the examples' commands log nothing before their result.
  const lines = (t) => (t.endsWith('\n') || t === '' ? t : `${t}\n`);
  const output = lines(r.stdout) + lines(r.stderr);
  if (shown !== output) {
    stale.push(`docs/explain.md: $ ${command}`);
    next = next.replace(block, `\`\`\`console\n$ ${command}\n${output}\`\`\``);
  }
}

if (check) {
  if (stale.length > 0) {
    process.stderr.write(`out of date (npm run docs:pictures, then review git diff docs/):\n${stale.map((s) => `  ${s}`).join('\n')}\n`);
    process.exit(1);
  }
} else {
  if (next !== page) writeFileSync(pagePath, next);
  process.stdout.write(stale.length === 0 ? 'docs/explain.md: all current\n' : `updated:\n${stale.map((s) => `  ${s}`).join('\n')}\n`);
}
