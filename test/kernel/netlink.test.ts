import { chmodSync, copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../support/cli.js';
import { snapshot, withNetns, type Netns } from './netns.js';

/**
 * The entrypoint does the routing steps over rtnetlink itself (native/netlink.c), where the Node
 * CLI runs `ip`. Both must leave the kernel in the same state (rules with their priorities and
 * protocol, routes with their type, scope and protocol, lo's addresses), fail with the same
 * messages, and roll back exactly what the run added. And the entrypoint must do it without root.
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const TPROXY_V4 = [...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=false'];
const TPROXY_DUAL = [...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=true'];
const REDIRECT_DUAL = [...SIDECAR, '-m', 'REDIRECT', '--enable-ipv6=true'];

/** A PATH with the iptables programs and nft but no `ip`: the entrypoint must not need it. */
function withoutIp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'iit-noip-'));
  temporary.push(dir);
  for (const name of ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save']) symlinkSync('/usr/sbin/xtables-nft-multi', join(dir, name));
  for (const name of ['iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy-save', 'ip6tables-legacy-save']) symlinkSync('/usr/sbin/xtables-legacy-multi', join(dir, name));
  symlinkSync('/usr/sbin/nft', join(dir, 'nft'));
  return dir;
}
const temporary: string[] = [];
const NO_IP = withoutIp();

/** The entrypoint inside the namespace; without `ip` on its PATH unless the test gives one. */
const entrypoint = (ns: Netns, args: readonly string[], env: NodeJS.ProcessEnv = { PATH: NO_IP }) =>
  execa('/usr/sbin/ip', ['netns', 'exec', ns.name, ENTRYPOINT, ...args], { reject: false, env, timeout: 30_000 });
const node = (ns: Netns, args: readonly string[], env: NodeJS.ProcessEnv = {}) => runCli([...args, '--network-namespace', ns.name], env);

/** The run's last line: its error, as the user reads it. */
const lastLine = (stderr: string): string => stderr.trim().split('\n').at(-1) ?? '';
/** The routing lines a run logged ("added: ip -4 rule add ..."), in order. */
const routingLog = (stderr: string): string[] => stderr.split('\n').filter((l) => /\t(added|removed): ip /.test(l)).map((l) => l.slice(l.indexOf('\t') + 1));

afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** A directory of fake programs placed first on PATH. */
function fakeBin(scripts: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'iit-nlfake-'));
  temporary.push(dir);
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}

describe('netlink (entrypoint) and ip (Node CLI) leave the same kernel state', () => {
  it.each([
    ['TPROXY IPv4', TPROXY_V4],
    ['TPROXY dual stack', TPROXY_DUAL],
    ['REDIRECT dual stack (the ::6 address only)', REDIRECT_DUAL],
    ['TPROXY dual stack, native nftables', [...TPROXY_DUAL, '--native-nftables']],
    // A table past 255 goes in an attribute rather than the header; the largest mark.
    ['TPROXY dual stack, table 1000, mark 0xffffffff', [...TPROXY_DUAL, '-r', '1000', '-t', '4294967295']],
  ])('%s: apply, rerun, cleanup', async (_n, args) => {
    await withNetns('nl', async (nl) => {
      await withNetns('ip', async (ip) => {
        const pristine = await snapshot(nl);
        const a = await entrypoint(nl, args);
        const b = await node(ip, args);
        expect(a.exitCode, a.stderr).toBe(0);
        expect(b.code, b.stderr).toBe(0);
        const applied = await snapshot(nl);
        expect(applied).toBe(await snapshot(ip));
        expect(applied).not.toBe(pristine);
        // The same steps (the fast path logs them per family, the careful path in plan order).
        expect(routingLog(a.stderr).sort()).toEqual(routingLog(b.stderr).sort());
        // A rerun changes nothing and exits 0.
        const again = await entrypoint(nl, args);
        expect(again.exitCode, again.stderr).toBe(0);
        expect(routingLog(again.stderr)).toEqual([]);
        expect(await snapshot(nl)).toBe(applied);
        // Cleanup: back to pristine, the same steps removed as by ip.
        const clean = await entrypoint(nl, [...args, '--cleanup-only']);
        const cleanIp = await node(ip, [...args, '--cleanup-only']);
        expect(clean.exitCode, clean.stderr).toBe(0);
        expect(routingLog(clean.stderr).sort()).toEqual(routingLog(cleanIp.stderr).sort());
        expect(await snapshot(nl)).toBe(pristine);
        expect(await snapshot(ip)).toBe(pristine);
      });
    });
  });

  it('TPROXY dual stack: the rule priority the kernel picks, below foreign rules, is the same', async () => {
    const foreign = async (ns: Netns) => {
      await ns.run('ip', ['-4', 'rule', 'add', 'pref', '1000', 'fwmark', '7', 'lookup', '77']);
      await ns.run('ip', ['-6', 'rule', 'add', 'pref', '30000', 'iif', 'lo', 'lookup', '78']);
    };
    await withNetns('prio', async (nl) => {
      await withNetns('prioip', async (ip) => {
        await foreign(nl);
        await foreign(ip);
        expect((await entrypoint(nl, TPROXY_DUAL)).exitCode).toBe(0);
        expect((await node(ip, TPROXY_DUAL)).code).toBe(0);
        const rules = (await nl.run('ip', ['-4', 'rule'])).stdout;
        expect(rules).toContain('999:\tfrom all fwmark 0x539 lookup 133');
        expect(await snapshot(nl)).toBe(await snapshot(ip));
      });
    });
  });

  it('cleanup removes exactly ours and keeps foreign rules, routes and addresses', async () => {
    await withNetns('foreign', async (ns) => {
      await ns.run('ip', ['-4', 'rule', 'add', 'fwmark', '7', 'lookup', '77']);
      await ns.run('ip', ['-6', 'rule', 'add', 'fwmark', '1337', 'lookup', '134']);
      await ns.run('ip', ['-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '77']);
      await ns.run('ip', ['-4', 'route', 'add', 'blackhole', '10.0.0.0/8', 'table', '133']);
      await ns.run('ip', ['-6', 'addr', 'add', '::7/128', 'dev', 'lo']);
      const pristine = await snapshot(ns);
      expect((await entrypoint(ns, TPROXY_DUAL)).exitCode).toBe(0);
      expect(await snapshot(ns)).not.toBe(pristine);
      const r = await entrypoint(ns, [...TPROXY_DUAL, '--cleanup-only']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('--network-namespace (a name or a path): the socket opened in that namespace, the same state as ip', async () => {
    await withNetns('byname', async (a) => {
      await withNetns('bypath', async (b) => {
        await withNetns('ref', async (ref) => {
          const byName = await execa(ENTRYPOINT, [...TPROXY_DUAL, '--network-namespace', a.name], { reject: false, timeout: 30_000 });
          const byPath = await execa(ENTRYPOINT, [...TPROXY_DUAL, '--network-namespace', `/var/run/netns/${b.name}`], { reject: false, timeout: 30_000 });
          expect(byName.exitCode, byName.stderr).toBe(0);
          expect(byPath.exitCode, byPath.stderr).toBe(0);
          expect((await node(ref, TPROXY_DUAL)).code).toBe(0);
          const expected = await snapshot(ref);
          expect(await snapshot(a)).toBe(expected);
          expect(await snapshot(b)).toBe(expected);
          // diff reads the routing over netlink there too.
          const diff = await execa(ENTRYPOINT, ['diff', ...TPROXY_DUAL.slice(1), '--network-namespace', a.name], { reject: false, timeout: 30_000 });
          expect(diff.exitCode, diff.stdout + diff.stderr).toBe(0);
          await a.run('ip', ['-6', 'route', 'del', 'local', '::/0', 'dev', 'lo', 'table', '133']);
          await ref.run('ip', ['-6', 'route', 'del', 'local', '::/0', 'dev', 'lo', 'table', '133']);
          const drift = await execa(ENTRYPOINT, ['diff', ...TPROXY_DUAL.slice(1), '--network-namespace', a.name], { reject: false, timeout: 30_000 });
          const driftIp = await runCli(['diff', ...TPROXY_DUAL.slice(1), '--network-namespace', ref.name]);
          expect(drift.exitCode).toBe(1);
          expect(drift.stdout).toContain('routing: - ip -6 route add local ::/0 dev lo table 133');
          // (execa strips the last newline.)
          expect(`${drift.stdout}\n`).toBe(driftIp.stdout);
          // The entrypoint itself stayed in the host's namespace: the host has no rule of ours.
          expect((await execa('ip', ['-4', 'rule'])).stdout).not.toContain('lookup 133');
        });
      });
    });
  });
});

describe('netlink failures: the failing step named, what the kernel said, and the namespace left as it was', () => {
  /**
   * Run both with the same set-up (and fake programs first on PATH, if given; no `ip` for the
   * entrypoint); both must fail and leave `pristine`. Their last lines: the entrypoint's, then Node's.
   */
  async function bothFail(args: readonly string[], setup: (ns: Netns) => Promise<void>, fakes?: string): Promise<[string, string]> {
    const first = (path: string) => (fakes === undefined ? path : `${fakes}:${path}`);
    return withNetns('nlfail', async (nl) =>
      withNetns('ipfail', async (ip) => {
        await setup(nl);
        await setup(ip);
        const pristine = await snapshot(nl);
        const a = await entrypoint(nl, args, { PATH: first(NO_IP) });
        const b = await node(ip, args, { PATH: first(process.env['PATH'] ?? '') });
        expect(a.exitCode, a.stderr).toBe(1);
        expect(b.code, b.stderr).toBe(1);
        expect(await snapshot(nl)).toBe(pristine);
        expect(await snapshot(ip)).toBe(pristine);
        return [lastLine(a.stderr), lastLine(b.stderr)];
      }),
    );
  }

  it('lo down: the IPv6 local route is refused (extended ack), everything added before it is removed', async () => {
    const lines = await bothFail(TPROXY_DUAL, async (ns) => void (await ns.run('ip', ['link', 'set', 'lo', 'down'])));
    expect(lines).toEqual([
      'istio-iptables: ip -6 route add local ::/0 dev lo table 133 failed (netlink, ENETDOWN): Nexthop device is not up',
      'istio-iptables: ip -6 route add local ::/0 dev lo table 133 failed (exit 2): Error: Nexthop device is not up.',
    ]);
  });

  it('native nftables, lo down: the tables loaded are put back as well', async () => {
    const lines = await bothFail([...TPROXY_DUAL, '--native-nftables'], async (ns) => void (await ns.run('ip', ['link', 'set', 'lo', 'down'])));
    expect(lines).toEqual([
      'istio-iptables: ip -6 route add local ::/0 dev lo table 133 failed (netlink, ENETDOWN): Nexthop device is not up',
      'istio-iptables: ip -6 route add local ::/0 dev lo table 133 failed (exit 2): Error: Nexthop device is not up.',
    ]);
  });

  it('the fresh path stops a family at its failing step and undoes the steps before it, naming the failing one', async () => {
    await withNetns('nlfast', async (ns) => {
      await ns.run('ip', ['link', 'set', 'lo', 'down']);
      const pristine = await snapshot(ns);
      const r = await entrypoint(ns, [...TPROXY_DUAL, '--log_output_level=default:debug']);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('first attempt did not apply cleanly (ip -6 route add local ::/0 dev lo table 133 failed (netlink, ENETDOWN): Nexthop device is not up)');
      expect(r.stderr).not.toMatch(/undoing the first attempt was incomplete|rollback incomplete/);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('a conflicting route in table 133: File exists, and the foreign route stays', async () => {
    const lines = await bothFail(TPROXY_DUAL, async (ns) => void (await ns.run('ip', ['-4', 'route', 'add', 'unreachable', 'default', 'table', '133'])));
    expect(lines).toEqual([
      'istio-iptables: ip -4 route add local 0.0.0.0/0 dev lo table 133 failed (netlink, EEXIST): File exists',
      'istio-iptables: ip -4 route add local 0.0.0.0/0 dev lo table 133 failed (exit 2): RTNETLINK answers: File exists',
    ]);
  });

  it('a failing ip6tables restore after the routing was added: only what this run added is removed', async () => {
    // Some of the steps are already there (not this run's): they must stay.
    const setup = async (ns: Netns) => {
      await ns.run('ip', ['-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133']);
      await ns.run('ip', ['-6', 'addr', 'add', '::6/128', 'dev', 'lo']);
    };
    // Shell built-ins only: the entrypoint's PATH holds nothing else.
    const dir = fakeBin({ 'ip6tables-nft-restore': 'while read -r _; do :; done; echo "ip6tables-restore: line 3 failed: injected" >&2; exit 1' });
    const lines = await bothFail(TPROXY_DUAL, setup, dir);
    for (const line of lines) expect(line).toMatch(/ip6tables-nft-restore --noflush failed \(exit 1\): ip6tables-restore: line 3 failed: injected/);
  });
});

describe('without root: TPROXY with file capabilities only, as Kubernetes runs a non-root container', () => {
  // Kubernetes' non-root container: NET_ADMIN and NET_RAW in the bounding set, nothing inheritable
  // or ambient; only file capabilities make them effective.
  const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all,+net_admin,+net_raw'];
  /** Copies with the least file capabilities each needs, as the non-root image has them: the entrypoint NET_ADMIN permitted only (+p: it raises it itself), iptables-nft and nft NET_ADMIN, legacy also NET_RAW. No ip. */
  async function capsDir(): Promise<{ dir: string; entry: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'iit-nlcaps-'));
    temporary.push(dir);
    chmodSync(dir, 0o755);
    const copy = async (src: string, name: string, caps: string) => {
      copyFileSync(src, join(dir, name));
      await execa('setcap', [caps, join(dir, name)]);
    };
    await copy(ENTRYPOINT, 'istio-iptables', 'cap_net_admin+p');
    await copy('/usr/sbin/xtables-nft-multi', 'xtables-nft-multi', 'cap_net_admin+ep');
    await copy('/usr/sbin/xtables-legacy-multi', 'xtables-legacy-multi', 'cap_net_admin,cap_net_raw+ep');
    await copy('/usr/sbin/nft', 'nft', 'cap_net_admin+ep');
    await copy('/usr/bin/ip', 'ip-with-caps', 'cap_net_admin+ep');
    for (const name of ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save']) symlinkSync('xtables-nft-multi', join(dir, name));
    for (const name of ['iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy-save', 'ip6tables-legacy-save']) symlinkSync('xtables-legacy-multi', join(dir, name));
    return { dir, entry: join(dir, 'istio-iptables') };
  }
  const nobody = (ns: Netns, dir: string, argv: readonly string[]) =>
    execa('ip', ['netns', 'exec', ns.name, ...asNobody, 'env', '-i', `PATH=${dir}`, ...argv], { reject: false, timeout: 30_000 });

  it('ip with cap_net_admin+ep cannot add the fwmark rule as uid 65534 (why the entrypoint does it itself)', async () => {
    const { dir } = await capsDir();
    await withNetns('ipcaps', async (ns) => {
      const r = await nobody(ns, dir, [join(dir, 'ip-with-caps'), '-4', 'rule', 'add', 'fwmark', '1337', 'lookup', '133']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/Operation not permitted/);
    });
  });

  it.each([
    ['TPROXY IPv4', TPROXY_V4],
    ['TPROXY dual stack', TPROXY_DUAL],
  ])('%s: applies as uid 65534 with no ip on PATH, equal to the Node CLI as root; rerun unchanged; cleanup back to pristine', async (_n, args) => {
    const { dir, entry } = await capsDir();
    await withNetns('nonroot', async (ns) => {
      await withNetns('ref', async (ref) => {
        const pristine = await snapshot(ns);
        const r = await nobody(ns, dir, [entry, ...args]);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toContain('added: ip -4 rule add fwmark 1337 lookup 133');
        expect((await node(ref, args)).code).toBe(0);
        const applied = await snapshot(ns);
        expect(applied).toBe(await snapshot(ref));
        const again = await nobody(ns, dir, [entry, ...args]);
        expect(again.exitCode, again.stderr).toBe(0);
        expect(again.stderr).toMatch(/ipv4: unchanged/);
        expect(await snapshot(ns)).toBe(applied);
        const clean = await nobody(ns, dir, [entry, ...args, '--cleanup-only']);
        expect(clean.exitCode, clean.stderr).toBe(0);
        expect(await snapshot(ns)).toBe(pristine);
      });
    });
  });
});
