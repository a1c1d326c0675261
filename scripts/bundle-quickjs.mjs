// Bundles the QuickJS entrypoint's scripts with esbuild (scripts/build-entrypoint.mjs compiles
// them to bytecode without debug information, a third less to read at start-up):
//
//   prelude  runs first (src/platform/quickjs/prelude.ts), wrapped so its names stay its own;
//            it publishes the modules it loaded (SHARED_MODULES), which the others use
//   app      the CLI (src/entrypoint-quickjs.ts) as a plain global script: its functions then
//            need no closure over a wrapper's scope, which QuickJS builds for each of them at
//            start-up (~10% fewer instructions per run)
//   extra    what only some runs need (LAZY below: the careful path, the dry-run and nft
//            renderers, native nftables, diff's readers, the validation probe)
//   parser   yargs and our definition of the command line: --help and errors only
//   trace    the trace command
//
// The last three are read only when first imported. Node built-ins map to the runtime's
// versions, apply/runner.ts and apply/validate.ts to the runtime's (src/platform/quickjs/).
//
// Why esbuild: the job is a bundler's (one script per part, modules swapped and split by
// importer, tree-shaken and minified), which tsc does not do; esbuild's resolve/load plugins
// express each rule below in a few lines, it runs under Node, and it comes from the npm
// registry pinned (its binary is the @esbuild/linux-x64 package, with the lockfile's integrity).
import { join, dirname } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const q = (f) => join(src, 'platform', 'quickjs', f);
const require = createRequire(import.meta.url);
const yargsDir = dirname(require.resolve('yargs/package.json'));
/** A package's folder as yargs finds it (its own node_modules first): for files its exports leave out. */
const packageDir = (name) => [join(yargsDir, 'node_modules', name), join(root, 'node_modules', name)].find((d) => existsSync(d));

/** Modules replaced everywhere (by specifier, whoever imports them). */
const MODULES = {
  'node:fs': q('fs.ts'),
  'node:os': q('os.ts'),
  'node:fs/promises': q('fs.ts'),
  // yargs on the runtime: its factory with a platform of ours (src/platform/quickjs/yargs.ts).
  yargs: q('yargs.ts'),
  'yargs-factory': join(yargsDir, 'build', 'lib', 'yargs-factory.js'),
  'yargs-process-argv': join(yargsDir, 'build', 'lib', 'utils', 'process-argv.js'),
  'yargs-locale-en': join(yargsDir, 'locales', 'en.json'),
  'cliui/build/lib/index.js': join(packageDir('cliui'), 'build', 'lib', 'index.js'),
  'yargs-parser/browser.js': join(packageDir('yargs-parser'), 'browser.js'),
  'string-width': q('string-width.ts'),
};
/** Our modules replaced by the runtime's (by resolved path). */
const REPLACED = {
  [join(src, 'apply', 'runner.ts')]: q('runner.ts'),
  [join(src, 'apply', 'validate.ts')]: q('validate.ts'),
};
/** Modules imported only for what they do when evaluated. */
const SIDE_EFFECTS = new Set([q('process.ts')]);
/** Dynamic imports whose modules go to a script read on first import (importer|specifier -> [module, script]). */
const LAZY = {
  [`${join(src, 'apply/apply.ts')}|./careful.js`]: [join(src, 'apply/careful.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./render/dryrun.js`]: [join(src, 'render/dryrun.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./apply/nft.js`]: [join(src, 'apply/nft.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./apply/diff.js`]: [join(src, 'apply/diff.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./render/diff.js`]: [join(src, 'render/diff.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./apply/validate.js`]: [q('validate.ts'), 'extra'],
  [`${join(src, 'cli.ts')}|./trace/index.js`]: [join(src, 'trace/index.ts'), 'trace'],
  [`${join(src, 'args.ts')}|./parser.js`]: [join(src, 'parser.ts'), 'parser'],
};
export const LAZY_SCRIPTS = ['extra', 'parser', 'trace'];
/** Modules the prelude loads and publishes (src/platform/quickjs/shared.ts): the others use its instances. */
const SHARED_MODULES = {
  [join(src, 'errors.ts')]: 'errors',
  [join(src, 'config/options.ts')]: 'options',
  [join(src, 'args.ts')]: 'args',
};
/** The global the scripts meet at: src/platform/quickjs/shared.ts's SHARED_GLOBAL, read from it (one definition). */
const SHARED_GLOBAL = /export const SHARED_GLOBAL = '(\w+)'/.exec(readFileSync(q('shared.ts'), 'utf8'))?.[1];
if (SHARED_GLOBAL === undefined) throw new Error('src/platform/quickjs/shared.ts no longer defines SHARED_GLOBAL as a string');
const LAZY_GLOBAL = '__istioIptablesLazy';

const tsPath = (importer, spec) => join(dirname(importer), spec).replace(/\.js$/, '.ts');

/** A module's export names (esbuild's metafile; type-only exports are not among them). */
async function exportsOf(path) {
  const r = await esbuild.build({ entryPoints: [path], bundle: false, write: false, metafile: true, format: 'esm', outdir: '/nonexistent', logLevel: 'silent' });
  return Object.values(r.metafile.outputs)[0].exports;
}

/** Built-ins, the runtime's runner and probe, yargs's platform. */
const hostModules = {
  name: 'quickjs-host',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (MODULES[args.path] !== undefined) return { path: MODULES[args.path] };
      if (!args.path.startsWith('.') || !args.importer.startsWith(src)) return undefined;
      const resolved = tsPath(args.importer, args.path);
      // Imported for its effect (the process global): package.json's "sideEffects": false, true
      // of the library, would otherwise let esbuild drop it.
      if (SIDE_EFFECTS.has(resolved)) return { path: resolved, sideEffects: true };
      const replaced = REPLACED[resolved];
      return replaced === undefined ? undefined : { path: replaced };
    });
  },
};

/**
 * A lazy module is a stub whose exports are the real module's, taken from the script that holds
 * it, which the runtime reads on the stub's first evaluation: esbuild evaluates a module reached
 * only by import() when that import() runs.
 */
const lazyStubs = (own) => ({
  name: 'lazy-stubs',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const lazy = LAZY[`${args.importer}|${args.path}`];
      if (lazy === undefined || lazy[1] === own) return undefined;
      if (args.kind !== 'dynamic-import') throw new Error(`${args.importer} imports ${args.path} statically; it belongs to the ${lazy[1]} script`);
      return { path: lazy[0], namespace: 'lazy', pluginData: lazy[1] };
    });
    build.onLoad({ filter: /.*/, namespace: 'lazy' }, async ({ path, pluginData }) => {
      const key = JSON.stringify(path.slice(src.length));
      const load = `const l=globalThis.${LAZY_GLOBAL}??={};const m=l[${key}]??(__host.load(${JSON.stringify(pluginData)}),l[${key}]);`;
      return { contents: [load, ...(await exportsOf(path)).map((n) => `export const ${n}=m.${n};`)].join('\n'), loader: 'js' };
    });
  },
});

/** In every script but the prelude: the prelude's instances of the shared modules (one error class each, one option table). */
const sharedModules = {
  name: 'shared-modules',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      const resolved = tsPath(args.importer, args.path);
      return SHARED_MODULES[resolved] === undefined ? undefined : { path: resolved, namespace: 'shared' };
    });
    build.onLoad({ filter: /.*/, namespace: 'shared' }, async ({ path }) => {
      const names = await exportsOf(path);
      return { contents: `const s=globalThis.${SHARED_GLOBAL}.${SHARED_MODULES[path]};\n${names.map((n) => `export const ${n}=s.${n};`).join('\n')}`, loader: 'js' };
    });
  },
};

/** A lazy script's entry: its modules, published for the stubs. */
const lazyEntry = (script) => ({
  name: 'lazy-entry',
  setup(build) {
    build.onResolve({ filter: /^lazy-entry$/ }, () => ({ path: script, namespace: 'lazy-entry' }));
    build.onLoad({ filter: /.*/, namespace: 'lazy-entry' }, () => {
      const modules = [...new Set(Object.values(LAZY).filter(([, s]) => s === script).map(([m]) => m))];
      const lines = modules.map((m, i) => `import * as m${i} from ${JSON.stringify(m)};`);
      lines.push(`Object.assign(globalThis.${LAZY_GLOBAL}??={},{${modules.map((m, i) => `${JSON.stringify(m.slice(src.length))}:m${i}`).join(',')}});`);
      return { contents: lines.join('\n'), loader: 'js', resolveDir: src };
    });
  },
});

async function bundleOne(outDir, name, entry, format, plugins) {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format,
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins,
  });
  const code = result.outputFiles[0].text;
  await writeFile(join(outDir, `${name}.js`), code);
  // The runtime leaves these globals out (native/host.c); using one would fail only when reached.
  const globals = 'Date|Proxy|ArrayBuffer|SharedArrayBuffer|DataView|(?:Ui|I)nt(?:8|16|32)Array|Uint8ClampedArray|Float(?:32|64)Array|Big(?:Ui|I)nt64Array|TextEncoder|TextDecoder|Atomics|WeakRef|Intl';
  const used = new RegExp(`(?:\\bnew\\s+|\\binstanceof\\s+|\\btypeof\\s+)(${globals})\\b|(?<![.\\w$])(${globals})(?:\\.[A-Za-z_$]|\\()`);
  const found = used.exec(code);
  const missing = found && [found[0], found[1] ?? found[2]];
  if (missing) throw new Error(`${name}: uses ${missing[1]}, which the entrypoint's runtime does not provide (native/host.c)`);
  // An ES module bundle of an entry without exports is a plain script.
  if (format === 'esm' && /^(?:import|export)\b|\bexport\s*\{/m.test(code)) throw new Error(`${name}: the bundle still imports or exports; it cannot run as a script`);
}

/** Writes each script to outDir/<name>.js; returns the names, in the runtime's order. */
export async function bundle(outDir) {
  await Promise.all([
    bundleOne(outDir, 'prelude', q('prelude.ts'), 'iife', [lazyStubs('prelude'), hostModules]),
    bundleOne(outDir, 'app', join(src, 'entrypoint-quickjs.ts'), 'esm', [lazyStubs('app'), sharedModules, hostModules]),
    ...LAZY_SCRIPTS.map((s) => bundleOne(outDir, s, 'lazy-entry', 'iife', [lazyEntry(s), lazyStubs(s), sharedModules, hostModules])),
  ]);
  return ['prelude', 'app', ...LAZY_SCRIPTS];
}
