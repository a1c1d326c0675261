// Builds the init container's executable, dist/entrypoint/istio-iptables: our runtime
// (native/host.c, native/probe.c) and the QuickJS engine, with the whole CLI compiled to bytecode
// (scripts/bundle-quickjs.mjs cuts it into the scripts the runtime embeds). Static; starts in well
// under a millisecond. One executable: it runs everything the CLI does.
//
// The engine's C sources are Debian's `quickjs` source package 2025.04.26-1 (trixie), whose
// orig tarball is upstream QuickJS 2025-04-26 unchanged; apt-get downloads it (Debian's own
// deb-src index, signed) and this build checks its SHA-256 before using it. Debian's two patches
// (multiarch install paths, an armel link flag) touch only the Makefile, which we do not use.
// Then our own patches (native/engine-patches/*.patch, in name order; each says in its header
// what it fixes and why) are applied with patch(1), every hunk exact (no fuzz) or the build fails.
// Sources and objects are cached under node_modules/.cache, keyed by the tarball's hash, the
// patches' contents and the flags.
//
// dist/entrypoint-trace/istio-iptables is the same program with the runtime's step timing
// compiled in (stderr), for tests and measurements; the entrypoint has none, and no environment
// variable turns it on. --sanitize and --runtime-test build other test-only variants (below).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bundle, bundleCni } from './bundle-quickjs.mjs';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(root, 'node_modules', '.cache', 'istio-iptables-quickjs');
const outDir = join(root, 'dist', 'entrypoint');
const entry = join(outDir, 'istio-iptables');
const traceEntry = join(root, 'dist', 'entrypoint-trace', 'istio-iptables');
// The istio-cni plugin: the same runtime and lazy scripts, its own prelude and program (bundleCni).
const cniPlugin = join(root, 'dist', 'cni', 'istio-cni');
mkdirSync(outDir, { recursive: true });

/** The engine: Debian's source package, its orig tarball pinned by SHA-256 (from trixie's signed Sources index). */
export const ENGINE = {
  debianSource: 'quickjs',
  debianVersion: '2025.04.26-1',
  suite: 'trixie',
  tarball: 'quickjs_2025.04.26.orig.tar.xz',
  sha256: 'ec81da5b3249ed648dbc7df4a1654988910e66a118d9b71cb63534216efcfbbe',
  dir: 'quickjs-2025.04.26',
  version: '2025-04-26',
};

/**
 * The C library the shipped programs (the entrypoint, the CNI plugin) are linked with: musl,
 * through Debian's musl-tools (musl-gcc). A static glibc program spends ~0.25 ms before main() in
 * a VM, asking the CPU about itself (cpuid traps to the hypervisor: glibc's cache and feature
 * detection); musl does none of that (a static `int main(){}`: 0.60 ms against 0.35 ms, measured
 * with perf stat), and that time was on the init container's path before its first restore. The
 * sanitizer build stays on glibc, which AddressSanitizer needs; native/names.h keeps both
 * libraries' programs saying the same (glibc's error names and texts).
 */
const CC = 'musl-gcc';
/** Fails with what to install when musl-gcc is not there (before anything is compiled). */
async function requireMusl() {
  try {
    await run(CC, ['--version']);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    throw new Error(`${CC} not found: the entrypoint is linked with musl; install Debian's musl-tools (apt-get install musl-tools), as scripts/test-deps.sh does`);
  }
}

/** Linux's own headers (netlink, nsfs, capabilities), which musl-gcc's include path leaves out: searched after musl's. */
const KERNEL_HEADERS = ['/usr/include', `/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`].flatMap((d) => ['-idirafter', d]);

// -O3 rather than -O2: the interpreter's dispatch and property lookups ran ~3% faster on a sidecar
// apply (measured side by side).
const QJS_UNITS = ['quickjs', 'dtoa', 'libregexp', 'libunicode', 'cutils'];
// -ffile-prefix-map: the engine's asserts name their source file (__FILE__); written as quickjs/...
// and ./native/..., the executable is the same whichever directory it was built in.
const qjsFlags = (engine) => ['-O3', '-D_GNU_SOURCE', `-DCONFIG_VERSION="${ENGINE.version}"`, '-w', `-I${engine}`, `-ffile-prefix-map=${engine}=quickjs`];

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Our patches to the engine's sources, applied in name order after the tarball's hash is checked. */
const patchDir = join(root, 'native', 'engine-patches');
const PATCHES = readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((f) => join(patchDir, f));
/** The engine's sources as compiled: the pinned tarball and the patches' contents. */
const ENGINE_KEY = PATCHES.reduce((h, p) => h.update(`${basename(p)}\n`).update(readFileSync(p)), createHash('sha256').update(ENGINE.sha256)).digest('hex');

/**
 * The Debian archive this machine's apt is set up with (the entry of a plain release suite, not
 * -updates or -security), from /etc/apt/sources.list.d/*.sources (deb822) or sources.list: the
 * engine's source package comes from the same archive as every other package here.
 */
function debianArchive() {
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const entries = [];
  const parts = '/etc/apt/sources.list.d';
  const files = existsSync(parts) ? readdirSync(parts).filter((f) => f.endsWith('.sources')).sort().map((f) => join(parts, f)) : [];
  for (const file of files) {
    for (const stanza of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      const field = (name) => stanza.match(new RegExp(`^${name}:[ \\t]*(.+)$`, 'mi'))?.[1].trim();
      if (!/\bdeb\b/.test(field('Types') ?? '') || /^no$/i.test(field('Enabled') ?? '')) continue;
      for (const uri of (field('URIs') ?? '').split(/\s+/)) entries.push({ uri, suites: (field('Suites') ?? '').split(/\s+/), signedBy: field('Signed-By') });
    }
  }
  if (existsSync('/etc/apt/sources.list')) {
    for (const line of readFileSync('/etc/apt/sources.list', 'utf8').split('\n')) {
      const m = line.match(/^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/);
      if (m) entries.push({ uri: m[2], suites: [m[3]], signedBy: m[1]?.match(/signed-by=(\S+)/)?.[1] });
    }
  }
  const archive = entries.find((e) => /^https?:\/\//.test(e.uri) && e.suites.some((x) => /^[a-z]+$/.test(x)));
  if (archive === undefined) throw new Error('cannot find the Debian archive in apt\'s sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list): the engine\'s sources come from it');
  return { uri: archive.uri.replace(/\/+$/, ''), signedBy: archive.signedBy?.startsWith('/') ? archive.signedBy : keyring };
}

/** The engine's sources, downloaded once with apt-get (deb-src of Debian's suite) and checked against the pinned hash. */
async function engineSources() {
  const dl = join(cache, 'download');
  const tarball = join(dl, ENGINE.tarball);
  if (!existsSync(tarball)) {
    // A private apt configuration: only this suite's source index, nothing of the host's changed.
    // Each download in a directory of its own, the tarball renamed into place: builds started at
    // once (the test suite's runtime builds) do not wait on one another's apt lock.
    mkdirSync(dl, { recursive: true });
    const work = mkdtempSync(join(dl, 'apt-'));
    const apt = join(work, 'apt');
    mkdirSync(join(apt, 'lists', 'partial'), { recursive: true });
    mkdirSync(join(apt, 'cache', 'archives', 'partial'), { recursive: true });
    const archive = debianArchive();
    writeFileSync(join(apt, 'sources.list'), `deb-src [signed-by=${archive.signedBy}] ${archive.uri} ${ENGINE.suite} main\n`);
    const opts = [
      '-o', `Dir::Etc::SourceList=${join(apt, 'sources.list')}`,
      '-o', 'Dir::Etc::SourceParts=/dev/null',
      '-o', `Dir::State::Lists=${join(apt, 'lists')}`,
      '-o', `Dir::Cache=${join(apt, 'cache')}`,
      '-o', 'APT::Sandbox::User=root',
    ];
    try {
      await run('apt-get', [...opts, '-qq', 'update'], { cwd: work });
      await run('apt-get', [...opts, '-qq', 'source', '--download-only', `${ENGINE.debianSource}=${ENGINE.debianVersion}`], { cwd: work });
      renameSync(join(work, ENGINE.tarball), tarball);
    } catch (err) {
      throw new Error(`cannot download the QuickJS sources (Debian ${ENGINE.suite} source package ${ENGINE.debianSource} ${ENGINE.debianVersion}) with apt-get: ${err.stderr || err.message}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const got = sha256(tarball);
  if (got !== ENGINE.sha256) {
    rmSync(tarball);
    throw new Error(`${ENGINE.tarball}: SHA-256 ${got}, expected ${ENGINE.sha256}; refusing to build with it`);
  }
  const src = join(cache, `src-${ENGINE_KEY.slice(0, 16)}`);
  if (!existsSync(join(src, ENGINE.dir, 'quickjs.c'))) {
    // Unpacked and patched aside, then moved into place: a failed patch leaves no half-patched tree,
    // and builds started at once each unpack their own (the first rename wins; the tree is the same).
    const tmp = mkdtempSync(`${src}.tmp-`);
    await run('tar', ['-xJf', tarball, '-C', tmp]);
    for (const patch of PATCHES) {
      try {
        await run('patch', ['-p1', '--batch', '--forward', '--fuzz=0', '--no-backup-if-mismatch', '--quiet', '-d', join(tmp, ENGINE.dir), '-i', patch]);
      } catch (err) {
        rmSync(tmp, { recursive: true, force: true });
        throw new Error(`${patch} does not apply to ${ENGINE.tarball}: ${(err.stdout || '') + (err.stderr || err.message)}`);
      }
    }
    if (!existsSync(join(src, ENGINE.dir, 'quickjs.c'))) {
      rmSync(src, { recursive: true, force: true });
      try {
        renameSync(tmp, src);
      } catch (err) {
        if (!existsSync(join(src, ENGINE.dir, 'quickjs.c'))) throw err;
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  return join(src, ENGINE.dir);
}

// --sanitize: instead, dist/entrypoint-asan/istio-iptables, the same entrypoint built with
// AddressSanitizer and UBSan (dynamic, as ASan needs; host.c without its arena, so that every
// allocation is checked), for the tests (test/entrypoint-asan.test.ts).
const SANITIZE = process.argv.includes('--sanitize');
const SAN_FLAGS = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all', '-g', '-O1'];
const sanitizedFlags = (engine) => [...qjsFlags(engine).filter((f) => f !== '-O3'), ...SAN_FLAGS];

/** QuickJS's object files, compiled once per source/flags/compiler combination. */
async function engineObjects(engine, flags = qjsFlags(engine), cc = CC) {
  const hash = createHash('sha256').update(`${cc}\n`).update(flags.join(' ')).update(ENGINE_KEY);
  const dir = join(cache, hash.digest('hex').slice(0, 16));
  const objects = QJS_UNITS.map((u) => join(dir, `${u}.o`));
  if (objects.every((o) => existsSync(o))) return objects;
  mkdirSync(dir, { recursive: true });
  await Promise.all(
    QJS_UNITS.map(async (u) => {
      const tmp = join(dir, `${u}.o.tmp`);
      await run(cc, [...flags, '-c', join(engine, `${u}.c`), '-o', tmp]);
      renameSync(tmp, join(dir, `${u}.o`));
    }),
  );
  return objects;
}

/** The runtime's C (native/), the bytecode (bytecode.S in the cache, or asm) and the engine's objects linked into out. */
function linkRuntime(engine, objects, flags, out, asm = join(cache, 'app', 'bytecode.S'), more = [], cc = CC) {
  const native = ['host.c', 'probe.c', 'netlink.c', 'netns.c', ...more].map((f) => join(root, 'native', f));
  const warnings = ['-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-cast-function-type'];
  return run(cc, [...flags, ...warnings, ...(cc === CC ? KERNEL_HEADERS : []), `-I${engine}`, `-ffile-prefix-map=${engine}=quickjs`, `-ffile-prefix-map=${root}=.`, ...native, asm, ...objects, '-lm', '-lpthread', '-o', out]);
}

/** The scripts' bytecode (name -> .bin file) as read-only data of the executable, in an assembler file. */
function writeBytecodeAsm(file, bins) {
  const lines = ['  .section .rodata'];
  for (const [name, bin] of Object.entries(bins)) {
    lines.push(`  .global ${name}_bytecode`, `  .global ${name}_bytecode_end`, '  .balign 16', `${name}_bytecode:`, `  .incbin "${bin}"`, `${name}_bytecode_end:`);
  }
  lines.push('  .section .note.GNU-stack,"",@progbits', '');
  writeFileSync(file, lines.join('\n'));
}

async function buildEntrypoint() {
  await requireMusl();
  const work = join(cache, 'app');
  mkdirSync(work, { recursive: true });
  const engine = await engineSources();
  const facts = { engine: `QuickJS ${ENGINE.version} (compiled into the entrypoint)` };
  const [objects, scripts, cniScripts] = await Promise.all([engineObjects(engine), bundle(work, facts), bundleCni(work, facts)]);
  const compiler = join(work, 'compile');
  await run(CC, [...qjsFlags(engine), '-static', join(root, 'native', 'compile.c'), ...objects, '-lm', '-lpthread', '-o', compiler]);
  await Promise.all([...scripts, ...cniScripts].map((name) => run(compiler, [join(work, `${name}.js`), join(work, `${name}.bin`)])));
  // The bytecode goes into the executable as read-only data.
  const bins = Object.fromEntries(scripts.map((name) => [name, join(work, `${name}.bin`)]));
  writeBytecodeAsm(join(work, 'bytecode.S'), bins);
  writeBytecodeAsm(join(work, 'cni-bytecode.S'), { ...bins, prelude: join(work, 'cni-prelude.bin'), app: join(work, 'cni-app.bin') });
  // The entrypoint's link map (which members of musl's libc.a it holds: docs/security.md, checked
  // by test/engine.test.ts); it changes nothing in the executable.
  const map = (name) => [`-Wl,-Map=${join(work, `${name}.map`)}`];
  const link = (trace, out) => linkRuntime(engine, objects, ['-O3', ...(trace ? ['-DTRACE_RUNTIME'] : map('istio-iptables')), '-static', '-s'], out);
  // The entrypoint, and for tests and measurements the same with the runtime's step timing
  // compiled in (stderr), in a folder of its own: never shipped.
  mkdirSync(dirname(traceEntry), { recursive: true });
  mkdirSync(dirname(cniPlugin), { recursive: true });
  await Promise.all([
    link(false, entry),
    link(true, traceEntry),
    linkRuntime(engine, objects, ['-O3', '-DCNI_PLUGIN', ...map('istio-cni'), '-static', '-s'], cniPlugin, join(work, 'cni-bytecode.S'), ['cni.c']),
  ]);
}

/** The entrypoint under AddressSanitizer and UBSan, from the bytecode buildEntrypoint made. */
async function buildSanitized() {
  const dir = join(root, 'dist', 'entrypoint-asan');
  mkdirSync(dir, { recursive: true });
  const engine = await engineSources();
  const objects = await engineObjects(engine, sanitizedFlags(engine), 'gcc');
  const out = join(dir, 'istio-iptables');
  await linkRuntime(engine, objects, [...SAN_FLAGS, '-DHOST_NO_ARENA'], out, undefined, [], 'gcc');
  console.log(`built ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB)`);
}

/**
 * --runtime-test PROGRAM.js OUT: the runtime running PROGRAM (a plain script using __host) in
 * place of the CLI, with an empty prelude, for the runtime's own tests (test/runtime.test.ts) of
 * what no CLI input reaches: an unhandled rejection, a failing poll; and for the engine's
 * (test/engine.test.ts), with --sanitize under ASan and UBSan as the sanitized entrypoint is built.
 * Never shipped.
 */
async function buildRuntimeTest(program, out) {
  const work = join(cache, 'app');
  if (!existsSync(join(work, 'bytecode.S'))) await buildEntrypoint();
  const engine = await engineSources();
  const cc = SANITIZE ? 'gcc' : CC;
  const objects = await engineObjects(engine, SANITIZE ? sanitizedFlags(engine) : qjsFlags(engine), cc);
  const compiler = join(work, 'compile');
  writeFileSync(`${out}.prelude.js`, '');
  await Promise.all([run(compiler, [`${out}.prelude.js`, `${out}.prelude.bin`]), run(compiler, [program, `${out}.app.bin`])]);
  const scripts = { prelude: `${out}.prelude.bin`, app: `${out}.app.bin`, extra: join(work, 'extra.bin'), parser: join(work, 'parser.bin'), trace: join(work, 'trace.bin') };
  writeBytecodeAsm(`${out}.S`, scripts);
  await linkRuntime(engine, objects, SANITIZE ? [...SAN_FLAGS, '-DHOST_NO_ARENA'] : ['-O1', '-static'], out, `${out}.S`, [], cc);
}

const RUNTIME_TEST = process.argv.indexOf('--runtime-test');
if (RUNTIME_TEST > 0) {
  const [program, out] = process.argv.slice(RUNTIME_TEST + 1);
  if (program === undefined || out === undefined || program.startsWith('--') || out.startsWith('--')) throw new Error('usage: build-entrypoint.mjs [--sanitize] --runtime-test PROGRAM.js OUT');
  await buildRuntimeTest(program, out);
} else if (SANITIZE) {
  if (!existsSync(join(cache, 'app', 'bytecode.S'))) await buildEntrypoint();
  await buildSanitized();
} else {
  await buildEntrypoint();
  console.log(`built ${entry} (${(statSync(entry).size / 1e6).toFixed(1)} MB)`);
  console.log(`built ${cniPlugin} (${(statSync(cniPlugin).size / 1e6).toFixed(1)} MB)`);
}
