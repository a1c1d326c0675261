import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { conformanceCases, ROOT, runCli } from '../support/cli.js';
import { BACKENDS, loadIstioState, savedState, snapshot, withNetns, type Netns } from './netns.js';

/**
 * Applying for real: the CLI programs a namespace (--network-namespace), and we read back what
 * the kernel holds. Every namespace is made for one test and removed afterwards.
 */

async function apply(ns: Netns, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return runCli([...args, '--network-namespace', ns.name], env);
}

const TPROXY_DUAL = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=true', '--redirect-dns', '--dns-servers', '10.96.0.10,fd00::a'];
const REDIRECT_V4 = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false'];

describe('apply reproduces Istio for every conformance case', () => {
  const cases = conformanceCases();
  it.each(cases.map((c) => [`${c.suite}/${c.name}`, c] as const))('%s: kernel state equals Istio payload, rerun changes nothing', async (_l, c) => {
    const args = c.args.filter((a) => a !== '--dry-run');
    await withNetns('istio', async (istio) => {
      await withNetns('ours', async (ours) => {
        await loadIstioState(istio, c);
        const first = await apply(ours, args);
        expect(first.code, first.stderr).toBe(0);
        expect(await savedState(ours, c)).toEqual(await savedState(istio, c));
        const before = await snapshot(ours);
        const again = await apply(ours, args);
        expect(again.code, again.stderr).toBe(0);
        // The saved form predicted for every rule matches the kernel's: a rerun finds no drift.
        expect(again.stderr).not.toMatch(/drift|reconciled|applied/);
        expect(again.stderr).toMatch(/ipv4: unchanged/);
        expect(await snapshot(ours)).toBe(before);
      });
    });
  });
});

describe.each([
  ['TPROXY dual stack', TPROXY_DUAL],
  ['REDIRECT IPv4', REDIRECT_V4],
])('lifecycle: %s', (_name, args) => {
  it('a rerun changes nothing and exits 0', async () => {
    await withNetns('rerun', async (ns) => {
      expect((await apply(ns, args)).code).toBe(0);
      const once = await snapshot(ns);
      const r = await apply(ns, args);
      expect(r.code).toBe(0);
      expect(await snapshot(ns)).toBe(once);
    });
  });

  it('drift in our chains is healed to the exact state', async () => {
    await withNetns('drift', async (ns) => {
      expect((await apply(ns, args)).code).toBe(0);
      const good = await snapshot(ns);
      await ns.run('iptables', ['-t', 'nat', '-I', 'ISTIO_OUTPUT', '1', '-j', 'RETURN']);
      await ns.run('iptables', ['-t', 'nat', '-D', 'ISTIO_INBOUND', '1']);
      await ns.run('iptables', ['-t', 'nat', '-N', 'ISTIO_STALE']);
      expect(await snapshot(ns)).not.toBe(good);
      const r = await apply(ns, args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/reconciled/);
      expect(await snapshot(ns)).toBe(good);
    });
  });

  it('--reconcile=false refuses drift, names it and touches nothing', async () => {
    await withNetns('norecon', async (ns) => {
      expect((await apply(ns, args)).code).toBe(0);
      await ns.run('iptables', ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-j', 'RETURN']);
      const drifted = await snapshot(ns);
      const r = await apply(ns, [...args, '--reconcile=false']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ISTIO_OUTPUT differs.*nothing was changed/);
      expect(await snapshot(ns)).toBe(drifted);
    });
  });

  it('--cleanup-only restores the pristine state, routing included, and leaves foreign rules', async () => {
    await withNetns('cleanup', async (ns) => {
      await ns.run('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'RETURN']);
      await ns.run('ip', ['rule', 'add', 'fwmark', '7', 'lookup', '77']);
      const pristine = await snapshot(ns);
      expect((await apply(ns, args)).code).toBe(0);
      expect(await snapshot(ns)).not.toBe(pristine);
      const r = await apply(ns, [...args, '--cleanup-only']);
      expect(r.code, r.stderr).toBe(0);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('--dry-run with a namespace touches nothing', async () => {
    await withNetns('dry', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await apply(ns, [...args, '--dry-run']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('*nat');
      expect(await snapshot(ns)).toBe(pristine);
    });
  });
});

/** An environment whose PATH finds the fakes in `dir` before the real programs. */
const fakesFirst = (dir: string): NodeJS.ProcessEnv => ({ PATH: `${dir}:${process.env['PATH'] ?? ''}` });

/** A directory of fake programs placed first on PATH: each fails for the arguments given. */
function fakeBin(scripts: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'iit-fake-'));
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}

/**
 * A fake `ip` failing, as ip does (exit 2, "RTNETLINK answers: ..."), any command that matches a
 * shell pattern (family flag included, e.g. *"-6 route add"*); everything else goes to the real ip.
 */
function failingIp(pattern: string): string {
  return [`case "$*" in ${pattern}) echo "RTNETLINK answers: injected" >&2; exit 2;; esac`, 'exec /usr/sbin/ip "$@"'].join('\n');
}

describe('injected failures leave nothing behind', () => {
  it('a failing ip6tables-restore after the IPv4 restore succeeded', async () => {
    const dir = fakeBin({
      'ip6tables-nft-restore': 'case "$*" in *--noflush*) cat >/dev/null; echo "ip6tables-restore: line 3 failed: injected" >&2; exit 1;; esac; exec /usr/sbin/ip6tables-nft-restore "$@"',
    });
    await withNetns('fail6', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await apply(ns, TPROXY_DUAL, fakesFirst(dir));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ip6tables-nft-restore --noflush failed \(exit 1\): ip6tables-restore: line 3 failed: injected/);
      expect(r.stderr).toMatch(/rolled back/);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('a failing `ip route add` after rules and fwmark rules were added', async () => {
    const dir = fakeBin({
      ip: failingIp('*"route add local"*'),
    });
    await withNetns('failroute', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await apply(ns, TPROXY_DUAL, fakesFirst(dir));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ip -4 route add local 0.0.0.0\/0 dev lo table 133 failed \(exit 2\): RTNETLINK answers: injected/);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('a failing reconcile puts the drifted state back exactly', async () => {
    await withNetns('failrecon', async (ns) => {
      expect((await apply(ns, TPROXY_DUAL)).code).toBe(0);
      await ns.run('iptables', ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-j', 'RETURN']);
      const drifted = await snapshot(ns);
      const dir = fakeBin({ 'iptables-nft-restore': 'case "$*" in *--noflush*) cat >/dev/null; echo injected >&2; exit 4;; esac; exec /usr/sbin/iptables-nft-restore "$@"' });
      const r = await apply(ns, TPROXY_DUAL, fakesFirst(dir));
      expect(r.code).toBe(1);
      expect(await snapshot(ns)).toBe(drifted);
    });
  });

  it('a missing iptables binary is a clear error', async () => {
    const dir = fakeBin({});
    await withNetns('nobin', async (ns) => {
      const r = await apply(ns, [...REDIRECT_V4, '--force-iptables-binary', 'legacy'], { PATH: dir.concat(':/nonexistent') });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not found|No such file/);
    });
  });
});

describe.each(BACKENDS)('backend $name', (backend) => {
  it('existing rules in a backend send ours to it', async () => {
    await withNetns(`pick-${backend.name}`, async (ns) => {
      const seed = await ns.run(backend.restore.ipv4, ['--noflush'], '*filter\n-A INPUT -p tcp --dport 9 -j ACCEPT\nCOMMIT\n');
      expect(seed.exitCode, seed.stderr).toBe(0);
      const r = await apply(ns, REDIRECT_V4);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`iptables backend: ${backend.name}`);
      const mine = await ns.run(backend.save.ipv4, []);
      expect(mine.stdout).toContain(':ISTIO_OUTPUT');
      const other = BACKENDS.find((b) => b.name !== backend.name);
      const theirs = await ns.run(other?.save.ipv4 ?? '', []);
      expect(theirs.stdout).not.toContain('ISTIO');
    });
  });
});

describe('xtables lock (legacy)', () => {
  it.each([
    ['the default lock file', undefined],
    ['XTABLES_LOCKFILE', join(mkdtempSync(join(tmpdir(), 'iit-lock-')), 'xtables.lock')],
  ])('waits while %s is held', async (_label, lockFile) => {
    await withNetns('lock', async (ns) => {
      const file = lockFile ?? '/run/xtables.lock';
      // Hold the lock for 2 s (flock, bounded), then apply: without waiting, legacy restore would fail at once.
      const holder = execa('flock', ['-x', file, 'sleep', '2'], { reject: false });
      await new Promise((r) => setTimeout(r, 300));
      const held = await execa('flock', ['-n', file, 'true'], { reject: false });
      expect(held.exitCode).not.toBe(0);
      const r = await apply(ns, [...REDIRECT_V4, '--force-iptables-binary', 'legacy'], lockFile === undefined ? {} : { XTABLES_LOCKFILE: lockFile });
      await holder;
      expect(r.code, r.stderr).toBe(0);
      const saved = await ns.run('iptables-legacy-save', []);
      expect(saved.stdout).toContain(':ISTIO_OUTPUT');
    });
  });
});

/** The two ways to run the program: the Node bin and the compiled entrypoint of the image. */
const PROGRAMS = [
  { name: 'node bin', argv: [process.execPath, join(ROOT, 'bin/istio-iptables.js')] },
  { name: 'entrypoint', argv: [join(ROOT, 'dist/entrypoint/istio-iptables')] },
] as const;

describe.each(PROGRAMS)('validation probe ($name)', (program) => {
  const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const run = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
    execa(program.argv[0], [...program.argv.slice(1), ...args], { reject: false, env: { PATH, ...env }, extendEnv: false, timeout: 60_000 });
  /**
   * The run under strace: every program it started, as its argv (how often the probe enters the
   * namespace: nsenter under Node, the runtime's own spawn in the entrypoint, which strace sees
   * exec this executable again).
   */
  const traced = async (args: readonly string[], env: NodeJS.ProcessEnv = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'iit-strace-'));
    const out = join(dir, 'trace');
    try {
      const r = await execa('strace', ['-f', '-qq', '-s', '256', '-e', 'trace=execve', '-o', out, ...program.argv, ...args], { reject: false, env: { PATH, ...env }, extendEnv: false, timeout: 60_000 });
      const execs = readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => / execve\(.* = 0$/.test(l))
        .map((l) => [...(/execve\("[^"]*", \[(.*)\], /.exec(l)?.[1] ?? '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '').join(' '));
      return { ...r, execs };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it.each([
    ['--network-namespace', (ns: Netns) => ({ args: ['--network-namespace', ns.name], env: {} })],
    ['NETWORK_NAMESPACE', (ns: Netns) => ({ args: [], env: { NETWORK_NAMESPACE: ns.name } })],
  ] as const)('namespace from %s: 126 without the rules, 0 once applied; the probe enters the namespace once, given the parsed configuration', async (_how, given) => {
    await withNetns('probe', async (ns) => {
      const { args, env } = given(ns);
      const before = await traced([...REDIRECT_V4, '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s', ...args], env);
      expect(before.exitCode, before.stderr).toBe(126);
      expect(before.stderr).toMatch(/validation failed.*127\.0\.0\.6:15002 did not reach 127\.0\.0\.1 ports 15001, 15006 within 1000 ms/);
      // One probe in the namespace, given its parameters (under Node through nsenter, which execs it); nothing nested, no flags re-read.
      const probe = `${program.argv.join(' ')} __probe family=ipv4 listen=15001,15006 port=15002 timeout=1000 uid=1337 gid=1337`;
      expect(before.execs.filter((c) => c.includes('__probe '))).toEqual(program.name === 'node bin' ? [`nsenter --net=/proc/self/fd/3 -- ${probe}`, probe] : [probe]);
      expect(before.execs.filter((c) => c.includes('--run-validation'))).toHaveLength(1);
      const applied = await run([...REDIRECT_V4, '--run-validation', '--probe-timeout', '3s', ...args], env);
      expect(applied.exitCode, applied.stderr).toBe(0);
      expect(applied.stderr).toMatch(/validation passed: 127\.0\.0\.6:15002 reached our listener on 127\.0\.0\.1 \(15001, 15006\)/);
    });
  });

  it('inside the namespace (as the validation container runs): 126 without the rules, 0 once applied, the client as the proxy uid', async () => {
    await withNetns('probein', async (ns) => {
      const inside = (args: readonly string[]) =>
        execa('ip', ['netns', 'exec', ns.name, ...program.argv, ...args], { reject: false, env: { PATH }, extendEnv: false, timeout: 60_000 });
      const before = await inside([...REDIRECT_V4, '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s']);
      expect(before.exitCode, before.stderr).toBe(126);
      expect((await inside(REDIRECT_V4)).exitCode).toBe(0);
      const after = await inside([...REDIRECT_V4, '--run-validation', '--skip-rule-apply', '--probe-timeout', '3s']);
      expect(after.exitCode, after.stderr).toBe(0);
      // The rules send only the proxy uid's traffic on lo to a listener: a client as another uid (a later -u wins) fails.
      const asRoot = await inside([...REDIRECT_V4, '-u', '0', '-g', '0', '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s']);
      expect(asRoot.exitCode, asRoot.stderr).toBe(126);
    });
  });

  // IPv4 not captured at all: the probe goes to ::6 over IPv6. The client must connect from ::1, as
  // Istio's does: left to the kernel its source is ::6 itself, which the rules let pass untouched
  // (the proxy's inbound passthrough), and the probe failed with the rules in place.
  it.each(['REDIRECT', 'TPROXY'])('IPv6 only (%s): 126 without the rules, 0 once applied, 126 for a client that is not the proxy', async (mode) => {
    await withNetns('probe6', async (ns) => {
      const inside = (args: readonly string[]) =>
        execa('ip', ['netns', 'exec', ns.name, ...program.argv, ...args], { reject: false, env: { PATH }, extendEnv: false, timeout: 60_000 });
      const v6 = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', mode, '-i', 'fd00::/8', '-b', '', '--enable-ipv6', '--run-validation'];
      const before = await inside([...v6, '--skip-rule-apply', '--probe-timeout', '1s']);
      expect(before.exitCode, before.stderr).toBe(126);
      expect(before.stderr).toMatch(/validation failed.*::6:15002 did not reach ::1 ports 15001, 15006 within 1000 ms/);
      const applied = await inside([...v6, '--probe-timeout', '3s']);
      expect(applied.exitCode, applied.stderr).toBe(0);
      expect(applied.stderr).toMatch(/validation passed: ::6:15002 reached our listener on ::1 \(15001, 15006\)/);
      const asRoot = await inside([...v6, '-u', '0', '-g', '0', '--skip-rule-apply', '--probe-timeout', '1s']);
      expect(asRoot.exitCode, asRoot.stderr).toBe(126);
    });
  });

  it('the probe subcommand alone: strict about its parameters, reads no environment', async () => {
    const bad = await run(['__probe', 'family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1337'], { NETWORK_NAMESPACE: 'nonexistent' });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/__probe: gid="": expected a number/);
    const extra = await run(['__probe', 'family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1337', 'gid=1337', '--network-namespace=x']);
    expect(extra.exitCode).toBe(1);
    expect(extra.stderr).toMatch(/__probe: unexpected argument "--network-namespace=x"/);
  });
});

describe.each(PROGRAMS)('inside the namespace, as the init container runs ($name; the entrypoint takes the fresh path in a fresh namespace)', (program) => {
  const inside = (ns: Netns, args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
    execa('ip', ['netns', 'exec', ns.name, ...program.argv, ...args], { reject: false, env, timeout: 30_000 });

  it.each([
    ['TPROXY dual stack', TPROXY_DUAL],
    ['REDIRECT IPv4', REDIRECT_V4],
  ])('%s: a fresh apply equals the careful path, a rerun changes nothing', async (_n, args) => {
    await withNetns('fast', async (fast) => {
      await withNetns('careful', async (careful) => {
        const a = await inside(fast, args);
        expect(a.exitCode, a.stderr).toBe(0);
        // The entrypoint knows the backend from the namespace's /proc/net, without a save; Node reads it with the saves.
        expect(a.stderr).toContain(program.name === 'entrypoint' ? 'no legacy tables (/proc/net/ip{,6}_tables_names (this namespace)); nft preferred' : 'no rules in either backend; nft preferred');
        expect((await apply(careful, args)).code).toBe(0);
        const state = await snapshot(fast);
        expect(state).toBe(await snapshot(careful));
        const b = await inside(fast, args);
        expect(b.exitCode, b.stderr).toBe(0);
        expect(b.stderr).toMatch(/ipv4: unchanged/);
        expect(await snapshot(fast)).toBe(state);
      });
    });
  });

  it('switching REDIRECT to TPROXY (one table new, one drifted) ends in the exact TPROXY state', async () => {
    await withNetns('switch', async (ns) => {
      await withNetns('ref', async (ref) => {
        expect((await inside(ns, REDIRECT_V4)).exitCode).toBe(0);
        const tproxyV4 = REDIRECT_V4.map((a) => (a === 'REDIRECT' ? 'TPROXY' : a));
        const r = await inside(ns, tproxyV4);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/reconciled/);
        expect((await apply(ref, tproxyV4)).code).toBe(0);
        expect(await snapshot(ns)).toBe(await snapshot(ref));
      });
    });
  });

  // A fake `ip` reaches only the Node bin: the entrypoint routes over netlink (its failures: netlink.test.ts).
  const viaIp = program.name === 'node bin';
  const injected: [string, Record<string, string>, RegExp][] = [
    ['ip6tables-nft-restore', { 'ip6tables-nft-restore': 'cat >/dev/null; echo "line 2 failed: injected" >&2; exit 1' }, /ip6tables-nft-restore --noflush failed/],
  ];
  if (viaIp) {
    injected.push(['ip -6 route add', { ip: failingIp('*"-6 route add"*') }, /route add local ::\/0 .*failed/]);
    injected.push(['ip -4 rule add', { ip: failingIp('*"-4 rule add"*') }, /ip -4 rule add fwmark 1337 lookup 133 failed/]);
  }
  it.each(injected)('a failing %s leaves nothing behind', async (_n, scripts, message) => {
    const dir = fakeBin(scripts);
    await withNetns('fastfail', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await inside(ns, TPROXY_DUAL, fakesFirst(dir));
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

});

describe('native nftables (--native-nftables)', () => {
  const NFT_TPROXY = [...TPROXY_DUAL, '--native-nftables'];
  const NFT_REDIRECT = [...REDIRECT_V4, '--native-nftables'];

  it.each(
    conformanceCases()
      .filter((c) => c.suite === 'istio')
      .map((c) => [c.name, c] as const),
  )('%s: applied for real, the ruleset equals the dry-run script loaded by nft; rerun unchanged', async (_n, c) => {
    const args = [...c.args.filter((a) => a !== '--dry-run'), '--native-nftables'];
    await withNetns('nftapply', async (ns) => {
      await withNetns('nftref', async (ref) => {
        const dry = await runCli([...args, '--dry-run', '--output', 'json']);
        const script = (JSON.parse(dry.stdout) as { nftScript: string }).nftScript;
        expect((await ref.run('nft', ['-f', '-'], script)).exitCode).toBe(0);
        const r = await apply(ns, args);
        expect(r.code, r.stderr).toBe(0);
        const list = async (n: Netns) => (await n.run('nft', ['list', 'ruleset'])).stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
        expect(await list(ns)).toBe(await list(ref));
        const again = await apply(ns, args);
        expect(again.stderr).toMatch(/nftables: unchanged/);
      });
    });
  });

  it.each([
    ['TPROXY dual stack', NFT_TPROXY],
    ['REDIRECT IPv4', NFT_REDIRECT],
  ])('%s: rerun, drift healed, --reconcile=false refuses, cleanup back to pristine', async (_n, args) => {
    await withNetns('nftlife', async (ns) => {
      await ns.run('nft', ['add', 'table', 'inet', 'foreign']);
      const pristine = await snapshot(ns);
      expect((await apply(ns, args)).code).toBe(0);
      const good = await snapshot(ns);
      expect((await apply(ns, args)).code).toBe(0);
      expect(await snapshot(ns)).toBe(good);
      await ns.run('nft', ['add', 'rule', 'inet', 'istio-proxy-nat', 'istio-output', 'return']);
      const drifted = await snapshot(ns);
      const refused = await apply(ns, [...args, '--reconcile=false']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/differ from this configuration/);
      expect(await snapshot(ns)).toBe(drifted);
      const healed = await apply(ns, args);
      expect(healed.stderr).toMatch(/nftables: reconciled/);
      expect(await snapshot(ns)).toBe(good);
      expect((await apply(ns, [...args, '--cleanup-only'])).code).toBe(0);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('a failing `ip route add` after the nft load leaves nothing behind', async () => {
    const dir = fakeBin({ ip: failingIp('*"route add local"*') });
    await withNetns('nftfail', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await apply(ns, NFT_TPROXY, fakesFirst(dir));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/route add local .* failed \(exit 2\): RTNETLINK answers: injected/);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('a missing nft is a clear error', async () => {
    const dir = fakeBin({ ip: 'exec /usr/sbin/ip "$@"' });
    await withNetns('nonft', async (ns) => {
      const r = await apply(ns, NFT_REDIRECT, { PATH: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/nft not found \(install nftables/);
    });
  });
});

describe('diff: the namespace against the plan, rule by rule', () => {
  it('not applied, in sync, then drift and a missing route, each named; exit 0 only in sync', async () => {
    await withNetns('diff', async (ns) => {
      const diff = () => apply(ns, ['diff', ...TPROXY_DUAL.slice(1)]);
      const before = await diff();
      expect(before.code).toBe(1);
      expect(before.stdout).toMatch(/^ipv4: not applied/m);
      expect(before.stdout).toContain('  - nat ISTIO_REDIRECT: -p tcp -j REDIRECT --to-ports 15001');
      expect((await apply(ns, TPROXY_DUAL)).code).toBe(0);
      const synced = await diff();
      expect(synced.code, synced.stdout).toBe(0);
      expect(synced.stdout).toBe('ipv4: in sync with the plan (nft backend)\nipv6: in sync with the plan (nft backend)\n');
      await ns.run('iptables', ['-t', 'nat', '-I', 'ISTIO_OUTPUT', '2', '-j', 'RETURN']);
      await ns.run('ip6tables', ['-t', 'mangle', '-D', 'ISTIO_DIVERT', '-j', 'ACCEPT']);
      await ns.run('ip', ['-6', 'rule', 'del', 'fwmark', '1337', 'lookup', '133']);
      const drift = await diff();
      expect(drift.code).toBe(1);
      expect(drift.stdout).toContain('ipv4: drift');
      expect(drift.stdout).toContain('  + nat ISTIO_OUTPUT: -j RETURN');
      expect(drift.stdout).toContain('  - mangle ISTIO_DIVERT: -j ACCEPT');
      expect(drift.stdout).toContain('routing: - ip -6 rule add fwmark 1337 lookup 133');
    });
  });
});

describe('--network-namespace as a path', () => {
  it('programs the namespace the path names (via nsenter), and a rerun finds it unchanged', async () => {
    await withNetns('path', async (ns) => {
      const path = `/var/run/netns/${ns.name}`;
      const first = await runCli([...REDIRECT_V4, '--network-namespace', path]);
      expect(first.code, first.stderr).toBe(0);
      expect((await ns.run('iptables-save', [])).stdout).toContain(':ISTIO_OUTPUT');
      const again = await runCli([...REDIRECT_V4, '--network-namespace', path]);
      expect(again.stderr).toMatch(/ipv4: unchanged/);
    });
  });
});
