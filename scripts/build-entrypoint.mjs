// Builds dist/entrypoint/istio-iptables: the CLI bundled (tree-shaken, minified) and compiled
// with the Bun runtime into one self-contained executable. Bun comes from the npm registry
// (@oven/bun-linux-x64, a devDependency), so nothing is downloaded at build time.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const bun = join(dirname(require.resolve('@oven/bun-linux-x64/package.json')), 'bin', 'bun');
const out = join(root, 'dist', 'entrypoint', 'istio-iptables');
mkdirSync(dirname(out), { recursive: true });
execFileSync(bun, ['build', '--compile', '--minify', '--bytecode', '--format=esm', '--splitting', '--target=bun-linux-x64', join(root, 'src', 'entrypoint.ts'), '--outfile', out], {
  stdio: ['ignore', 'inherit', 'inherit'],
  cwd: root,
});
console.log(`built ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB)`);
