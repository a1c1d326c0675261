// Bundles the QuickJS entrypoint's three scripts (run with Bun: `bun scripts/bundle-quickjs.ts
// <out-dir>`), each minified and marked "use strip" (QuickJS then keeps no debug information:
// a third of the bytecode to read at start-up; errors still carry their messages):
//
//   prelude.js  runs first (src/platform/quickjs/prelude.ts), wrapped so its names stay its own;
//               it publishes the modules it loaded (SHARED_MODULES), which the others use
//   app.js      the CLI (src/entrypoint-quickjs.ts) as a plain global script: its functions then
//               need no closure over a wrapper's scope, which QuickJS builds for each of them at
//               start-up (~10% fewer instructions per run)
//   extra.js    what only some runs need (LAZY below: the careful path, dry-run and nft
//               renderers, native nftables, diff's readers), read only when first called
//
// Node built-ins map to the host's versions, apply/runner.ts to the runtime's runner, and what the
// entrypoint hands to the full CLI (yargs, the validation probe, trace) is left out.
import { join } from 'node:path';
import type { BunPlugin } from 'bun';
import { SHARED_GLOBAL } from '../src/platform/quickjs/shared.ts';

const src = join(import.meta.dir, '..', 'src');
const q = (f: string) => join(src, 'platform', 'quickjs', f);
const [outDir] = process.argv.slice(2);
if (!outDir) throw new Error('usage: bun scripts/bundle-quickjs.ts <out-dir>');

const MODULES: Record<string, string> = {
  'node:fs': q('fs.ts'),
  'node:os': q('os.ts'),
  'node:fs/promises': q('unavailable.ts'),
};
const LOCAL: Record<string, string> = {
  [`${join(src, 'args.ts')}|./parser.js`]: q('parser.ts'),
  [`${join(src, 'cli.ts')}|./apply/validate.js`]: q('unavailable.ts'),
  [`${join(src, 'cli.ts')}|./trace/index.js`]: q('unavailable.ts'),
};
/** Dynamic imports whose modules go to extra.js (importer|specifier -> module). */
const LAZY: Record<string, string> = {
  [`${join(src, 'apply/apply.ts')}|./careful.js`]: join(src, 'apply/careful.ts'),
  [`${join(src, 'cli.ts')}|./render/dryrun.js`]: join(src, 'render/dryrun.ts'),
  [`${join(src, 'cli.ts')}|./apply/nft.js`]: join(src, 'apply/nft.ts'),
  [`${join(src, 'cli.ts')}|./apply/detect.js`]: join(src, 'apply/detect.ts'),
  [`${join(src, 'cli.ts')}|./apply/state.js`]: join(src, 'apply/state.ts'),
};
/** Modules the prelude loads and publishes (src/platform/quickjs/shared.ts): the others use its instances. */
const SHARED_MODULES: Record<string, string> = {
  [join(src, 'errors.ts')]: 'errors',
  [join(src, 'config/options.ts')]: 'options',
  [join(src, 'args.ts')]: 'args',
};
const EXTRA = '__istioIptablesExtra';

const transpiler = new Bun.Transpiler({ loader: 'ts' });
const exportsOf = async (path: string): Promise<string[]> => transpiler.scan(await Bun.file(path).text()).exports;

const hostModules: BunPlugin = {
  name: 'quickjs-host',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const path = MODULES[args.path] ?? LOCAL[`${args.importer}|${args.path}`];
      return path === undefined ? undefined : { path };
    });
  },
};

/** In app.js: each lazy module is a stub whose functions load extra.js on first call. */
const lazyStubs: BunPlugin = {
  name: 'lazy-stubs',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const real = LAZY[`${args.importer}|${args.path}`];
      return real === undefined ? undefined : { path: real, namespace: 'lazy' };
    });
    build.onLoad({ filter: /.*/, namespace: 'lazy' }, async ({ path }) => {
      const key = JSON.stringify(path.slice(src.length));
      const load = `const m=()=>(globalThis.${EXTRA}??(__host.load("extra"),globalThis.${EXTRA}))[${key}];`;
      const fns = (await exportsOf(path)).map((n) => `export function ${n}(...a){return m().${n}(...a)}`);
      return { contents: [load, ...fns].join('\n'), loader: 'js' };
    });
  },
};

/** apply/runner.ts is replaced by the runtime's (src/platform/quickjs/runner.ts). */
const RUNNER = join(src, 'apply/runner.ts');
const hostRunner: BunPlugin = {
  name: 'host-runner',
  setup(build) {
    build.onResolve({ filter: /runner\.js$/ }, (args) => {
      const resolved = join(args.importer, '..', args.path).replace(/\.js$/, '.ts');
      return resolved === RUNNER ? { path: q('runner.ts') } : undefined;
    });
  },
};

/** In app.js and extra.js: the prelude's instances of the shared modules (one error class each, one option table). */
const sharedModules: BunPlugin = {
  name: 'shared-modules',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      const resolved = join(args.importer, '..', args.path).replace(/\.js$/, '.ts');
      return SHARED_MODULES[resolved] === undefined ? undefined : { path: resolved, namespace: 'shared' };
    });
    build.onLoad({ filter: /.*/, namespace: 'shared' }, async ({ path }) => {
      const names = await exportsOf(path);
      const key = SHARED_MODULES[path];
      return { contents: `const s=globalThis.${SHARED_GLOBAL}.${key};\n${names.map((n) => `export const ${n}=s.${n};`).join('\n')}`, loader: 'js' };
    });
  },
};

/** extra.js's entry: the lazy modules, published for the stubs. */
const extraEntry: BunPlugin = {
  name: 'extra-entry',
  setup(build) {
    build.onResolve({ filter: /^extra-entry$/ }, () => ({ path: 'extra-entry', namespace: 'extra' }));
    build.onLoad({ filter: /.*/, namespace: 'extra' }, () => {
      const modules = [...new Set(Object.values(LAZY))];
      const lines = modules.map((m, i) => `import * as m${i} from ${JSON.stringify(m)};`);
      lines.push(`globalThis.${EXTRA}={${modules.map((m, i) => `${JSON.stringify(m.slice(src.length))}:m${i}`).join(',')}};`);
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

async function bundle(name: string, entry: string, format: 'iife' | 'esm', plugins: BunPlugin[]): Promise<void> {
  const result = await Bun.build({ entrypoints: [entry], target: 'browser', format, minify: true, plugins });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error(`bundling ${name} failed`);
  }
  const code = await result.outputs[0]!.text();
  // The runtime leaves these globals out (native/host.c); using one would fail only when reached.
  const missing = /\b(Date|Proxy|ArrayBuffer|SharedArrayBuffer|DataView|(?:Ui|I)nt(?:8|16|32)Array|Uint8ClampedArray|Float(?:32|64)Array|Big(?:Ui|I)nt64Array|TextEncoder|TextDecoder|Atomics|WeakRef)\b/.exec(code);
  if (missing) throw new Error(`${name}: uses ${missing[1]}, which the entrypoint's runtime does not provide (native/host.c)`);
  // Library calls newer than the engine (QuickJS 2021-03-27).
  const newer = /\b(Object\.hasOwn)\b|(\.at)\(/.exec(code);
  if (newer) throw new Error(`${name}: uses ${newer[1] ?? newer[2]}, which the entrypoint's engine (QuickJS 2021-03-27) predates`);
  // An ES module bundle of an entry without exports is a plain script.
  if (format === 'esm' && /^(?:import|export)\b|\bexport\s*\{/m.test(code)) throw new Error(`${name}: the bundle still imports or exports; it cannot run as a script`);
  await Bun.write(join(outDir, `${name}.js`), `"use strip";\n${code}`);
}

await Promise.all([
  bundle('prelude', q('prelude.ts'), 'iife', [hostRunner, hostModules]),
  bundle('app', join(src, 'entrypoint-quickjs.ts'), 'esm', [lazyStubs, sharedModules, hostRunner, hostModules]),
  bundle('extra', 'extra-entry', 'iife', [extraEntry, sharedModules, hostRunner, hostModules]),
]);
