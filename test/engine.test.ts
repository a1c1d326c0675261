import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';

/**
 * The engine as the entrypoint runs it, held to what docs/security.md says of each QuickJS CVE:
 *  - our patches (native/engine-patches/) do what they say, run through the runtime built with
 *    AddressSanitizer and UBSan (scripts/build-entrypoint.mjs --sanitize --runtime-test), their
 *    results compared with Node's;
 *  - the context the program runs in has exactly the globals it has (no eval, no Proxy, no typed
 *    arrays, ...), and the executable links no quickjs-libc;
 *  - what the bundled scripts call that a CVE needs: which regular expressions they compile at
 *    run time, what BigInt values are made from, which conversion callbacks they define.
 * A change to any of these fails here first, and the table is to be checked again.
 */

const ASAN = join(ROOT, 'dist/entrypoint-asan/istio-iptables');
/** The bundled scripts the entrypoint compiles to bytecode (scripts/bundle-quickjs.mjs writes them there). */
const SCRIPTS_DIR = join(ROOT, 'node_modules/.cache/istio-iptables-quickjs/app');
const SANITIZER_ENV = { ASAN_OPTIONS: 'halt_on_error=1:exitcode=99:detect_leaks=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=98' };
const REPORT = /AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

// BigInt values whose string forms CVE-2025-62493's function got wrong: every power of two to
// 2^130 and its neighbours (a zero top limb from 2^63 on, digits across limbs for radix 8 and
// 32), their negatives, and the nft set keys of IPv6 networks with the top bit set.
const powers = Array.from({ length: 131 }, (_, k) => 1n << BigInt(k));
const BIGINTS = [
  ...powers.flatMap((p) => [p - 1n, p, p + 1n]),
  ...powers.flatMap((p) => [-p + 1n, -p, -p - 1n]),
  0xfd000001n << 32n, // fd00:1::/64 >> 64
  0xfe80n >> 6n, // fe80::/10 >> 118
  0xffn, // ff00::/8 >> 120
  0x7en, // fc00::/7 >> 121
  (1n << 128n) - 1n,
];
const RADICES = Array.from({ length: 35 }, (_, i) => i + 2);
const STRINGS = ['', 'a', 'A\u030a', '\u00c5', '\ufb01', '\u1100\u1161\u11a8', '\u00e9t\u00e9', 'x'.repeat(300), '\ud800'];
const FORMS = ['NFC', 'NFD', 'NFKC', 'NFKD'] as const;

const PROGRAM = `
const bigints = [${BIGINTS.map((v) => `${v < 0n ? '-' : ''}0x${(v < 0n ? -v : v).toString(16)}n`).join(',')}];
const radices = ${JSON.stringify(RADICES)};
const strings = ${JSON.stringify(STRINGS)};
const forms = ${JSON.stringify(FORMS)};
const attempt = (f) => { try { return 'returned ' + String(f()); } catch (e) { return 'threw ' + e.name + ': ' + e.message; } };
const sections = {
  bigint: () => ({
    bigint: bigints.map((v) => radices.map((r) => v.toString(r))),
    template: bigints.map((v) => \`\${v}\`),
  }),
  normalize: () => ({
    normalize: strings.map((s) => [s.normalize(), ...forms.map((f) => s.normalize(f))]),
    localeCompare: strings.map((s) => strings.map((t) => s.localeCompare(t))),
  }),
  context: () => ({
    globals: Object.getOwnPropertyNames(globalThis).sort(),
    eval: attempt(() => eval('1 + 1')),
    functionConstructor: attempt(() => new Function('return 1')()),
    asyncFunctionConstructor: attempt(() => Object.getPrototypeOf(async function () {}).constructor('return 1')),
  }),
};
__host.write(1, JSON.stringify(sections[__host.argv[0]]()));
`;

const dir = mkdtempSync(join(tmpdir(), 'iit-engine-'));
const bin = join(dir, 'engine');
/** The same program on the engine as the entrypoint compiles it (-O3, no sanitizer). */
const optimized = join(dir, 'engine-optimized');
type Section = 'bigint' | 'normalize' | 'context';
const results = new Map<Section, { exitCode?: number | undefined; stdout: string; stderr: string }>();

beforeAll(async () => {
  writeFileSync(join(dir, 'engine.js'), PROGRAM);
  await Promise.all([
    execa('node', [join(ROOT, 'scripts/build-entrypoint.mjs'), '--sanitize', '--runtime-test', join(dir, 'engine.js'), bin], { timeout: 300_000 }),
    execa('node', [join(ROOT, 'scripts/build-entrypoint.mjs'), '--runtime-test', join(dir, 'engine.js'), optimized], { timeout: 300_000 }),
  ]);
  for (const section of ['bigint', 'normalize', 'context'] as const) {
    results.set(section, await execa(bin, [section], { reject: false, env: { PATH: process.env['PATH'] ?? '', ...SANITIZER_ENV }, extendEnv: false, timeout: 120_000 }));
  }
}, 420_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Out {
  bigint: { bigint: string[][]; template: string[] };
  normalize: { normalize: string[][]; localeCompare: number[][] };
  context: { globals: string[]; eval: string; functionConstructor: string; asyncFunctionConstructor: string };
}
/** A section's output, once its run is known clean: no sanitizer report, exit 0. */
function out<S extends Section>(section: S): Out[S] {
  const r = results.get(section);
  if (r === undefined) throw new Error(`${section} did not run`);
  expect(r.stderr).not.toMatch(REPORT);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Out[S];
}

describe('the engine under ASan and UBSan (the runtime with a program of its own)', () => {
  it('is a sanitizer build (a report would fail the runs below)', async () => {
    const nm = await execa('nm', [bin]);
    expect(nm.stdout).toMatch(/__asan_report_load8/);
    expect(nm.stdout).toMatch(/__ubsan_handle_/);
  });

  /** The strings Node writes for BIGINTS. */
  const asNode = (got: Out['bigint']): void => {
    expect(got.bigint).toHaveLength(BIGINTS.length);
    BIGINTS.forEach((v, i) => {
      expect(got.bigint[i], `${v}`).toEqual(RADICES.map((r) => v.toString(r)));
      expect(got.template[i]).toBe(`${v}`);
    });
  };

  it('BigInt to string, every radix 2..36, as Node writes it (CVE-2025-62493, native/engine-patches/0001)', () => {
    asNode(out('bigint'));
  });

  it('BigInt to string on the optimized engine, as shipped: as Node too (unpatched, it wrote a leading 0 from 2^63 on)', async () => {
    const r = await execa(optimized, ['bigint'], { reject: false, timeout: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    asNode(JSON.parse(r.stdout) as Out['bigint']);
  });

  it('String.prototype.normalize and localeCompare, the empty string included, as Node (native/engine-patches/0002)', () => {
    const got = out('normalize');
    expect(got.normalize).toEqual(STRINGS.map((s) => [s.normalize(), ...FORMS.map((f) => s.normalize(f))]));
    // QuickJS compares code points after NFC (no locale); Node's ICU collates. Signs agree on these.
    expect(got.localeCompare.map((row) => row.map(Math.sign))).toEqual(STRINGS.map((s) => STRINGS.map((t) => Math.sign(s.normalize() < t.normalize() ? -1 : s.normalize() > t.normalize() ? 1 : 0))));
  });
});

describe('the context the program runs in (native/host.c)', () => {
  it('has exactly these globals: no Proxy, typed arrays, ArrayBuffer, Atomics, DataView, Date, WeakRef, FinalizationRegistry', () => {
    expect(out('context').globals).toEqual([
      'AggregateError', 'Array', 'BigInt', 'Boolean', 'Error', 'EvalError', 'Function', 'Infinity', 'InternalError', 'JSON', 'Map', 'Math', 'NaN', 'Number',
      'Object', 'Promise', 'RangeError', 'ReferenceError', 'Reflect', 'RegExp', 'Set', 'String', 'Symbol', 'SyntaxError', 'TypeError', 'URIError',
      'WeakMap', 'WeakSet', '__host', 'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape', 'eval', 'globalThis', 'isFinite',
      'isNaN', 'parseFloat', 'parseInt', 'undefined', 'unescape',
    ]);
  });

  it('compiles no JavaScript at run time: eval, the Function and AsyncFunction constructors throw', () => {
    const got = out('context');
    expect(got.eval).toBe('threw TypeError: eval is not supported');
    expect(got.functionConstructor).toBe('threw TypeError: eval is not supported');
    expect(got.asyncFunctionConstructor).toBe('threw TypeError: eval is not supported');
  });

  it('links the engine without quickjs-libc (std, os, their promise rejection check) and has no value printer', async () => {
    const symbols = (await execa('nm', [ASAN])).stdout.split('\n').map((l) => l.split(' ').pop() ?? '');
    // The check can see the engine's own functions, static ones too (the build keeps symbols).
    expect(symbols).toContain('js_bigint_to_string1');
    expect(symbols).toContain('unicode_normalize');
    // quickjs-libc.c's functions (its header's, and CVE-2025-62491's), none linked:
    const libc = ['js_init_module_std', 'js_init_module_os', 'js_std_add_helpers', 'js_std_loop', 'js_std_await', 'js_std_eval_binary', 'js_std_dump_error', 'js_std_promise_rejection_tracker', 'js_std_promise_rejection_check', 'js_load_file', 'js_module_loader'];
    expect(symbols.filter((s) => libc.includes(s))).toEqual([]);
    // CVE-2025-62490's printer arrived upstream after this release.
    expect(symbols).not.toContain('js_print_object');
  });
});

describe("the C library linked into the shipped programs (musl's libc.a, by the build's link maps)", () => {
  const maps = ['istio-iptables.map', 'istio-cni.map'].map((f) => [f, existsSync(join(SCRIPTS_DIR, f)) ? readFileSync(join(SCRIPTS_DIR, f), 'utf8') : '']);

  it("are musl's members only, and none of iconv (CVE-2025-26519 is in musl's iconv)", () => {
    for (const [file, map] of maps) {
      const members = new Set([...(map ?? '').matchAll(/\/([\w.+-]+\.a)\(([\w.+-]+)\)/g)].map((m) => `${m[1]}(${m[2]})`));
      // The executable links musl's libc.a (its members are .lo files) and no glibc.
      expect([...members].filter((m) => m.startsWith('libc.a(') && m.endsWith('.lo)')).length, file).toBeGreaterThan(50);
      expect(map, file).toMatch(/-linux-musl\/libc\.a\(/);
      expect(map, file).not.toMatch(/-linux-gnu\/libc\.a\(/);
      expect([...members].filter((m) => /iconv/.test(m)), file).toEqual([]);
      // And what the program does call is there (the check would see iconv if it were).
      expect(members, file).toContain('libc.a(getifaddrs.lo)');
    }
  });
});

describe('what the bundled scripts call', () => {
  const scripts = Object.fromEntries(
    (existsSync(SCRIPTS_DIR) ? readdirSync(SCRIPTS_DIR) : []).filter((f) => f.endsWith('.js')).map((f) => [f, readFileSync(join(SCRIPTS_DIR, f), 'utf8')]),
  );
  const all = Object.values(scripts).join('\n');

  it('are the five scripts of the entrypoint and the istio-cni plugin\'s own two (it shares the lazy three)', () => {
    expect(Object.keys(scripts).sort()).toEqual(['app.js', 'cni-app.js', 'cni-prelude.js', 'extra.js', 'parser.js', 'prelude.js', 'trace.js']);
  });

  it('compile regular expressions at run time only from fixed patterns (CVE-2025-62495 needs a huge one)', () => {
    // Literals are compiled when the bytecode is built. These three build a pattern when called:
    const allowed = [
      // yargs-parser: "--no-" flags, the prefix from our parser configuration
      /^RegExp\("\^--"\+[\w$]+\["negation-prefix"\]\+"\(\.\+\)"\)/,
      // ansi-regex: its pattern, a constant of the module, global or not
      /^RegExp\([\w$]+,[\w$]+\?void 0:"g"\)/,
      // wrap-ansi: its escape codes, constants of the module
      /^RegExp\(`\(\?:\\\\\$\{[\w$]+\}\(\?<code>\\\\d\+\)m\|\\\\\$\{[\w$]+\}\(\?<uri>\.\*\)\$\{[\w$]+\}\)`\)/,
    ];
    const callsIn = (names: readonly string[]) => {
      const text = names.map((n) => scripts[n] ?? '').join('\n');
      return [...text.matchAll(/\bRegExp\(/g)].map((m) => text.slice(m.index, m.index + 200));
    };
    const entrypoint = callsIn(['prelude.js', 'app.js', 'extra.js', 'parser.js', 'trace.js']);
    expect(entrypoint).toHaveLength(3);
    for (const call of entrypoint) expect(allowed.some((re) => re.test(call)), call).toBe(true);
    // The plugin's own program (src/entrypoint-cni.ts) validates the CNI configuration and the
    // agent's answers with zod's unions, literals, optionals and nullables, whose patterns zod
    // composes from the schemas' own (constants of src/cni/*.ts), lazily: only a template-literal
    // schema reads them, and there is none.
    const zodPatterns = [
      /^RegExp\(`\^\(\$\{[\w$]+\.map\([\w$]+=>[\w$]+\([\w$]+\.source\)\)\.join\("\|"\)\}\)\$`\)/,
      /^RegExp\([\w$]+\.length\?`\^\(\$\{[\w$]+\.map\([\w$]+=>typeof [\w$]+=="string"\?/,
      /^RegExp\(`\^\(\$\{[\w$]+\([\w$]+\.source\)\}\)\?\$`\)/,
      /^RegExp\(`\^\(\$\{[\w$]+\([\w$]+\.source\)\}\|null\)\$`\)/,
    ];
    const plugin = callsIn(['cni-prelude.js', 'cni-app.js']);
    expect(plugin).toHaveLength(4);
    for (const call of plugin) expect(zodPatterns.some((re) => re.test(call)), call).toBe(true);
  });

  it('make BigInts only from numbers, in src/render/nft/sets.ts (CVE-2025-62496 parses a string)', () => {
    // No dependency calls BigInt: the bundle has the calls the source has.
    const bundled = [...all.matchAll(/\bBigInt\(/g)].length;
    const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    if (config === undefined) throw new Error('cannot read tsconfig.build.json');
    const program = ts.createProgram(config.fileNames, config.options);
    const checker = program.getTypeChecker();
    const calls: { file: string; arg: string; type: string }[] = [];
    for (const file of program.getSourceFiles().filter((f) => f.fileName.startsWith(join(ROOT, 'src')))) {
      const visit = (node: ts.Node): void => {
        if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'BigInt') {
          const arg = node.arguments[0];
          calls.push({ file: file.fileName.slice(ROOT.length), arg: arg?.getText(file) ?? '', type: arg === undefined ? 'none' : checker.typeToString(checker.getBaseTypeOfLiteralType(checker.getTypeAtLocation(arg))) });
        }
        ts.forEachChild(node, visit);
      };
      visit(file);
    }
    expect(calls.length).toBeGreaterThan(0);
    expect(bundled).toBe(calls.length);
    for (const c of calls) {
      expect(c.file).toBe('src/render/nft/sets.ts');
      expect(c.type, c.arg).toBe('number');
    }
  }, 60_000);

  it('define no conversion callbacks but cliui\'s toString (CVE-2025-62494 needs one that changes the left operand of +)', () => {
    expect(all).not.toMatch(/valueOf|toPrimitive/);
    expect(all).not.toMatch(/\btoString\s*[:=]/);
    const methods = [...all.matchAll(/\btoString\(\)\{/g)].map((m) => all.slice(m.index, m.index + 60));
    expect(methods).toEqual([expect.stringMatching(/^toString\(\)\{let [\w$]+=\[\];return this\.rows\.forEach/)]);
  });
});

describe('docs/security.md and these tests agree', () => {
  const doc = readFileSync(join(ROOT, 'docs/security.md'), 'utf8');
  const rows = doc.split('\n').filter((l) => /^\| (\*\*)?CVE-|^\| quickjs-ng|^\| bellard/.test(l));

  it('every CVE a test here names is a row of the table, and every row names a test', () => {
    const named = new Set(readFileSync(join(ROOT, 'test/engine.test.ts'), 'utf8').match(/CVE-\d{4}-\d+/g));
    expect(named.size).toBeGreaterThan(3);
    for (const cve of named) expect(rows.some((r) => r.includes(cve)), cve).toBe(true);
    for (const row of rows) expect(row.split('|').at(-2)?.trim(), row).toMatch(/test\/|as CVE-|as above/);
  });

  it('the test files and patches it cites exist', () => {
    const cited = new Set(doc.match(/(test|native\/engine-patches)\/[\w./-]+\.(ts|patch)/g));
    expect(cited.size).toBeGreaterThan(2);
    for (const path of cited) expect(existsSync(join(ROOT, path)), path).toBe(true);
    const patches = readdirSync(join(ROOT, 'native/engine-patches')).filter((f) => f.endsWith('.patch'));
    for (const patch of patches) expect(doc, patch).toContain(patch);
  });
});
