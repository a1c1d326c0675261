import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ROOT } from './cli.js';

/**
 * The package as its users get it: `npm pack` of this checkout (dist/ as built by `npm run
 * build`), installed into a fresh project from the npm cache only (`--offline`: the
 * dependencies are there since `npm ci`). Used by test/package.test.ts and the kernel test.
 */
export interface Installed {
  /** The temporary directory holding the tarball and the project; removed by `remove()`. */
  readonly dir: string;
  /** The consumer project (package.json without "type": CommonJS by default). */
  readonly project: string;
  readonly tarball: string;
  /** Packed size in bytes, and the packed files' paths, as `npm pack --json` reports them. */
  readonly size: number;
  readonly files: readonly string[];
  /** Run a command in the project; never rejects. */
  run(cmd: string, args: readonly string[], options?: { cwd?: string; env?: Record<string, string> }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  write(path: string, text: string): string;
  /**
   * Another fresh project beside the first, installing the same tarball: `manifest` is merged into
   * its package.json (e.g. `{ type: 'module' }`), and `devDependencies` (names) come at this
   * checkout's locked versions, from the npm cache. Returns its directory.
   */
  project2(name: string, manifest: Record<string, unknown>, devDependencies: readonly string[]): Promise<string>;
  remove(): void;
}

export async function packAndInstall(tag: string): Promise<Installed> {
  const dir = mkdtempSync(join(tmpdir(), `iit-pkg-${tag}-`));
  try {
    return await install(tag, dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function install(tag: string, dir: string): Promise<Installed> {
  // --ignore-scripts: no prepack build here (another test file may pack at the same time); the
  // suite builds dist/ before it runs.
  const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
  const info = (JSON.parse(packed.stdout) as { filename: string; size: number; files: { path: string }[] }[])[0];
  if (info === undefined) throw new Error(`npm pack printed no result: ${packed.stdout}`);
  const tarball = join(dir, info.filename);
  const project = await consumerProject(join(dir, 'project'), `consumer-${tag}`, info.filename, {}, []);
  return {
    dir,
    project,
    tarball,
    size: info.size,
    files: info.files.map((f) => f.path),
    async run(cmd, args, options = {}) {
      const r = await execa(cmd, args, { cwd: options.cwd ?? project, reject: false, stripFinalNewline: false, timeout: 120_000, ...(options.env === undefined ? {} : { env: options.env }) });
      return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    write(path, text) {
      const full = join(project, path);
      mkdirSync(join(full, '..'), { recursive: true });
      writeFileSync(full, text);
      return full;
    },
    project2(name, manifest, devDependencies) {
      return consumerProject(join(dir, name), `consumer-${tag}-${name}`, info.filename, manifest, devDependencies);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A project depending on the tarball `filename` (beside it), installed with `npm ci --offline`. */
async function consumerProject(project: string, name: string, filename: string, extra: Record<string, unknown>, devDependencies: readonly string[]): Promise<string> {
  mkdirSync(project);
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
  const dependencies = { [manifest.name]: `file:../${filename}` };
  const dev = Object.fromEntries(devDependencies.map((d) => [d, manifest.devDependencies[d] ?? '*']));
  const json = { name, version: '1.0.0', private: true, ...extra, dependencies, ...(devDependencies.length > 0 ? { devDependencies: dev } : {}) };
  writeFileSync(join(project, 'package.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(project, 'package-lock.json'), `${JSON.stringify(consumerLock(name, manifest, filename, dev), null, 2)}\n`);
  const install = await execa('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project, reject: false, timeout: 120_000 });
  if (install.exitCode !== 0) throw new Error(`npm ci --offline of the tarball failed:\n${install.stderr}`);
  return project;
}

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
  readonly bin: Record<string, string>;
}

type LockEntry = Record<string, unknown> & { dev?: boolean; devOptional?: boolean };

/**
 * The consumer's lockfile: the tarball, and the package's runtime dependencies at the versions
 * (resolved URL and integrity) of this checkout's lockfile. npm's cache holds those tarballs since
 * `npm ci`, but not the registry's metadata that a plain `npm install --offline` would need to
 * resolve version ranges; with a lockfile nothing needs resolving, so no network is used at all.
 */
function consumerLock(name: string, manifest: Manifest, filename: string, dev: Record<string, string>): unknown {
  const ours = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const devNames = Object.keys(dev);
  const packages: Record<string, unknown> = {
    '': { name, version: '1.0.0', dependencies: { [manifest.name]: `file:../${filename}` }, ...(devNames.length > 0 ? { devDependencies: dev } : {}) },
    [`node_modules/${manifest.name}`]: { version: manifest.version, resolved: `file:../${filename}`, dependencies: manifest.dependencies, bin: manifest.bin },
  };
  for (const [path, entry] of Object.entries(ours.packages)) {
    if (path === '' || !path.startsWith('node_modules/') || entry.dev === true || entry.devOptional === true) continue;
    packages[path] = entry;
  }
  // The dev dependencies asked for and what they depend on, as locked here (hoisted: top level).
  const todo = [...devNames];
  for (let d = todo.shift(); d !== undefined; d = todo.shift()) {
    const path = `node_modules/${d}`;
    const entry = ours.packages[path];
    if (entry === undefined) throw new Error(`${d} is not in package-lock.json`);
    if (path in packages) continue;
    packages[path] = entry;
    todo.push(...Object.keys((entry.dependencies ?? {}) as Record<string, string>));
  }
  return { name, version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

/** Every name the package exports, read from the committed API report. */
export function publicNames(): string[] {
  const report = readFileSync(join(ROOT, 'api', 'istio-iptables-ts.d.ts'), 'utf8');
  return [...report.matchAll(/^export (?:declare )?(?:class|interface|type|const|function) (\w+)/gm)].map((m) => m[1] ?? '');
}
