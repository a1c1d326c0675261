// Bundles the QuickJS entrypoint's scripts with esbuild (scripts/build-entrypoint.mjs compiles
// them to bytecode without debug information, a third less to read at start-up):
//
//   prelude  runs first (src/platform/quickjs/prelude.ts), wrapped so its names stay its own;
//            it publishes its modules (SCRIPT_OF below), which the others use
//   app      the CLI (src/entrypoint-quickjs.ts) as a plain global script: its functions then
//            need no closure over a wrapper's scope, which QuickJS builds for each of them at
//            start-up (~10% fewer instructions per run)
//   extra    what only some runs need (SCRIPT_OF below: the careful path, the dry-run and nft
//            renderers, native nftables, diff's readers, the validation probe)
//   parser   yargs and our definition of the command line: --help and errors only
//   trace    the trace command
//
// The last three are read only when first imported. Node built-ins map to the runtime's
// versions, and the platform (src/platform/platform.ts: what differs between the runtimes) to the
// runtime's: src/platform/quickjs/platform.ts in place of src/platform/node.ts, both held to the
// Platform interface by the type checker, and to the same exports here (the build fails otherwise).
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
import { buildInfoModule } from './build-info.mjs';

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
/**
 * The modules replaced by the runtime's (by resolved path), each pair held to one contract by the
 * type checker, and checkImplementations makes sure the two export the same names, so that
 * nothing is swapped without a contract:
 *   the platform      a `platform` typed against the Platform interface
 *   the option check  a `checkOptions` of type CheckOptions: zod under Node, the same checks
 *                     called directly here (config/check.ts says what that saves)
 *   the door's loader a `loadDoor` of type LoadDoor: import() under Node, what the program has
 *                     already here (api/door.ts says why)
 */
const IMPLEMENTATIONS = {
  [join(src, 'platform', 'node.ts')]: q('platform.ts'),
  [join(src, 'config', 'check.ts')]: q('check.ts'),
  [join(src, 'api', 'door.ts')]: q('door.ts'),
};
/**
 * Modules imported only for what they do when evaluated (the process global; the prelude, which
 * its script's entry imports by path): package.json's "sideEffects": false, true of the library,
 * would otherwise let esbuild drop them.
 */
const SIDE_EFFECTS = new Set([q('process.ts'), q('prelude.ts')]);
/**
 * The split, declared once, by module (paths under src/, after IMPLEMENTATIONS): the script each module
 * belongs to when it is not the app's. The prelude's modules are published as plain objects (a
 * bundler's namespace object defines a getter and a setter per export, which cost the
 * interpreter ~50 us at every start-up) and the other scripts use those instances (one error
 * class each, one option table). A lazy script's modules are imported dynamically, and the
 * script is read at the first such import.
 */
const SCRIPT_OF = {
  'errors.ts': 'prelude',
  'config/options.ts': 'prelude',
  'args.ts': 'prelude',
  'apply/careful.ts': 'extra',
  'render/dryrun.ts': 'extra',
  'apply/nft.ts': 'extra',
  'apply/diff.ts': 'extra',
  // The kernel through commands: a library caller's runner (the entrypoint's own is netlink).
  'apply/command-kernel.ts': 'extra',
  'render/diff.ts': 'extra',
  'platform/quickjs/validate.ts': 'extra',
  'parser.ts': 'parser',
  'trace/index.ts': 'trace',
  // Pictures (--output svg|mermaid) ride with trace: read only when asked for, never on a dry run.
  'render/picture/index.ts': 'trace',
};
export const LAZY_SCRIPTS = ['extra', 'parser', 'trace'];
/** The script a module (by absolute path) belongs to; undefined: the app's. */
const scriptOf = (path) => (path.startsWith(`${src}/`) ? SCRIPT_OF[path.slice(src.length + 1)] : undefined);
const modulesOf = (script) => Object.keys(SCRIPT_OF).filter((m) => SCRIPT_OF[m] === script);
/** The global every script's modules are published in, by path under src/. */
const MODULES_GLOBAL = '__istioIptablesModules';

const tsPath = (importer, spec) => join(dirname(importer), spec).replace(/\.js$/, '.ts');

/** A module's export names (esbuild's metafile; type-only exports are not among them). */
async function exportsOf(path) {
  const r = await esbuild.build({ entryPoints: [path], bundle: false, write: false, metafile: true, format: 'esm', outdir: '/nonexistent', logLevel: 'silent' });
  return Object.values(r.metafile.outputs)[0].exports;
}

/** Where a relative import of ours resolves: the runtime's module for a replaced one. */
function resolveOurs(args) {
  if (!args.path.startsWith('.') || !args.importer.startsWith(src)) return undefined;
  const resolved = tsPath(args.importer, args.path);
  return IMPLEMENTATIONS[resolved] ?? resolved;
}

/** Built-ins, the runtime's platform, yargs's platform; the build's facts (buildInfo: a module's text) for --version. */
const hostModules = (buildInfo) => ({
  name: 'quickjs-host',
  setup(build) {
    build.onLoad({ filter: /[\\/]build-info\.ts$/ }, (args) => (args.path === join(src, 'build-info.ts') ? { contents: buildInfo, loader: 'js' } : undefined));
    build.onResolve({ filter: /.*/ }, (args) => {
      if (MODULES[args.path] !== undefined) return { path: MODULES[args.path] };
      const resolved = SIDE_EFFECTS.has(args.path) ? args.path : resolveOurs(args);
      if (resolved === undefined) return undefined;
      if (SIDE_EFFECTS.has(resolved)) return { path: resolved, sideEffects: true };
      return resolved === tsPath(args.importer, args.path) ? undefined : { path: resolved };
    });
  },
});

/**
 * In a script, a module of another script is a stub whose exports are that module's, taken from
 * where its script publishes it: the prelude's are there from the start; a lazy script is read
 * by the runtime on the stub's first evaluation (esbuild evaluates a module reached only by
 * import() when that import() runs).
 */
const otherScripts = (own) => ({
  name: 'other-scripts',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      const resolved = resolveOurs(args);
      const script = resolved === undefined ? undefined : scriptOf(resolved);
      if (script === undefined || script === own) return undefined;
      if (script !== 'prelude' && args.kind !== 'dynamic-import') throw new Error(`${args.importer} imports ${args.path} statically; it belongs to the ${script} script`);
      return { path: resolved, namespace: 'stub', pluginData: script };
    });
    build.onLoad({ filter: /.*/, namespace: 'stub' }, async ({ path, pluginData }) => {
      const key = JSON.stringify(path.slice(src.length + 1));
      const load = pluginData === 'prelude' ? `const m=globalThis.${MODULES_GLOBAL}[${key}];` : `const l=globalThis.${MODULES_GLOBAL};const m=l[${key}]??(__host.load(${JSON.stringify(pluginData)}),l[${key}]);`;
      return { contents: [load, ...(await exportsOf(path)).map((n) => `export const ${n}=m.${n};`)].join('\n'), loader: 'js' };
    });
  },
});

/**
 * A script's entry: its modules published by path (the prelude's as plain objects of their
 * exports, a lazy script's as namespaces), then, for the prelude, the prelude itself.
 */
const scriptEntry = (script, main) => ({
  name: 'script-entry',
  setup(build) {
    build.onResolve({ filter: /^script-entry$/ }, () => ({ path: script, namespace: 'script-entry' }));
    build.onLoad({ filter: /.*/, namespace: 'script-entry' }, async () => {
      const modules = modulesOf(script);
      const lines = [];
      const published = [];
      for (const [i, m] of modules.entries()) {
        if (script === 'prelude') {
          const names = await exportsOf(join(src, m));
          lines.push(`import {${names.map((n) => `${n} as m${i}_${n}`).join(',')}} from ${JSON.stringify(join(src, m))};`);
          published.push(`${JSON.stringify(m)}:{${names.map((n) => `${n}:m${i}_${n}`).join(',')}}`);
        } else {
          lines.push(`import * as m${i} from ${JSON.stringify(join(src, m))};`);
          published.push(`${JSON.stringify(m)}:m${i}`);
        }
      }
      lines.push(`Object.assign(globalThis.${MODULES_GLOBAL}??={},{${published.join(',')}});`);
      // The prelude's own code (the app runs after the whole prelude script, modules published).
      if (main !== undefined) lines.unshift(`import ${JSON.stringify(main)};`);
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

/** Fails unless each replaced module and its replacement export the same names. */
async function checkImplementations() {
  for (const [node, runtime] of Object.entries(IMPLEMENTATIONS)) {
    const [a, b] = await Promise.all([exportsOf(node), exportsOf(runtime)]);
    const differ = [...a.filter((n) => !b.includes(n)), ...b.filter((n) => !a.includes(n))];
    if (differ.length > 0) throw new Error(`${runtime.slice(src.length + 1)} replaces ${node.slice(src.length + 1)} in the entrypoint, but their exports differ: ${differ.join(', ')}`);
  }
}

/**
 * The istio-cni plugin's own two scripts (src/entrypoint-cni.ts), for its executable: a prelude
 * that only publishes the prelude's modules (it reads no flags and starts nothing), and its
 * program. It shares the lazy scripts (extra, parser, trace) with the entrypoint: they find the
 * same modules published under the same names. `facts` as bundle()'s.
 */
export async function bundleCni(outDir, facts = {}) {
  const host = hostModules(buildInfoModule(facts));
  await Promise.all([
    bundleOne(outDir, 'cni-prelude', 'script-entry', 'iife', [scriptEntry('prelude'), otherScripts('prelude'), host]),
    bundleOne(outDir, 'cni-app', join(src, 'entrypoint-cni.ts'), 'esm', [otherScripts('app'), host]),
  ]);
  return ['cni-prelude', 'cni-app'];
}

/**
 * Writes each script to outDir/<name>.js; returns the names, in the runtime's order. `facts`:
 * what --version says besides the checkout's facts (the engine).
 */
export async function bundle(outDir, facts = {}) {
  await checkImplementations();
  const host = hostModules(buildInfoModule(facts));
  await Promise.all([
    bundleOne(outDir, 'prelude', 'script-entry', 'iife', [scriptEntry('prelude', q('prelude.ts')), otherScripts('prelude'), host]),
    bundleOne(outDir, 'app', join(src, 'entrypoint-quickjs.ts'), 'esm', [otherScripts('app'), host]),
    ...LAZY_SCRIPTS.map((s) => bundleOne(outDir, s, 'script-entry', 'iife', [scriptEntry(s), otherScripts(s), host])),
  ]);
  return ['prelude', 'app', ...LAZY_SCRIPTS];
}
