import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { conformanceCases, ROOT, runCli } from '../support/cli.js';
import { loadIstioState, savedState, snapshot, withNetns, type Netns } from './netns.js';

/**
 * The entrypoint's own machinery in real namespaces: the prelude's early commands are the ones
 * the run feeds, an unclaimed one changes nothing and does not outlive the run, and a missing
 * iptables is reported without a bogus undo. (The apply, container and traffic suites run the
 * entrypoint through everything else.)
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const REDIRECT_V4 = [...SIDECAR, '-m', 'REDIRECT', '--enable-ipv6=false'];
const TPROXY_DUAL = [...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=true'];

/** The same build with the runtime's step timing compiled in (stderr); never shipped. */
const ENTRYPOINT_TRACE = join(ROOT, 'dist/entrypoint-trace/istio-iptables');

const inside = (ns: Netns, args: readonly string[], env: NodeJS.ProcessEnv = {}, program = ENTRYPOINT) =>
  execa('ip', ['netns', 'exec', ns.name, program, ...args], { reject: false, env, timeout: 30_000 });

/** Processes still running inside the namespace. */
async function pids(ns: Netns): Promise<string> {
  return (await execa('ip', ['netns', 'pids', ns.name], { reject: false })).stdout.trim();
}

describe('the prelude starts the fast path commands early', () => {
  it.each([
    ['REDIRECT IPv4', REDIRECT_V4, ['iptables-nft-restore']],
    ['TPROXY dual stack', TPROXY_DUAL, ['iptables-nft-restore', 'ip6tables-nft-restore']],
  ] as const)('%s: each restore was started early and fed; the namespace equals the careful path', async (_n, args, restores) => {
    await withNetns('early', async (ns) => {
      await withNetns('ref', async (ref) => {
        const r = await inside(ns, [...args, '--log_output_level=default:debug']);
        expect(r.exitCode, r.stderr).toBe(0);
        for (const bin of restores) expect(r.stderr).toContain(`${bin} had been started before the program loaded; fed its payload`);
        expect((await runCli([...args, '--network-namespace', ref.name])).code).toBe(0);
        expect(await snapshot(ns)).toBe(await snapshot(ref));
        expect(await pids(ns)).toBe('');
      });
    });
  });

  it('a command started early but not wanted (the value is invalid) exits having changed nothing', async () => {
    await withNetns('unclaimed', async (ns) => {
      const pristine = await snapshot(ns);
      // Well-formed flags, so the prelude starts the restores; -p 0 then fails validation.
      const r = await inside(ns, [...TPROXY_DUAL, '-p', '0'], {}, ENTRYPOINT_TRACE);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/invalid value "0" for -p\/--envoy-port: expected a port 1-65535/);
      expect(r.stderr).toMatch(/started \(stdin waits\)/);
      expect(r.stderr).toMatch(/stdin closed empty/);
      expect(await snapshot(ns)).toBe(pristine);
      expect(await pids(ns)).toBe('');
    });
  });

  it('no iptables on PATH: a clear error, exit 1, and no undo of what never ran', async () => {
    await withNetns('noipt', async (ns) => {
      const pristine = await snapshot(ns);
      const r = await execa('ip', ['netns', 'exec', ns.name, 'env', 'PATH=/nonexistent', ENTRYPOINT, ...REDIRECT_V4], { reject: false, timeout: 30_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/no iptables found: none of iptables-nft-save, iptables-legacy-save, iptables-save could run \(install iptables\)/);
      expect(r.stderr).not.toMatch(/undoing the first attempt was incomplete/);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });
});

describe('the entrypoint applies every conformance case as Istio does (fast path, early commands)', () => {
  it.each(conformanceCases().map((c) => [`${c.suite}/${c.name}`, c] as const))('%s', async (_l, c) => {
    const args = c.args.filter((a) => a !== '--dry-run');
    await withNetns('istio', async (istio) => {
      await withNetns('entry', async (ours) => {
        await withNetns('node', async (node) => {
          await loadIstioState(istio, c);
          const first = await inside(ours, args);
          expect(first.exitCode, first.stderr).toBe(0);
          expect(await savedState(ours, c)).toEqual(await savedState(istio, c));
          // Routing (TPROXY's fwmark rules and local routes, IPv6's ::6 on lo) over netlink: the
          // same rules, routes and addresses, in every detail, as the Node CLI's `ip`.
          expect((await runCli([...args, '--network-namespace', node.name])).code).toBe(0);
          const state = await snapshot(ours);
          expect(state).toBe(await snapshot(node));
          const again = await inside(ours, args);
          expect(again.exitCode, again.stderr).toBe(0);
          expect(again.stderr).toMatch(/ipv4: unchanged/);
          expect(await snapshot(ours)).toBe(state);
          expect(await pids(ours)).toBe('');
        });
      });
    });
  });
});
