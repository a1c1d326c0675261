import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { packAndInstall, type Installed } from '../support/package.js';
import { normalizeSave, snapshot, withNetns, type Netns } from './netns.js';

/**
 * A tool programming a namespace through the installed package (test/consumers/kernel.mjs:
 * configFromArgs, buildPlan, apply / cleanup / diff with the CLI's options) leaves exactly what
 * the packaged CLI leaves for the same flags in another fresh namespace, and its cleanup leaves
 * the namespace pristine.
 */

const TPROXY_DUAL = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=true', '--redirect-dns', '--dns-servers', '10.96.0.10,fd00::a'];
const REDIRECT_V4 = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false'];

interface Output {
  readonly report: {
    readonly kind?: string;
    readonly backend?: string;
    readonly families?: Record<string, string>;
    readonly routesAdded?: readonly unknown[];
    readonly routesRemoved?: readonly unknown[];
    readonly inSync?: boolean;
  };
  readonly text?: string;
  readonly error?: { readonly name: string; readonly message: string; readonly command: readonly string[]; readonly isApplyError: boolean };
  readonly commands: readonly (readonly string[])[];
  readonly log: readonly string[];
}

let pkg: Installed;

beforeAll(async () => {
  pkg = await packAndInstall('kernel');
  copyFileSync(join(ROOT, 'test', 'consumers', 'kernel.mjs'), join(pkg.project, 'kernel.mjs'));
}, 180_000);

afterAll(() => pkg?.remove());

async function tool(action: 'apply' | 'cleanup' | 'diff', ns: Netns, runner: 'default' | 'recording' | `fail:${string}`, args: readonly string[]): Promise<Output> {
  const r = await pkg.run('node', ['kernel.mjs', action, ns.name, runner, ...args]);
  if (r.exitCode !== 0) throw new Error(`kernel.mjs ${action} failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Output;
}

/** The packaged CLI, run as npx runs it, into a namespace. */
async function cli(ns: Netns, args: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return pkg.run('node', [join(pkg.project, 'node_modules', '.bin', 'istio-iptables'), ...args, '--network-namespace', ns.name]);
}

/** What the comparison is about: iptables-save of both families (both backends) and policy routing. */
async function kernelState(ns: Netns): Promise<string> {
  const parts: string[] = [];
  for (const cmd of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) parts.push(`## ${cmd}\n${normalizeSave((await ns.run(cmd, [])).stdout)}`);
  for (const argv of [['-4', 'rule'], ['-6', 'rule'], ['-4', 'route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all']]) parts.push(`## ip ${argv.join(' ')}\n${(await ns.run('ip', argv)).stdout}`);
  return parts.join('\n');
}

describe.each([
  ['TPROXY dual stack', TPROXY_DUAL, ['ipv4', 'ipv6'], 5],
  ['REDIRECT IPv4', REDIRECT_V4, ['ipv4'], 0],
] as const)('the library in a namespace: %s', (_name, args, families, routes) => {
  it('apply leaves exactly the CLI state, diff finds it in sync, cleanup leaves it pristine', async () => {
    await withNetns('lib', async (lib) => {
      await withNetns('cli', async (viaCli) => {
        const pristine = await snapshot(lib);
        expect(await snapshot(viaCli)).toBe(pristine);

        const before = await tool('diff', lib, 'default', args);
        expect(before.report.inSync).toBe(false);
        expect(before.text).toMatch(/^ipv4: not applied \(nft backend\)\n {2}- /);

        // Applied with the caller's runner: every command goes through it, into the namespace.
        const applied = await tool('apply', lib, 'recording', args);
        expect(applied.report).toMatchObject({ kind: 'iptables', backend: 'nft', families: Object.fromEntries(families.map((f) => [f, 'applied'])) });
        expect(applied.report.routesAdded).toHaveLength(routes);
        expect(applied.commands.length).toBeGreaterThan(0);
        expect(applied.commands.filter((c) => c.slice(0, 4).join(' ') !== `ip netns exec ${lib.name}`)).toEqual([]);
        expect(applied.log.some((l) => /^info (ipv4: applied|iptables backend: nft)/.test(l))).toBe(true);

        const r = await cli(viaCli, args);
        expect(r.stderr).not.toMatch(/error/);
        expect(r.exitCode).toBe(0);
        const state = await kernelState(lib);
        expect(state).toContain('-A ISTIO_INBOUND');
        expect(state).toBe(await kernelState(viaCli));
        expect(await snapshot(lib)).toBe(await snapshot(viaCli));

        const after = await tool('diff', lib, 'default', args);
        expect(after.report.inSync).toBe(true);
        // A family the plan does not have is compared too: nothing of ours there.
        expect(after.text).toBe(families.length === 2 ? 'ipv4: in sync with the plan (nft backend)\nipv6: in sync with the plan (nft backend)\n' : 'ipv4: in sync with the plan (nft backend)\nipv6: in sync with the plan (nft backend; the plan has no rules for this family)\n');
        const cliDiff = await pkg.run('node', [join(pkg.project, 'node_modules', '.bin', 'istio-iptables'), 'diff', ...args.slice(1), '--network-namespace', lib.name]);
        expect(cliDiff.stdout).toBe(after.text);
        expect(cliDiff.exitCode).toBe(0);

        // A rerun through the library changes nothing.
        const again = await tool('apply', lib, 'default', args);
        expect(again.report.families).toEqual(Object.fromEntries(families.map((f) => [f, 'unchanged'])));
        expect(await kernelState(lib)).toBe(state);

        const cleaned = await tool('cleanup', lib, 'default', args);
        // Cleanup looks at both families; one the plan never had holds nothing of ours.
        expect(cleaned.report.families).toEqual({ ipv4: 'cleaned', ipv6: families.length === 2 ? 'cleaned' : 'nothing to clean' });
        expect(cleaned.report.routesRemoved).toHaveLength(routes);
        expect(await snapshot(lib)).toBe(pristine);
      });
    });
  });
});

describe('the library in a namespace: failures and native nftables', () => {
  it("a runner's failing IPv6 restore makes apply throw ApplyError and leaves the namespace as it was", async () => {
    await withNetns('fail', async (ns) => {
      const pristine = await snapshot(ns);
      const out = await tool('apply', ns, 'fail:ip6tables-nft-restore', TPROXY_DUAL);
      expect(out.report).toBeUndefined();
      expect(out.error).toMatchObject({ name: 'ApplyError', isApplyError: true });
      expect(out.error?.message).toMatch(/ip6tables-nft-restore.*injected failure/);
      // The IPv4 restore ran and was put back (a second restore): the failure was not a no-op.
      expect(out.commands.filter((c) => c.includes('iptables-nft-restore')).length).toBeGreaterThanOrEqual(2);
      expect(await snapshot(ns)).toBe(pristine);
    });
  });

  it('native nftables: apply leaves exactly the CLI state, cleanup leaves it pristine', async () => {
    const args = [...REDIRECT_V4, '--native-nftables'];
    await withNetns('nftlib', async (lib) => {
      await withNetns('nftcli', async (viaCli) => {
        const pristine = await snapshot(lib);
        const applied = await tool('apply', lib, 'default', args);
        expect(applied.report).toMatchObject({ kind: 'nftables', outcome: 'applied' });
        const r = await cli(viaCli, args);
        expect(r.exitCode).toBe(0);
        const state = await snapshot(lib);
        expect(state).toContain('table inet istio-proxy-nat');
        expect(state).toBe(await snapshot(viaCli));
        const cleaned = await tool('cleanup', lib, 'default', args);
        expect(cleaned.report).toMatchObject({ kind: 'nftables', outcome: 'cleaned' });
        expect(await snapshot(lib)).toBe(pristine);
      });
    });
  });
});
