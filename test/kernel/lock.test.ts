import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { processRunner } from '../../src/apply/runner.js';
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
      const lock = processRunner({ namespace: `/var/run/netns/${ns.name}` }).lock;
      const release = await lock?.(0);
      expect(release).toBeTypeOf('function');
      // Taken again by the same process: at once. Another name for the same namespace: the same lock, also ours.
      expect(await lock?.(0)).toBeTypeOf('function');
      const run = execa('ip', ['netns', 'exec', ns.name, ...program, ...CONFIG], { reject: false, timeout: 60_000, env: { PATH }, extendEnv: false });
      await waitsForTheLock(ns, run, async () => release?.());
    });
  }, 60_000);

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
        expect(r.stderr).toMatch(/the run did not finish within its deadline \(--run-timeout 2s\) and stopped: another istio-iptables run held the network namespace's run lock for the [12](\.\d)? s this run waited; nothing was changed/);
        expect(Date.now() - t0).toBeLessThan(20_000);
        expect(await snapshot(ns)).toBe(before);
      } finally {
        await holder.release();
      }
    });
  }, 60_000);

  it('held inside: the library from outside gets no lock within its wait, then gets it once released', async () => {
    await withNetns('lockwait', async (ns) => {
      const holder = await holdInside(ns);
      const runner = processRunner({ namespace: ns.name });
      expect(await runner.lock?.(300)).toBeUndefined();
      await holder.release();
      const release = await runner.lock?.(5000);
      expect(release).toBeTypeOf('function');
      release?.();
    });
  }, 60_000);
});
