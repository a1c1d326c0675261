// Builds the init container's two executables in dist/entrypoint/:
//   istio-iptables       the entrypoint: our QuickJS runtime (native/host.c) with the CLI's hot
//                        path compiled to bytecode; static, starts in well under a millisecond
//   istio-iptables-full  the whole CLI compiled with Bun (bun build --compile), which the
//                        entrypoint hands --help, unknown arguments, --run-validation and trace to
// Everything comes from the npm registry (Bun: @oven/bun-linux-x64; QuickJS's C sources:
// react-native-quickjs) and gcc; nothing is downloaded at build time. QuickJS's objects are
// cached under node_modules/.cache, keyed by their sources and flags.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const bun = join(dirname(require.resolve('@oven/bun-linux-x64/package.json')), 'bin', 'bun');
const engine = join(dirname(require.resolve('react-native-quickjs/package.json')), 'cpp', 'engine');
const outDir = join(root, 'dist', 'entrypoint');
const entry = join(outDir, 'istio-iptables');
const full = join(outDir, 'istio-iptables-full');
mkdirSync(outDir, { recursive: true });

// -O3 rather than -O2: the interpreter's dispatch and property lookups ran ~3% faster on a sidecar
// apply (measured side by side); profile-guided builds gained about as much again, not worth a
// training step in the build.
const QJS_FLAGS = ['-O3', '-D_GNU_SOURCE', '-DCONFIG_VERSION="2021-03-27"', '-DCONFIG_BIGNUM', '-w', `-I${engine}`];
const QJS_UNITS = ['quickjs', 'libregexp', 'libunicode', 'cutils', 'libbf'];

async function buildFull() {
  await run(bun, ['build', '--compile', '--minify', '--bytecode', '--format=esm', '--splitting', '--target=bun-linux-x64', join(root, 'src', 'entrypoint.ts'), '--outfile', full], { cwd: root });
}

// --sanitize: instead, dist/entrypoint-asan/istio-iptables, the same entrypoint built with
// AddressSanitizer and UBSan (dynamic, as ASan needs; host.c without its arena, so that every
// allocation is checked), for the tests (test/entrypoint-asan.test.ts).
const SANITIZE = process.argv.includes('--sanitize');
const SAN_FLAGS = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all', '-g', '-O1'];

/** QuickJS's object files, compiled once per source/flags combination. */
async function engineObjects(flags = QJS_FLAGS) {
  const hash = createHash('sha256').update(flags.join(' '));
  for (const f of readdirSync(engine).sort()) hash.update(f).update(readFileSync(join(engine, f)));
  const dir = join(root, 'node_modules', '.cache', 'istio-iptables-quickjs', hash.digest('hex').slice(0, 16));
  const objects = QJS_UNITS.map((u) => join(dir, `${u}.o`));
  if (objects.every((o) => existsSync(o))) return objects;
  mkdirSync(dir, { recursive: true });
  await Promise.all(
    QJS_UNITS.map(async (u) => {
      const tmp = join(dir, `${u}.o.tmp`);
      await run('gcc', [...flags, '-c', join(engine, `${u}.c`), '-o', tmp]);
      renameSync(tmp, join(dir, `${u}.o`));
    }),
  );
  return objects;
}

async function buildEntrypoint() {
  const work = join(root, 'node_modules', '.cache', 'istio-iptables-quickjs', 'app');
  mkdirSync(work, { recursive: true });
  // The three scripts (scripts/bundle-quickjs.ts): prelude, app, extra.
  const scripts = ['prelude', 'app', 'extra'];
  const [objects] = await Promise.all([engineObjects(), run(bun, [join(root, 'scripts', 'bundle-quickjs.ts'), work], { cwd: root })]);
  const compiler = join(work, 'compile');
  await run('gcc', [...QJS_FLAGS, join(root, 'native', 'compile.c'), ...objects, '-lm', '-lpthread', '-o', compiler]);
  await Promise.all(scripts.map((name) => run(compiler, [join(work, `${name}.js`), join(work, `${name}.bin`)])));
  // The bytecode goes into the executable as read-only data.
  const lines = ['  .section .rodata'];
  for (const name of scripts) {
    lines.push(`  .global ${name}_bytecode`, `  .global ${name}_bytecode_end`, '  .balign 16', `${name}_bytecode:`, `  .incbin "${join(work, `${name}.bin`)}"`, `${name}_bytecode_end:`);
  }
  lines.push('  .section .note.GNU-stack,"",@progbits', '');
  writeFileSync(join(work, 'bytecode.S'), lines.join('\n'));
  await run('gcc', [
    '-O3',
    '-Wall',
    '-Wextra',
    '-Wno-unused-parameter',
    '-Wno-cast-function-type',
    `-I${engine}`,
    join(root, 'native', 'host.c'),
    join(work, 'bytecode.S'),
    ...objects,
    '-lm',
    '-lpthread',
    '-static',
    '-s',
    '-o',
    entry,
  ]);
}

/** The entrypoint under AddressSanitizer and UBSan, from the bytecode buildEntrypoint made. */
async function buildSanitized() {
  const work = join(root, 'node_modules', '.cache', 'istio-iptables-quickjs', 'app');
  const dir = join(root, 'dist', 'entrypoint-asan');
  mkdirSync(dir, { recursive: true });
  const flags = [...QJS_FLAGS.filter((f) => f !== '-O3'), ...SAN_FLAGS];
  const objects = await engineObjects(flags);
  const out = join(dir, 'istio-iptables');
  await run('gcc', [...SAN_FLAGS, '-DHOST_NO_ARENA', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-cast-function-type', `-I${engine}`, join(root, 'native', 'host.c'), join(work, 'bytecode.S'), ...objects, '-lm', '-lpthread', '-o', out]);
  // It hands off to the full CLI next to it, as the entrypoint does.
  const link = join(dir, 'istio-iptables-full');
  if (!existsSync(link)) symlinkSync(join('..', 'entrypoint', 'istio-iptables-full'), link);
  console.log(`built ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB)`);
}

if (SANITIZE) {
  if (!existsSync(join(root, 'node_modules', '.cache', 'istio-iptables-quickjs', 'app', 'bytecode.S'))) await buildEntrypoint();
  await buildSanitized();
  process.exit(0);
}

await Promise.all([buildFull(), buildEntrypoint()]);
for (const f of [entry, full]) console.log(`built ${f} (${(statSync(f).size / 1e6).toFixed(1)} MB)`);
