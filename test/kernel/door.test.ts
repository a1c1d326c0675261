import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPlan, configFromArgs, openNamespace } from '../../src/index.js';
import { ROOT } from '../support/cli.js';
import { snapshot, withNetns, type Netns } from './netns.js';

/**
 * One door into a namespace, right for whichever namespace it is pointed at: the Node CLI, the
 * entrypoint and the library, from inside the namespace or from outside, end in the same state;
 * a mode switch ends as a fresh run of the new mode; diff reports what is missing and what is there
 * and should not be, with exit codes tools can rely on; a failed run leaves no table behind.
 */

const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const NODE_BIN = [process.execPath, join(ROOT, 'bin/istio-iptables.js')];
const PROGRAMS = [
  { name: 'entrypoint', argv: [ENTRYPOINT] },
  { name: 'node bin', argv: NODE_BIN },
] as const;
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const TPROXY = [...SIDECAR, '-m', 'TPROXY'];
const REDIRECT = [...SIDECAR, '-m', 'REDIRECT'];

const temporary: string[] = [];
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** Run a program inside a namespace (`in`), or from the test's own namespace. */
const runProgram = (argv: readonly string[], args: readonly string[], inside?: Netns, env: NodeJS.ProcessEnv = {}) =>
  execa(inside === undefined ? (argv[0] ?? '') : 'ip', inside === undefined ? [...argv.slice(1), ...args] : ['netns', 'exec', inside.name, ...argv, ...args], {
    reject: false,
    env: { PATH, ...env },
    extendEnv: false,
    timeout: 60_000,
  });

/**
 * An interface with these addresses, lo up as createNetns leaves it: a veth whose peer (without
 * addresses) is up too, so that eth0 runs as a pod's does, or (`running` false) stays down, so eth0
 * has no carrier.
 */
async function addresses(ns: Netns, cidrs: readonly string[], running = true): Promise<void> {
  // No link-local addresses (their MAC-derived values and DAD would differ between namespaces).
  const quiet = [['link', 'set', 'eth0', 'addrgenmode', 'none'], ['link', 'set', 'peer0', 'addrgenmode', 'none']];
  const up = running ? [['link', 'set', 'peer0', 'up']] : [];
  for (const argv of [['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0'], ...quiet, ...cidrs.map((c) => ['addr', 'add', c, 'dev', 'eth0', ...(c.includes(':') ? ['nodad'] : [])]), ['link', 'set', 'eth0', 'up'], ...up]) {
    const r = await ns.run('ip', argv);
    if (r.exitCode !== 0) throw new Error(`ip ${argv.join(' ')}: ${r.stderr}`);
  }
}

describe('facts about the target come from the target', () => {
  // The IPv6-only pod's interface has no carrier: its address counts all the same, as in Istio.
  const TARGETS = [
    ['IPv6 only (no carrier)', ['fd00:1::2/64'], [] as string[], false],
    ['dual stack, --dual-stack', ['10.2.0.2/24', 'fd00:2::2/64'], ['--dual-stack'], true],
    ['dual stack', ['10.2.0.2/24', 'fd00:2::2/64'], [] as string[], true],
  ] as const;

  describe.each(PROGRAMS)('$name', (program) => {
    it.each(TARGETS)('%s target, programmed from a caller namespace with IPv4 only: the state of a run inside an identical namespace', async (_n, cidrs, extra, running) => {
      await withNetns('caller', async (caller) => {
        await withNetns('target', async (target) => {
          await withNetns('twin', async (twin) => {
            await addresses(caller, ['10.1.0.2/24']);
            await addresses(target, cidrs, running);
            await addresses(twin, cidrs, running);
            const pristine = await snapshot(target);
            const outside = await runProgram(program.argv, [...TPROXY, ...extra, '--network-namespace', `/var/run/netns/${target.name}`], caller);
            const inside = await runProgram(program.argv, [...TPROXY, ...extra], twin);
            expect(outside.exitCode, outside.stderr).toBe(0);
            expect(inside.exitCode, inside.stderr).toBe(0);
            const state = await snapshot(target);
            expect(state).not.toBe(pristine);
            expect(state).toBe(await snapshot(twin));
            // Where the fact came from, in the log.
            expect(outside.stderr).toMatch(new RegExp(`IPv6 (en|dis)abled \\(Istio's rule${extra.length > 0 ? ' for dual stack' : ''} on \\d+ interface addresses \\(in /var/run/netns/${target.name}, net:\\[\\d+\\]\\)\\)`));
            const v6 = (await target.run('ip6tables-nft-save', [])).stdout;
            const planned = cidrs[0]?.includes(':') === true || extra.length > 0;
            expect(v6.includes(':ISTIO_OUTPUT')).toBe(planned);
          });
        });
      });
    });
  });

  /** Two interfaces, as a pod with a second network has: eth0 (the lower index) with IPv6 only, eth1 with IPv4 only. */
  async function ipv6ThenIpv4(ns: Netns): Promise<void> {
    for (const [dev, peer, cidr] of [['eth0', 'peer0', 'fd00:3::2/64'], ['eth1', 'peer1', '10.3.0.2/24']] as const) {
      const steps = [
        ['link', 'add', dev, 'type', 'veth', 'peer', 'name', peer],
        ['link', 'set', dev, 'addrgenmode', 'none'],
        ['link', 'set', peer, 'addrgenmode', 'none'],
        ['addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])],
        ['link', 'set', dev, 'up'],
        ['link', 'set', peer, 'up'],
      ];
      for (const argv of steps) {
        const r = await ns.run('ip', argv);
        if (r.exitCode !== 0) throw new Error(`ip ${argv.join(' ')}: ${r.stderr}`);
      }
    }
  }

  it.each(PROGRAMS)("$name: a first interface with IPv6 only and a second with IPv4, without --dual-stack, is IPv4 (Istio walks every IPv4 address first); with it, dual stack", async (program) => {
    await withNetns('v6first', async (ns) => {
      await ipv6ThenIpv4(ns);
      const v4 = await runProgram(program.argv, [...REDIRECT, '--dry-run', '--output', 'json'], ns);
      expect(v4.exitCode, v4.stderr).toBe(0);
      expect((JSON.parse(v4.stdout) as { ip6tablesRestore?: string | null }).ip6tablesRestore ?? null).toBeNull();
      const dual = await runProgram(program.argv, [...REDIRECT, '--dual-stack', '--dry-run', '--output', 'json'], ns);
      expect(dual.exitCode, dual.stderr).toBe(0);
      expect((JSON.parse(dual.stdout) as { ip6tablesRestore?: string | null }).ip6tablesRestore).toMatch(/ISTIO_OUTPUT/);
    });
  });

  it.each(TARGETS)('the library: %s target, facts read in the target through openNamespace, the state of a run inside', async (_n, cidrs, extra, running) => {
    await withNetns('libtarget', async (target) => {
      await withNetns('libtwin', async (twin) => {
        await addresses(target, cidrs, running);
        await addresses(twin, cidrs, running);
        const t = await openNamespace({ networkNamespace: target.name });
        try {
          const args = [...TPROXY, ...extra];
          const config = await configFromArgs(args, {}, await t.hostFacts({ env: {} }));
          const report = await t.apply(buildPlan(config.capture));
          expect(report.kind).toBe('iptables');
        } finally {
          t.close();
        }
        const inside = await runProgram(NODE_BIN, [...TPROXY, ...extra], twin);
        expect(inside.exitCode, inside.stderr).toBe(0);
        expect(await snapshot(target)).toBe(await snapshot(twin));
      });
    });
  });

  it('lo with IPv6 disabled in the target: no IPv6 on lo, as a run inside plans it', async () => {
    await withNetns('nolo6', async (target) => {
      await withNetns('nolo6twin', async (twin) => {
        for (const ns of [target, twin]) {
          await addresses(ns, ['fd00:3::2/64']);
          await ns.run('sysctl', ['-w', 'net.ipv6.conf.lo.disable_ipv6=1']);
        }
        const outside = await runProgram([ENTRYPOINT], [...TPROXY, '--network-namespace', target.name]);
        expect(outside.exitCode, outside.stderr).toBe(0);
        expect(outside.stderr).toMatch(/IPv6 is disabled on lo \(\/proc\/sys\/net\/ipv6\/conf\/lo\/disable_ipv6 \(in /);
        expect(outside.stderr).toMatch(/IPv6 is disabled on lo \(its disable_ipv6 is 1\): no ::6 address and no IPv6 local route on lo/);
        const inside = await runProgram(NODE_BIN, TPROXY, twin);
        expect(inside.exitCode, inside.stderr).toBe(0);
        expect(await snapshot(target)).toBe(await snapshot(twin));
        expect((await target.run('ip', ['-6', 'rule'])).stdout).toContain('fwmark 0x539 lookup 133');
        expect((await target.run('ip', ['-6', 'route', 'show', 'table', '133'])).stdout).toBe('');
      });
    });
  });
});

/** Foreign rules, routes and addresses that every run must leave as they are. */
async function foreign(ns: Netns): Promise<void> {
  for (const [cmd, args] of [
    ['iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'RETURN']],
    ['iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '9', '-j', 'RETURN']],
    ['ip', ['rule', 'add', 'fwmark', '7', 'lookup', '77']],
    ['ip', ['-6', 'addr', 'add', '::7/128', 'dev', 'lo']],
  ] as const) {
    const r = await ns.run(cmd, args);
    if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  }
}

describe('reconcile reaches all a run owns: a mode switch ends as a fresh run of the new mode', () => {
  const SWITCHES = [
    ['TPROXY then REDIRECT', TPROXY, REDIRECT],
    ['REDIRECT then TPROXY', REDIRECT, TPROXY],
  ] as const;
  const RUNNERS = [
    { name: 'entrypoint', run: (ns: Netns, args: readonly string[]) => runProgram([ENTRYPOINT], args, ns) },
    { name: 'node bin, from outside', run: (ns: Netns, args: readonly string[]) => runProgram(NODE_BIN, [...args, '--network-namespace', ns.name]) },
    {
      name: 'library',
      run: async (ns: Netns, args: readonly string[]) => {
        const t = await openNamespace({ networkNamespace: `/var/run/netns/${ns.name}` });
        try {
          const config = await configFromArgs(args, {}, await t.hostFacts({ env: {} }));
          await t.apply(buildPlan(config.capture));
          return { exitCode: 0, stderr: '' };
        } finally {
          t.close();
        }
      },
    },
  ] as const;

  describe.each(RUNNERS)('$name', (runner) => {
    it.each(SWITCHES)('%s, dual stack, beside foreign rules', async (_n, first, second) => {
      await withNetns('switch', async (ns) => {
        await withNetns('fresh', async (ref) => {
          await foreign(ns);
          await foreign(ref);
          const a = await runner.run(ns, [...first, '--enable-ipv6=true']);
          expect(a.exitCode, a.stderr).toBe(0);
          const b = await runner.run(ns, [...second, '--enable-ipv6=true']);
          expect(b.exitCode, b.stderr).toBe(0);
          const fresh = await runner.run(ref, [...second, '--enable-ipv6=true']);
          expect(fresh.exitCode, fresh.stderr).toBe(0);
          expect(await snapshot(ns)).toBe(await snapshot(ref));
        });
      });
    });
  });

  it.each(PROGRAMS)('$name: an empty table of ours the plan does not write (left by a run killed before deleting it) is deleted', async (program) => {
    await withNetns('leftover', async (ns) => {
      await withNetns('leftref', async (ref) => {
        // What a run killed between emptying mangle and deleting it leaves: an empty mangle table.
        expect((await ns.run('iptables-nft', ['-t', 'mangle', '-A', 'OUTPUT', '-j', 'RETURN'])).exitCode).toBe(0);
        expect((await ns.run('iptables-nft', ['-t', 'mangle', '-D', 'OUTPUT', '-j', 'RETURN'])).exitCode).toBe(0);
        expect((await ns.run('iptables-nft-save', [])).stdout).toContain('*mangle');
        const r = await runProgram(program.argv, [...REDIRECT, '--enable-ipv6=false'], ns);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/ipv4: deleted the empty table mangle/);
        expect((await runProgram(program.argv, [...REDIRECT, '--enable-ipv6=false'], ref)).exitCode).toBe(0);
        expect(await snapshot(ns)).toBe(await snapshot(ref));
      });
    });
  });

  it('dual stack then IPv4 only: our IPv6 rules and ::6 go, foreign ones stay', async () => {
    await withNetns('v6gone', async (ns) => {
      await withNetns('v4fresh', async (ref) => {
        await foreign(ns);
        await foreign(ref);
        expect((await runProgram([ENTRYPOINT], [...TPROXY, '--enable-ipv6=true'], ns)).exitCode).toBe(0);
        const r = await runProgram([ENTRYPOINT], [...TPROXY, '--enable-ipv6=false'], ns);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/ipv6: cleaned/);
        expect((await runProgram([ENTRYPOINT], [...TPROXY, '--enable-ipv6=false'], ref)).exitCode).toBe(0);
        expect(await snapshot(ns)).toBe(await snapshot(ref));
      });
    });
  });
});

describe.each(PROGRAMS)('diff ($name): 0 in sync, 1 drift, 2 error; --output json the same as one object', (program) => {
  const diff = (args: readonly string[]) => runProgram(program.argv, ['diff', ...args]);

  it('in sync after an apply; a foreign rule in ISTIO_OUTPUT and a stale fwmark rule are drift (+), a removed rule is drift (-)', async () => {
    await withNetns('diff', async (ns) => {
      expect((await runProgram(program.argv, [...REDIRECT, '--enable-ipv6=false', '--network-namespace', ns.name])).exitCode).toBe(0);
      const synced = await diff([...REDIRECT, '--enable-ipv6=false', '--network-namespace', ns.name]);
      expect(synced.exitCode, synced.stdout + synced.stderr).toBe(0);
      expect(synced.stdout).toContain('ipv4: in sync with the plan (nft backend)');
      expect(synced.stdout).toContain('ipv6: in sync with the plan (nft backend; the plan has no rules for this family)');
      await ns.run('iptables', ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-d', '10.9.9.9/32', '-j', 'RETURN']);
      await ns.run('iptables', ['-t', 'nat', '-D', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001']);
      await ns.run('ip', ['rule', 'add', 'fwmark', '1337', 'lookup', '133']);
      const drift = await diff([...REDIRECT, '--enable-ipv6=false', '--network-namespace', ns.name]);
      expect(drift.exitCode, drift.stderr).toBe(1);
      expect(drift.stdout).toContain('  + nat ISTIO_OUTPUT: -d 10.9.9.9/32 -j RETURN');
      expect(drift.stdout).toContain('  - nat ISTIO_REDIRECT: -p tcp -j REDIRECT --to-ports 15001');
      expect(drift.stdout).toContain('routing: + ip -4 rule add fwmark 1337 lookup 133');
      const json = await diff([...REDIRECT, '--enable-ipv6=false', '--network-namespace', ns.name, '--output', 'json']);
      expect(json.exitCode).toBe(1);
      expect(json.stdout.trim().split('\n')).toHaveLength(1);
      const doc = JSON.parse(json.stdout) as { inSync: boolean; families: { family: string; status: string; rules: { mark: string; chain: string; rule: string }[] }[]; routes: { mark: string; command: string }[] };
      expect(doc.inSync).toBe(false);
      expect(doc.families.map((f) => [f.family, f.status])).toEqual([
        ['ipv4', 'drift'],
        ['ipv6', 'exact'],
      ]);
      expect(doc.families[0]?.rules).toContainEqual(expect.objectContaining({ mark: '+', chain: 'ISTIO_OUTPUT', rule: '-d 10.9.9.9/32 -j RETURN' }));
      expect(doc.routes).toEqual([expect.objectContaining({ mark: '+', command: 'ip -4 rule add fwmark 1337 lookup 133' })]);
    });
  });

  it('2 for a namespace that does not exist, a bad flag, and a failing ip6tables-save (never "absent")', async () => {
    const missing = await diff([...REDIRECT, '--network-namespace', 'iit-no-such-namespace']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/invalid value "iit-no-such-namespace" for --network-namespace/);
    const bad = await diff([...REDIRECT, '-b', '80x']);
    expect(bad.exitCode).toBe(2);
    const dir = mkdtempSync(join(tmpdir(), 'iit-difffail-'));
    temporary.push(dir);
    writeFileSync(join(dir, 'ip6tables-nft-save'), '#!/bin/sh\necho "ip6tables-save: injected" >&2\nexit 1\n');
    chmodSync(join(dir, 'ip6tables-nft-save'), 0o755);
    await withNetns('diff6', async (ns) => {
      const r = await runProgram(program.argv, ['diff', ...TPROXY, '--enable-ipv6=true', '--network-namespace', ns.name], undefined, { PATH: `${dir}:${PATH}` });
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/ip6tables-nft-save failed \(exit 1\): ip6tables-save: injected/);
      // A family the plan does not have is then not compared, and says so.
      const v4 = await runProgram(program.argv, ['diff', ...TPROXY, '--enable-ipv6=false', '--network-namespace', ns.name], undefined, { PATH: `${dir}:${PATH}` });
      expect(v4.stdout).toMatch(/ipv6: not compared \(nft backend; ip6tables-nft-save \(exit 1\): ip6tables-save: injected\)/);
    });
  });
});

describe.each(PROGRAMS)('rollback removes the tables a run created ($name)', (program) => {
  it('a failing second restore, rolled back, leaves no table that was not there before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iit-fail6-'));
    temporary.push(dir);
    writeFileSync(join(dir, 'ip6tables-nft-restore'), '#!/bin/sh\ncat >/dev/null\necho "ip6tables-restore: line 3 failed: injected" >&2\nexit 1\n');
    chmodSync(join(dir, 'ip6tables-nft-restore'), 0o755);
    await withNetns('notables', async (ns) => {
      // A table of someone else's that must stay, and none of the others.
      await ns.run('iptables', ['-t', 'raw', '-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'RETURN']);
      const tables = async () => (await ns.run('nft', ['list', 'tables'])).stdout;
      const before = await tables();
      const pristine = await snapshot(ns);
      const r = await runProgram(program.argv, [...TPROXY, '--enable-ipv6=true'], ns, { PATH: `${dir}:${PATH}` });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/ip6tables-nft-restore --noflush failed \(exit 1\): ip6tables-restore: line 3 failed: injected/);
      expect(r.stderr).toMatch(/rolled back: the namespace is as it was before this run/);
      expect(await tables()).toBe(before);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });
});

describe('the namespace path is opened without blocking and checked before use', () => {
  it.each(PROGRAMS.map((p) => [p.name, p.argv] as const))('%s: a FIFO given as --network-namespace is refused at once, named', async (_n, argv) => {
    const dir = mkdtempSync(join(tmpdir(), 'iit-fifo-'));
    temporary.push(dir);
    const fifo = join(dir, 'ns');
    await execa('mkfifo', [fifo]);
    const t0 = Date.now();
    const r = await runProgram(argv, [...REDIRECT, '--network-namespace', fifo]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`istio-iptables: invalid value "${fifo}" for --network-namespace: expected an existing network namespace (a name under /var/run/netns or a path), but ${fifo} is not a network namespace (a FIFO)`);
  });

  it.each(PROGRAMS.map((p) => [p.name, p.argv] as const))('%s: another kind of namespace is refused, named', async (_n, argv) => {
    const r = await runProgram(argv, [...REDIRECT, '--network-namespace', '/proc/self/ns/uts']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/for --network-namespace: .* \/proc\/self\/ns\/uts is a namespace, but not a network namespace$/);
  });
});
