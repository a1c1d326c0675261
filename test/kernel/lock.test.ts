import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { platform } from '../../src/platform/node.js';
import { ROOT } from '../support/cli.js';
import { snapshot, withNetns, type Netns } from './netns.js';

/**
 * The run lock of a network namespace (apply/commands.ts LOCK_NAME) is an abstract unix socket
 * bound in that namespace, whoever takes it: the init container inside it, a run from outside
 * with --network-namespace by name or by path, the Node CLI or the entrypoint. Each test holds the
 * lock one way and shows that a run taking it another way waits: the namespace is unchanged while
 * the lock is held, and exactly the plan once it is released.
 */

const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const NODE_BIN = [process.execPath, join(ROOT, 'bin/istio-iptables.js')];
const CONFIG = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-b', '*', '--enable-ipv6=false'];
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';

/** A process inside the namespace holding the lock's name until its stdin ends; resolves once held. */
async function holdInside(ns: Netns): Promise<{ release: () => Promise<void> }> {
  const script = "require('node:net').createServer().listen({ path: '\\0istio-iptables/run' }, () => { process.stdout.write('held\\n'); process.stdin.on('end', () => process.exit(0)).resume(); })";
  const holder = execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdin: 'pipe', reject: false, timeout: 60_000 });
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.once('data', () => resolve());
    void holder.then((r) => reject(new Error(`the holder ended before holding the lock: ${r.stderr}`)));
  });
  return {
    release: async () => {
      holder.stdin?.end();
      expect((await holder).exitCode).toBe(0);
    },
  };
}

/** Start a run, check it is still waiting (and the namespace untouched) after a while, release, and expect the plan. */
async function waitsForTheLock(ns: Netns, run: Promise<{ exitCode?: number | undefined; stderr: unknown }>, release: () => Promise<void>): Promise<void> {
  const before = await snapshot(ns);
  let ended = false;
  void run.finally(() => (ended = true));
  await new Promise((r) => setTimeout(r, 1500));
  expect(ended, 'the run did not wait for the lock').toBe(false);
  expect(await snapshot(ns)).toBe(before);
  await release();
  const r = await run;
  expect(r.exitCode, String(r.stderr)).toBe(0);
  expect(await snapshot(ns)).not.toBe(before);
  expect((await ns.run('iptables-save', ['-t', 'nat'])).stdout).toContain('-A ISTIO_OUTPUT -j ISTIO_REDIRECT');
}

describe('the run lock is the namespace\'s, however a run names it', () => {
  it.each([
    ['the entrypoint, --network-namespace NAME', (ns: Netns) => [ENTRYPOINT, ...CONFIG, '--network-namespace', ns.name]],
    ['the entrypoint, --network-namespace /var/run/netns/NAME', (ns: Netns) => [ENTRYPOINT, ...CONFIG, '--network-namespace', `/var/run/netns/${ns.name}`]],
    ['the Node CLI, --network-namespace NAME', (ns: Netns) => [...NODE_BIN, ...CONFIG, '--network-namespace', ns.name]],
    ['the Node CLI, --network-namespace /var/run/netns/NAME', (ns: Netns) => [...NODE_BIN, ...CONFIG, '--network-namespace', `/var/run/netns/${ns.name}`]],
  ])('held inside the namespace: %s waits for it', async (_how, argv) => {
    await withNetns('lockin', async (ns) => {
      const holder = await holdInside(ns);
      const [cmd = '', ...args] = argv(ns);
      await waitsForTheLock(ns, execa(cmd, args, { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false }), holder.release);
    });
  }, 60_000);

  it.each([
    ['the entrypoint', [ENTRYPOINT]],
    ['the Node CLI', NODE_BIN],
  ])('held from outside by the library (namespace by path): %s inside the namespace waits for it', async (_how, program) => {
    await withNetns('lockout', async (ns) => {
      const opened = await platform.openNamespace(`/var/run/netns/${ns.name}`, `/var/run/netns/${ns.name}`);
      const lock = platform.lock(opened);
      try {
        expect(await lock.attempt()).toEqual({ held: true });
        // Asked again, from another holder of ours: a run of ours holds it (listening, CAP_NET_ADMIN).
        const other = platform.lock(opened);
        const again = await other.attempt();
        other.release();
        expect(again.held).toBe(false);
        expect(again.held ? [] : again.holders.map((h) => [h.listening, h.netAdmin])).toContainEqual([true, true]);
        const run = execa('ip', ['netns', 'exec', ns.name, ...program, ...CONFIG], { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false });
        await waitsForTheLock(ns, run, async () => lock.release());
      } finally {
        lock.release();
        platform.closeNamespace(opened);
      }
    });
  }, 60_000);
});

/**
 * A process with no capabilities at all, as uid 65534, holding the lock's name in the namespace,
 * in both forms (the name alone, and padded to the whole of sun_path as Node binds it): listening
 * (a connection gets in, and the kernel names it), or only bound (no connection gets in). Resolves
 * once it holds them.
 */
async function squat(ns: Netns, listen: boolean): Promise<{ release: () => Promise<void> }> {
  const py = [
    'import socket, sys',
    "name = b'istio-iptables/run'",
    'held = []',
    "for addr in (b'\\0' + name, b'\\0' + name + b'\\0' * (107 - len(name))):",
    '    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
    '    s.bind(addr)',
    ...(listen ? ['    s.listen(1)'] : []),
    '    held.append(s)',
    "print('held', flush=True)",
    'sys.stdin.read()',
  ].join('\n');
  const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all'];
  // Debian's python3 by its path: a per-user shim on PATH is not readable by uid 65534.
  const holder = execa('ip', ['netns', 'exec', ns.name, ...nobody, '/usr/bin/python3', '-c', py], { stdin: 'pipe', reject: false, timeout: 60_000 });
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.once('data', () => resolve());
    void holder.then((r) => reject(new Error(`the squatter ended before holding the name: ${r.stderr}`)));
  });
  // It holds them, and has no capability: what the runs below must not wait for.
  const status = (await execa('cat', [`/proc/${holder.pid}/status`])).stdout;
  expect(status).toMatch(/^Uid:\s+65534/m);
  expect(status).toMatch(/^CapEff:\s+0+$/m);
  return {
    release: async () => {
      holder.stdin?.end();
      await holder;
    },
  };
}

describe('a lock no unprivileged process can hold hostage', () => {
  const timed = async (argv: readonly string[]) => {
    const t0 = Date.now();
    const [cmd = '', ...args] = argv;
    const r = await execa(cmd, args, { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false });
    return { ...r, ms: Date.now() - t0 };
  };
  it.each([
    ['the entrypoint', true, [ENTRYPOINT]],
    ['the entrypoint', false, [ENTRYPOINT]],
    ['the Node CLI', true, NODE_BIN],
    ['the Node CLI', false, NODE_BIN],
  ] as const)('%s from outside, the name held by uid 65534 without capabilities (listening: %s): less than a second late, and it applies', async (_how, listen, program) => {
    await withNetns('squat', async (ns) => {
      await withNetns('squatref', async (ref) => {
        // The same run where nobody holds the name: the time to beat by less than a second.
        const baseline = await timed([...program, ...CONFIG, '--network-namespace', ref.name]);
        expect(baseline.exitCode, String(baseline.stderr)).toBe(0);
        const squatter = await squat(ns, listen);
        try {
          const r = await timed([...program, ...CONFIG, '--network-namespace', ns.name]);
          expect(r.exitCode, String(r.stderr)).toBe(0);
          expect(r.ms - baseline.ms).toBeLessThan(1000);
          expect(String(r.stderr)).toMatch(listen ? /held by pid \d+ \(uid 65534\), without CAP_NET_ADMIN: no run of ours; going on without waiting/ : /held by a process, bound without listening.*: no run of ours/);
          expect(await snapshot(ns)).toBe(await snapshot(ref));
        } finally {
          await squatter.release();
        }
      });
    });
  }, 60_000);

  it('a run of ours holding it is waited for, and the wait is logged with its pid and how long', async () => {
    await withNetns('lockpid', async (ns) => {
      const opened = await platform.openNamespace(`/var/run/netns/${ns.name}`, ns.name);
      const lock = platform.lock(opened);
      try {
        expect(await lock.attempt()).toEqual({ held: true });
        const run = execa(ENTRYPOINT, [...CONFIG, '--network-namespace', ns.name], { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false });
        await new Promise((r) => setTimeout(r, 700));
        lock.release();
        const r = await run;
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/waiting for the network namespace's run lock \(istio-iptables\/run\), held by pid \d+ \(uid 0\), with CAP_NET_ADMIN \(up to 30 s\)/);
        const took = /took the run lock after (\d+) ms/.exec(r.stderr);
        expect(Number(took?.[1])).toBeGreaterThanOrEqual(300);
      } finally {
        lock.release();
        platform.closeNamespace(opened);
      }
    });
  }, 60_000);
});

describe('the run lock within the run\'s deadline', () => {
  it.each([
    ['the entrypoint', [ENTRYPOINT]],
    ['the Node CLI', NODE_BIN],
  ])('held longer than a run\'s deadline: %s stops waiting at its deadline (not the lock\'s 30 s), changes nothing, exits 1 saying so', async (_how, program) => {
    await withNetns('lockdeadline', async (ns) => {
      const holder = await holdInside(ns);
      try {
        const before = await snapshot(ns);
        const t0 = Date.now();
        const r = await execa('ip', ['netns', 'exec', ns.name, ...program, ...CONFIG, '--run-timeout', '2s'], { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false });
        expect(r.exitCode, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/the run did not finish within its deadline \(--run-timeout 2s\) and stopped: another istio-iptables run \(pid \d+ \(uid 0\), with CAP_NET_ADMIN\) held the network namespace's run lock for the [12](\.\d)? s this run waited; nothing was changed/);
        expect(Date.now() - t0).toBeLessThan(20_000);
        expect(await snapshot(ns)).toBe(before);
      } finally {
        await holder.release();
      }
    });
  }, 60_000);
});
