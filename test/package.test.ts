import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from './support/cli.js';
import { packAndInstall, publicNames, type Installed } from './support/package.js';

/**
 * The package as other tooling uses it: packed once, installed from the tarball into a fresh
 * project (npm cache only), then used by an ESM script, a CommonJS script, a strict TypeScript
 * project and npx. Needs dist/ built (`npm run build`, which `npm test` runs first).
 */

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const CONSUMERS = join(ROOT, 'test', 'consumers');
const TPROXY = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-b', '*', '-i', '*', '-x', '10.1.0.0/16', '-d', '15090,15021', '--redirect-dns', '--dns-servers', '10.96.0.10', '--enable-ipv6=true'];
const REDIRECT_NFT = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-b', '*', '-i', '*', '--enable-ipv6=false', '--native-nftables'];

let pkg: Installed;

beforeAll(async () => {
  pkg = await packAndInstall('unit');
  for (const f of ['esm.mjs', 'cjs.cjs']) copyFileSync(join(CONSUMERS, f), join(pkg.project, f));
}, 180_000);

afterAll(() => pkg?.remove());

describe('the packed tarball', { timeout: 60_000 }, () => {
  it('is at most 1 MB and holds only the library, the bins and their documents', () => {
    expect(pkg.size).toBeGreaterThan(10_000);
    expect(pkg.size).toBeLessThanOrEqual(1024 * 1024);
    const unexpected = pkg.files.filter((f) => !/^dist\/.+\.(js|d\.ts)$/.test(f) && !['bin/istio-iptables.js', 'bin/istio-cni-agent.js', 'package.json', 'README.md', 'CHANGELOG.md'].includes(f));
    expect(unexpected).toEqual([]);
    expect(pkg.files).toContain('CHANGELOG.md');
    // The entrypoint's build output and its runtime glue stay out; platform/host.js (how the library
    // finds out it runs under the entrypoint: it does not, so it is undefined) is imported by log.js.
    expect(pkg.files.filter((f) => /entrypoint|platform\/quickjs\//.test(f))).toEqual([]);
  });

  it("leaves out the init container's build output even when it is there", async () => {
    // The `files` patterns of our package.json, packed from a tree that has what a full build
    // leaves in dist/ (the executables under dist/entrypoint/, the QuickJS-only modules).
    const dir = mkdtempSync(join(tmpdir(), 'iit-files-'));
    try {
      const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...manifest, scripts: {} }));
      // And the istio-cni plugin's executable and the agent's image bundle (the image carries them; the package has the agent's bin).
      for (const f of ['bin/istio-iptables.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/entrypoint/istio-iptables', 'dist/entrypoint/istio-iptables-full', 'dist/entrypoint.js', 'dist/entrypoint-quickjs.js', 'dist/entrypoint-quickjs.d.ts', 'dist/platform/quickjs/prelude.js', 'dist/cni/istio-cni', 'dist/cni/pod.js', 'dist/entrypoint-cni.js', 'dist/agent-bundle/agent/istio-cni-agent.mjs', 'CHANGELOG.md', 'README.md', 'src/index.ts']) {
        mkdirSync(join(dir, f, '..'), { recursive: true });
        writeFileSync(join(dir, f), 'x');
      }
      const r = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir });
      const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path).sort();
      expect(files).toEqual(['CHANGELOG.md', 'README.md', 'bin/istio-iptables.js', 'dist/cli.js', 'dist/cni/pod.js', 'dist/index.d.ts', 'dist/index.js', 'package.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('installs without yargs or Node type packages', () => {
    expect(existsSync(join(pkg.project, 'node_modules', 'istio-iptables-ts', 'dist', 'index.js'))).toBe(true);
    expect(existsSync(join(pkg.project, 'node_modules', 'yargs'))).toBe(true);
    expect(existsSync(join(pkg.project, 'node_modules', '@types'))).toBe(false);
  });
});

describe('consumers of the installed package', { timeout: 120_000 }, () => {
  it('an ESM script builds a plan and renders it exactly as the CLI prints it', async () => {
    const r = await pkg.run('node', ['esm.mjs', ...TPROXY]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { json: string; text: string; restore4: string; nft: string };
    const json = await runCli([...TPROXY, '--dry-run', '--output', 'json']);
    const text = await runCli([...TPROXY, '--dry-run']);
    expect(out.json).toBe(json.stdout);
    expect(out.text).toBe(text.stdout);
    expect(out.restore4).toContain('-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY\n');
    expect(out.nft).toContain('table inet istio-proxy-mangle');
  });

  it('a CommonJS script does the same through require()', async () => {
    const esm = await pkg.run('node', ['esm.mjs', ...REDIRECT_NFT]);
    const cjs = await pkg.run('node', ['cjs.cjs', ...REDIRECT_NFT]);
    expect(cjs.stderr).toBe('');
    expect(cjs.exitCode).toBe(0);
    const { resolved, ...rest } = JSON.parse(cjs.stdout) as { resolved: string; json: string };
    expect(resolved).toBe(join(pkg.project, 'node_modules', 'istio-iptables-ts', 'dist', 'index.js'));
    expect(rest).toEqual(JSON.parse(esm.stdout));
    expect(rest.json).toBe((await runCli([...REDIRECT_NFT, '--dry-run', '--output', 'json'])).stdout);
    expect(rest.json).toContain('"nftScript"');
  });

  it('a CommonJS script gets ConfigError from require() with the named source', async () => {
    const script = pkg.write('bad.cjs', "const { configFromObject, fixedHost, ConfigError } = require('istio-iptables-ts');\ntry { configFromObject({ inboundPorts: '80x' }, fixedHost()); } catch (e) { console.log(e instanceof ConfigError, e.message); }\n");
    const r = await pkg.run('node', [script]);
    expect(r.stdout).toMatch(/^true invalid value "80x" for option inboundPorts: expected .*"80x" is not a port/);
  });

  it('a strict TypeScript project (nodenext, no skipLibCheck, no @types) type-checks a program using every export', async () => {
    const program = readFileSync(join(CONSUMERS, 'typed.ts'), 'utf8');
    const names = publicNames();
    expect(names.length).toBeGreaterThan(60);
    expect(names.filter((n) => !new RegExp(`\\b${n}\\b`).test(program))).toEqual([]);
    pkg.write('ts/index.ts', program);
    pkg.write('ts/package.json', '{ "type": "module" }\n');
    const options = { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022'], noEmit: true, skipLibCheck: false, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true };
    pkg.write('ts/tsconfig.json', JSON.stringify({ compilerOptions: options, files: ['index.ts'] }));
    const r = await pkg.run('node', [TSC, '-p', 'ts', '--listFiles']);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines.filter((l) => !l.startsWith('/'))).toEqual([]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // What the compiler read: the program, the package's own declarations and TypeScript's lib.
    expect(lines.filter((f) => !f.includes('/typescript/lib/') && !f.includes('/node_modules/istio-iptables-ts/dist/') && !f.endsWith('/ts/index.ts'))).toEqual([]);
    expect(lines.filter((f) => f.includes('/node_modules/istio-iptables-ts/dist/'))).toContain(join(pkg.project, 'node_modules/istio-iptables-ts/dist/index.d.ts'));
    // The check has teeth: a wrong type in the same project fails.
    pkg.write('ts/index.ts', `${program}\nexport const wrong: import('istio-iptables-ts').FamilyOutcome = 'done';\n`);
    const bad = await pkg.run('node', [TSC, '-p', 'ts']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stdout).toMatch(/TS2322: Type '"done"' is not assignable to type 'FamilyOutcome'/);
  });

  it("README's library example type-checks as shown in a fresh project set up as docs/library.md says", async () => {
    const example = /^## Library\n[\s\S]*?^```ts\n([\s\S]*?)^```$/m.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))?.[1];
    const docs = readFileSync(join(ROOT, 'docs', 'library.md'), 'utf8');
    const manifest = JSON.parse(/^`package\.json`[^\n]*:\n\n```json\n([\s\S]*?)^```$/m.exec(docs)?.[1] ?? 'null') as { type: string; devDependencies: Record<string, string> };
    const tsconfig = /^`tsconfig\.json`:\n\n```json\n([\s\S]*?)^```$/m.exec(docs)?.[1];
    expect(example).toContain('configFromObject(');
    expect(manifest.type).toBe('module');
    expect(Object.keys(manifest.devDependencies).sort()).toEqual(['@types/node', 'typescript']);
    expect(tsconfig).toBeDefined();
    // package.json: what docs/library.md shows, the dependency on the tarball, and the dev
    // dependencies it names at this checkout's locked versions.
    const project = await pkg.project2('readme', { type: manifest.type }, Object.keys(manifest.devDependencies));
    const write = (path: string, text: string): void => {
      mkdirSync(join(project, path, '..'), { recursive: true });
      writeFileSync(join(project, path), text);
    };
    write('tsconfig.json', tsconfig ?? '');
    write('example.ts', example ?? '');
    // What docs/library.md says of CommonJS: the same file refuses its top-level await there, and
    // compiles as .mts.
    write('cjs/package.json', '{ "type": "commonjs" }\n');
    write('cjs/example.ts', example ?? '');
    write('cjs/example.mts', example ?? '');
    // And the types have teeth: a mistyped key and a mode in lower case (TypeScript suggests the
    // right one for each) and a port as text each fail, with nothing else. (TypeScript prints a
    // union's members in the order its checker first met them, which the package's declarations decide.)
    const mistakes = {
      'bad-key.ts': ['proxyPort: 15001,', 'proxyPrt: 15001,', /error TS2561: Object literal may only specify known properties, but 'proxyPrt' does not exist in type 'ConfigInput'. Did you mean to write 'proxyPort'\?/],
      'bad-mode.ts': ["mode: 'TPROXY'", "mode: 'tproxy'", /error TS2820: Type '"tproxy"' is not assignable to type '("REDIRECT" \| "TPROXY"|"TPROXY" \| "REDIRECT") \| undefined'. Did you mean '"TPROXY"'\?/],
      'bad-port.ts': ['inboundCapturePort: 15006,', "inboundCapturePort: '15006',", /error TS2322: Type 'string' is not assignable to type 'number'/],
    } as const;
    for (const [file, [from, to]] of Object.entries(mistakes)) {
      expect(example).toContain(from);
      write(file, (example ?? '').replace(from, to));
    }
    const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await pkg.run('node', [tsc, '-p', '.', '--pretty', 'false'], { cwd: project });
    const errors = r.stdout.split('\n').filter((l) => /error TS/.test(l));
    const of = (file: string): string[] => errors.filter((l) => l.startsWith(`${file}(`));
    expect(of('example.ts')).toEqual([]);
    expect(of('cjs/example.mts')).toEqual([]);
    // One for each top-level await.
    expect(of('cjs/example.ts').map((l) => /error (TS\d+)/.exec(l)?.[1])).toEqual(['TS1309', 'TS1309', 'TS1309', 'TS1309']);
    for (const [file, [, , message]] of Object.entries(mistakes)) {
      expect(of(file)).toHaveLength(1);
      expect(of(file)[0]).toMatch(message);
    }
    expect(errors).toHaveLength(4 + Object.keys(mistakes).length);
  });

  it('npx runs the bin from the tarball', async () => {
    const r = await pkg.run('npx', ['--offline', 'istio-iptables', 'istio-iptables', ...TPROXY, '--dry-run']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe((await runCli([...TPROXY, '--dry-run'])).stdout);
    const bad = await pkg.run('npx', ['--offline', 'istio-iptables', '-b', '80x', '--dry-run']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/invalid value "80x" for -b\/--istio-inbound-ports/);
  });
});
