import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { normalizeSave, withNetns, type Netns } from './netns.js';

/**
 * What an apply logs, and what its children get, in real namespaces, through both programs (the
 * entrypoint and the Node CLI, run inside the namespace as the init container runs): the blocks
 * logged equal what the namespace's own programs print; the two programs log the same lines; a
 * child gets PATH and the xtables lock file only (XTABLES_LIBDIR=/nonexistent in the caller's
 * environment breaks iptables if it reaches it); a run waiting for the run lock says so; a forced
 * backend over the other backend's rules is warned about.
 */

const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const PROGRAMS = [
  { name: 'entrypoint', argv: [ENTRYPOINT] },
  { name: 'node-bin', argv: [process.execPath, join(ROOT, 'bin/istio-iptables.js')] },
] as const;
type Program = (typeof PROGRAMS)[number];
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const DUAL = [...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=true'];
const V4 = [...SIDECAR, '-m', 'REDIRECT', '--enable-ipv6=false'];

const dirs: string[] = [];

afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Run a program inside the namespace with exactly this environment. */
function runIn(ns: Netns, p: Program, args: readonly string[], env: Record<string, string> = {}) {
  return execa('ip', ['netns', 'exec', ns.name, ...p.argv, ...args], { reject: false, env: { PATH, ...env }, extendEnv: false, timeout: 60_000 });
}

interface LogRecord {
  level: string;
  msg: string;
  command?: string[];
  family?: string;
  input?: string;
  rules?: string;
  config?: Record<string, string>;
  warning?: string;
}
const records = (stderr: string): LogRecord[] => stderr.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as LogRecord);

/** Log text compared across programs and runs: save headers (with their dates) and waited times out. */
const comparable = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter((l) => !/^# (Generated|Completed)/.test(l))
    .map((l) => l.replace(/after \d+ ms/, 'after N ms'));

describe('an apply logs the configuration, what it loaded and the rules after: equal to the namespace\'s own programs', () => {
  it.each(PROGRAMS)('$name: --log_as_json, TPROXY dual stack', async (p) => {
    const dry = await execa(p.argv[0], [...p.argv.slice(1), ...DUAL, '--dry-run', '--output', 'json'], { env: { PATH }, extendEnv: false });
    const plan = JSON.parse(dry.stdout) as { iptablesRestore: string; ip6tablesRestore: string };
    await withNetns('logsjson', async (ns) => {
      const r = await runIn(ns, p, [...DUAL, '--log_as_json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const recs = records(r.stderr);
      const config = recs.find((x) => x.config !== undefined);
      expect(config?.msg.split('\n')[0]).toBe('configuration:');
      expect(config?.config?.['istio-inbound-interception-mode']).toBe('TPROXY');
      expect(config?.config?.['enable-ipv6']).toBe('true');
      // What was loaded: the dry run's payloads, per family.
      const inputs = recs.filter((x) => x.input !== undefined);
      expect(inputs.map((x) => [x.family, x.command?.[0], x.input])).toEqual([
        ['ipv4', 'iptables-nft-restore', plan.iptablesRestore],
        ['ipv6', 'ip6tables-nft-restore', plan.ip6tablesRestore],
      ]);
      // The rules after: what the namespace's save prints now, per family.
      const after = recs.filter((x) => x.rules !== undefined);
      expect(after.map((x) => [x.family, x.command])).toEqual([
        ['ipv4', ['iptables-nft-save']],
        ['ipv6', ['ip6tables-nft-save']],
      ]);
      for (const x of after) {
        const now = await ns.run(x.command?.[0] ?? '', []);
        expect(normalizeSave(x.rules ?? '')).toBe(normalizeSave(now.stdout));
        expect(x.rules).toContain('-j TPROXY');
      }
      // Blocks are one record each; the order is configuration, inputs, rules after.
      expect(recs.indexOf(config as LogRecord)).toBeLessThan(recs.indexOf(inputs[0] as LogRecord));
      expect(recs.indexOf(inputs[1] as LogRecord)).toBeLessThan(recs.indexOf(after[0] as LogRecord));
    });
  });

  it('the text layout: both programs log the same lines, with the blocks pasteable as they are', async () => {
    const logs: string[][] = [];
    for (const p of PROGRAMS) {
      await withNetns('logstext', async (ns) => {
        const r = await runIn(ns, p, V4);
        expect(r.exitCode, r.stderr).toBe(0);
        const save = normalizeSave((await ns.run('iptables-nft-save', [])).stdout);
        // The block after "rules after": the save as printed, up to the next record.
        const lines = r.stderr.split('\n');
        const at = lines.indexOf('info\trules after (ipv4, iptables-nft-save):');
        expect(at, r.stderr).toBeGreaterThan(0);
        const block = lines.slice(at + 1).join('\n');
        expect(normalizeSave(block)).toBe(save);
        // The backend's evidence says where it was read: the entrypoint's first run from the
        // target's /proc files, the Node CLI's from its saves (docs/namespace.md). The rest alike.
        logs.push(comparable(r.stderr).map((l) => l.replace(/^(info\tiptables backend: nft) \(.*\)$/, '$1 (...)')));
      });
    }
    expect(logs[0]).toEqual(logs[1]);
    expect(logs[0]).toContain('info\tiptables backend: nft (...)');
  });

  it.each(PROGRAMS)('$name: native nftables: the script loaded, and nft list ruleset after', async (p) => {
    const dry = await execa(p.argv[0], [...p.argv.slice(1), ...V4, '--native-nftables', '--dry-run'], { env: { PATH }, extendEnv: false });
    await withNetns('logsnft', async (ns) => {
      const r = await runIn(ns, p, [...V4, '--native-nftables', '--log_as_json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const recs = records(r.stderr);
      const loaded = recs.filter((x) => x.input !== undefined);
      expect(loaded).toHaveLength(1);
      expect(loaded[0]?.command).toEqual(['nft', '-f', '-']);
      expect(dry.stdout).toContain(loaded[0]?.input?.trim().split('\n').slice(-3).join('\n'));
      const after = recs.filter((x) => x.rules !== undefined);
      expect(after.map((x) => x.command)).toEqual([['nft', 'list', 'ruleset']]);
      const now = await ns.run('nft', ['list', 'ruleset']);
      const strip = (t: string) => t.replace(/counter packets \d+ bytes \d+/g, 'counter');
      expect(strip(after[0]?.rules ?? '')).toBe(strip(`${now.stdout}\n`));
      expect(after[0]?.rules?.endsWith('}\n')).toBe(true);
    });
  });
});

/**
 * A folder of programs first on PATH that each write the environment they were started with (the
 * kernel's copy: /proc/self/environ of the shell before it changes anything) to a file of its own
 * in `out` (the restores run side by side), then run the real program, without the PWD the shell
 * exports (so that a program it starts, such as nsenter's, shows only what it was given).
 */
function envRecorders(names: readonly string[]): { dir: string; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'iit-childenv-'));
  dirs.push(dir);
  const out = join(dir, 'env');
  mkdirSync(out);
  for (const name of names) {
    const real = execaSyncWhich(name);
    writeFileSync(join(dir, name), `#!/bin/sh\ntr '\\0' '\\n' < /proc/$$/environ > '${out}/${name}.'$$\nexec env -u PWD -u OLDPWD ${real} "$@"\n`);
    chmodSync(join(dir, name), 0o755);
  }
  return { dir, out };
}

function execaSyncWhich(name: string): string {
  for (const d of PATH.split(':')) {
    try {
      readFileSync(join(d, name), { flag: 'r' });
      return join(d, name);
    } catch {
      // not there
    }
  }
  throw new Error(`${name} not found on PATH`);
}

describe("children get PATH and the xtables lock file only", () => {
  it.each(PROGRAMS)('$name: XTABLES_LIBDIR=/nonexistent in its environment changes nothing: the apply works', async (p) => {
    await withNetns('libdir', async (ns) => {
      // Reaching iptables-restore, this makes it fail on its first match (`-p tcp --dport`: no extension loads).
      const broken = await ns.run('sh', ['-c', 'echo "*nat\n-A OUTPUT -p tcp --dport 80 -j RETURN\nCOMMIT" | XTABLES_LIBDIR=/nonexistent iptables-nft-restore --noflush']);
      expect(broken.exitCode).not.toBe(0);
      const r = await runIn(ns, p, DUAL, { XTABLES_LIBDIR: '/nonexistent', LD_LIBRARY_PATH: '/nonexistent' });
      expect(r.exitCode, r.stderr).toBe(0);
      expect((await ns.run('iptables-save', ['-t', 'mangle'])).stdout).toContain('-j TPROXY');
      expect((await ns.run('ip6tables-save', ['-t', 'mangle'])).stdout).toContain('-j TPROXY');
    });
  });

  const WHERE = PROGRAMS.flatMap((p) => (['inside', 'outside'] as const).map((where) => ({ ...p, where })));
  it.each(WHERE)('$name, run $where the namespace: every child it starts (the restores, the saves, ip, nsenter) gets PATH and XTABLES_LOCKFILE, nothing else', async (p) => {
    const names = ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save', 'ip', 'nsenter'];
    const { dir, out } = envRecorders(names);
    await withNetns('childenv', async (ns) => {
      // The namespace entered by the real ip (by its path): the recorders see only what the program starts.
      const env = { PATH: `${dir}:${PATH}`, XTABLES_LOCKFILE: join(dir, 'xtables.lock'), XTABLES_LIBDIR: '/nonexistent', LD_PRELOAD_NOT: 'x', SECRET_TOKEN: 'hunter2', HOME: '/root' };
      // --force-iptables-binary=nft: the other backend's saves are read too.
      const argv = [...p.argv, ...DUAL, '--force-iptables-binary=nft'];
      const r =
        p.where === 'inside'
          ? await execa(execaSyncWhich('ip'), ['netns', 'exec', ns.name, ...argv], { reject: false, env, extendEnv: false, timeout: 60_000 })
          : await execa(argv[0] as string, [...argv.slice(1), '--network-namespace', `/var/run/netns/${ns.name}`], { reject: false, env, extendEnv: false, timeout: 60_000 });
      expect(r.exitCode, r.stderr).toBe(0);
      const started = readdirSync(out).map((f) => ({ name: f.slice(0, f.lastIndexOf('.')), vars: readFileSync(join(out, f), 'utf8').split('\n').filter((l) => l !== '').sort() }));
      const text = JSON.stringify(started, null, 1);
      const seen = new Set(started.map((s) => s.name));
      for (const name of ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) expect(seen, text).toContain(name);
      // Node enters another namespace with nsenter; the entrypoint by the namespace's descriptor, itself (docs/namespace.md).
      if (p.where === 'outside') expect(seen.has('nsenter'), text).toBe(p.name === 'node-bin');
      // Each gets PATH, and nothing but the allowed two (the Node CLI's holder of the run lock in another namespace gets PATH alone).
      for (const s of started) {
        expect(s.vars, `${s.name}\n${text}`).toContain(`PATH=${env.PATH}`);
        expect(s.vars.filter((v) => v !== `PATH=${env.PATH}` && v !== `XTABLES_LOCKFILE=${env.XTABLES_LOCKFILE}`), `${s.name}\n${text}`).toEqual([]);
      }
      // The restores and saves, which use the lock file, get it.
      for (const s of started.filter((x) => x.name.includes('tables'))) expect(s.vars, s.name).toContain(`XTABLES_LOCKFILE=${env.XTABLES_LOCKFILE}`);
    });
  });
});

/** A process inside the namespace holding the run lock's name until released. */
async function holdLock(ns: Netns): Promise<() => Promise<void>> {
  const script = "require('node:net').createServer().listen({ path: '\\0istio-iptables/run' }, () => { process.stdout.write('held\\n'); process.stdin.on('end', () => process.exit(0)).resume(); })";
  const holder = execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdin: 'pipe', reject: false, timeout: 60_000 });
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.once('data', () => resolve());
    void holder.then((r) => reject(new Error(`the holder ended before holding the lock: ${r.stderr}`)));
  });
  return async () => {
    holder.stdin?.end();
    await holder;
  };
}

describe('a run waiting for the run lock says so, once, and when it has it', () => {
  it.each(PROGRAMS)('$name', async (p) => {
    await withNetns('lockwait', async (ns) => {
      const release = await holdLock(ns);
      const run = runIn(ns, p, V4);
      await new Promise((r) => setTimeout(r, 1500));
      await release();
      const r = await run;
      expect(r.exitCode, r.stderr).toBe(0);
      const lines = r.stderr.split('\n');
      const waiting = lines.filter((l) => l.startsWith('info\twaiting for'));
      // The holder named: a run of ours (listening, CAP_NET_ADMIN), by pid (apply/lock.ts).
      expect(waiting).toHaveLength(1);
      expect(waiting[0]).toMatch(/^info\twaiting for the network namespace's run lock \(istio-iptables\/run\), held by pid \d+ \(uid 0\), with CAP_NET_ADMIN \(up to 30 s\)$/);
      const took = lines.filter((l) => l.startsWith('info\ttook the run lock'));
      expect(took).toHaveLength(1);
      const ms = Number(/after (\d+) ms/.exec(took[0] ?? '')?.[1]);
      expect(ms).toBeGreaterThanOrEqual(1000);
      expect(ms).toBeLessThan(30_000);
      // Said before anything was loaded.
      expect(lines.indexOf(took[0] ?? '')).toBeLessThan(lines.findIndex((l) => l.startsWith('info\tinput of')));
    });
  });

  it.each(PROGRAMS)('$name: a run that does not wait says nothing of the lock', async (p) => {
    await withNetns('nolockwait', async (ns) => {
      const r = await runIn(ns, p, V4);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/run lock/);
    });
  });
});

describe('--force-iptables-binary over the other backend\'s rules warns, naming both', () => {
  const CASES = [
    { forced: 'legacy', other: 'nft', seed: 'iptables-nft' },
    { forced: 'nft', other: 'legacy', seed: 'iptables-legacy' },
  ] as const;
  it.each(CASES)('forced $forced over $other rules: both programs warn alike, and apply', async (c) => {
    const logs: string[][] = [];
    for (const p of PROGRAMS) {
      await withNetns('mixed', async (ns) => {
        // Someone else's rule in the other backend.
        expect((await ns.run(c.seed, ['-t', 'filter', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])).exitCode).toBe(0);
        const r = await runIn(ns, p, [...V4, `--force-iptables-binary=${c.forced}`]);
        expect(r.exitCode, r.stderr).toBe(0);
        const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warn\t'));
        expect(warnings).toEqual([
          `warn\t--force-iptables-binary=${c.forced}, but the ${c.other} backend already holds rules in this namespace (rules and chains: iptables-${c.other}-save: 1, ip6tables-${c.other}-save: 0): the kernel runs both backends' rules, and this run neither sees nor removes the ${c.other} ones`,
        ]);
        expect((await ns.run(`iptables-${c.forced}-save`, ['-t', 'nat'])).stdout).toContain('-j ISTIO_REDIRECT');
        logs.push(comparable(r.stderr));
      });
    }
    expect(logs[0]).toEqual(logs[1]);
  });

  it.each(PROGRAMS)('$name: forced over a namespace without the other backend\'s rules: no warning', async (p) => {
    await withNetns('unmixed', async (ns) => {
      const r = await runIn(ns, p, [...V4, '--force-iptables-binary=legacy']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/^warn/m);
    });
  });
});
