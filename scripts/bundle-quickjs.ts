// Bundles one entry into one script for the QuickJS runtime (run with Bun:
// `bun scripts/bundle-quickjs.ts <entry.ts> <out.js> [global|iife]`). The program is bundled as a
// plain global script ("global"): its functions then need no closure over a wrapper's scope, which
// QuickJS builds for each of them at start-up (~10% fewer instructions for a whole run). The
// prelude, which runs first in the same global scope, is wrapped ("iife") so names cannot clash. Node built-ins map to the host's versions, and what
// the entrypoint hands to the full CLI (yargs, the validation probe, trace, execa) is left out.
import { join } from 'node:path';

const src = join(import.meta.dir, '..', 'src');
const q = (f: string) => join(src, 'platform', 'quickjs', f);
const [entry, out, shape = 'global'] = process.argv.slice(2);
if (!entry || !out || (shape !== 'global' && shape !== 'iife')) throw new Error('usage: bun scripts/bundle-quickjs.ts <entry.ts> <out.js> [global|iife]');

const MODULES: Record<string, string> = {
  'node:fs': q('fs.ts'),
  'node:os': q('os.ts'),
  'node:child_process': q('unavailable.ts'),
  'node:fs/promises': q('unavailable.ts'),
  'node:net': q('unavailable.ts'),
  'node:crypto': q('unavailable.ts'),
  execa: q('unavailable.ts'),
};
const LOCAL: Record<string, string> = {
  [join(src, 'args.ts') + '|./parser.js']: q('parser.ts'),
  [join(src, 'cli.ts') + '|./apply/validate.js']: q('unavailable.ts'),
  [join(src, 'cli.ts') + '|./trace/index.js']: q('unavailable.ts'),
};

const result = await Bun.build({
  entrypoints: [entry],
  target: 'browser',
  // An ES module bundle of an entry without exports is a plain script.
  format: shape === 'iife' ? 'iife' : 'esm',
  minify: true,
  plugins: [
    {
      name: 'quickjs-host',
      setup(build) {
        build.onResolve({ filter: /.*/ }, (args) => {
          const path = MODULES[args.path] ?? LOCAL[`${args.importer}|${args.path}`];
          return path === undefined ? undefined : { path };
        });
      },
    },
  ],
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
// "use strip": QuickJS keeps no debug information (line tables, source) for this script: a third
// of the bytecode to read at start-up. Errors still carry their messages.
const code = await result.outputs[0]!.text();
if (shape === 'global' && /^(?:import|export)\b/m.test(code)) throw new Error(`${entry}: the bundle still imports or exports; it cannot run as a script`);
await Bun.write(out, `"use strip";\n${code}`);
