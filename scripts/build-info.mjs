// What --version says about a build (src/build-info.ts), recorded at build time from the checkout:
// the package's version, and the git commit with its date (UTC), "-dirty" when tracked files
// differ from it. The same checkout gives the same text: no clock, no host name.
//
//   node scripts/build-info.mjs dist/build-info.js   writes the module `npm run build` ships
//   node scripts/build-info.mjs --build              prints the build text alone (the image build's
//                                                    BUILD argument: its context has no .git)
//   buildInfoModule(extra)                            the module's text (the entrypoint's bundler)
//
// Outside a git checkout (the image's build stage) the build text is the BUILD_INFO_BUILD variable
// of the build's environment, which container/Dockerfile sets from its BUILD argument; the product
// reads no environment for it: the text is fixed in what the build writes.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const git = (...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TZ: 'UTC' } }).trim();

/** { version, build } of this checkout. */
export function buildInfo() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  let build;
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD');
    const date = git('show', '-s', '--date=format-local:%Y-%m-%d', '--format=%cd', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') === '' ? '' : '-dirty';
    build = `git ${commit}${dirty} (${date})`;
  } catch {
    build = process.env.BUILD_INFO_BUILD || 'unknown (not built from a git checkout)';
  }
  return { version, build };
}

/** The text of src/build-info.ts's replacement: BUILD_INFO with this checkout's facts, and `extra` (the engine). */
export function buildInfoModule(extra = {}) {
  return `export const BUILD_INFO = ${JSON.stringify({ ...buildInfo(), ...extra })};\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (out === undefined) throw new Error('usage: node scripts/build-info.mjs OUT.js | --build');
  if (out === '--build') process.stdout.write(`${buildInfo().build}\n`);
  else writeFileSync(out, buildInfoModule());
}
