// Bundles the node agent (bin/istio-cni-agent.js and what it imports, @kubernetes/client-node
// included, at the versions of the lockfile) into one ES module, for the agent's image
// (container/cni/Dockerfile): dist/agent-bundle/agent/istio-cni-agent.mjs, with the plugin beside
// it at dist/agent-bundle/cni/istio-cni (the agent's default --plugin, ../cni/istio-cni). One file
// instead of node_modules: the image carries no package manager tree, and the agent starts and
// runs smaller (bench/cni-agent-memory.bench.mjs, BENCH_AGENT=...).
// Usage: npm run build && npm run build:entrypoint && npm run build:agent [-- OUTDIR]
// Why esbuild: it is the bundler the entrypoint's build already uses (scripts/bundle-quickjs.mjs).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ?? join(root, 'dist', 'agent-bundle');
const plugin = join(root, 'dist', 'cni', 'istio-cni');
if (!existsSync(join(root, 'dist', 'agent', 'main.js'))) throw new Error('dist/agent/main.js missing: npm run build first');
if (!existsSync(plugin)) throw new Error('dist/cni/istio-cni missing: npm run build:entrypoint first');
mkdirSync(join(out, 'agent'), { recursive: true });
mkdirSync(join(out, 'cni'), { recursive: true });
await esbuild.build({
  entryPoints: [join(root, 'bin', 'istio-cni-agent.js')],
  outfile: join(out, 'agent', 'istio-cni-agent.mjs'),
  bundle: true,
  minify: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  legalComments: 'eof',
  // ws's optional native speed-ups: absent, as in a plain install.
  external: ['bufferutil', 'utf-8-validate'],
  // CommonJS packages inside an ES module bundle still call require().
  banner: { js: "import{createRequire as __agentRequire}from'node:module';const require=__agentRequire(import.meta.url);" },
  logLevel: 'warning',
});
copyFileSync(plugin, join(out, 'cni', 'istio-cni'));
console.log(`bundled ${join(out, 'agent', 'istio-cni-agent.mjs')} and ${join(out, 'cni', 'istio-cni')}`);
