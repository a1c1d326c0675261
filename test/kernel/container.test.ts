import { chmodSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, runCli } from '../support/cli.js';
import { normalizeSave, withNetns } from './netns.js';

/**
 * The image's job without a container engine: each Kubernetes example's init-container args,
 * verbatim, run by the compiled entrypoint inside a fresh network namespace, as the image's
 * ENTRYPOINT would run them; the kernel then holds what the careful in-process path programs.
 */
const entrypoint = join(ROOT, 'dist/entrypoint/istio-iptables');
const temporary: string[] = [];
afterAll(() => {
  for (const d of temporary) rmSync(d, { recursive: true, force: true });
});
const examples = readdirSync(join(ROOT, 'container/k8s'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => {
    const pod = parse(readFileSync(join(ROOT, 'container/k8s', f), 'utf8')) as { spec: { initContainers: { args: string[] }[] } };
    return [f, pod.spec.initContainers[0]?.args ?? []] as const;
  });

/** A copy of the entrypoint in a fresh 0755 directory (removed when the suite ends), as the image installs it. */
function installed755(): string {
  const dir = mkdtempSync(join(tmpdir(), 'iit-entry-'));
  temporary.push(dir);
  chmodSync(dir, 0o755);
  copyFileSync(entrypoint, join(dir, 'istio-iptables'));
  return join(dir, 'istio-iptables');
}

async function tables(ns: { run: (c: string, a: string[]) => Promise<{ stdout: string }> }): Promise<string> {
  return normalizeSave((await ns.run('iptables-save', [])).stdout);
}

describe('the examples, run by the entrypoint in a namespace', () => {
  it.each(examples.filter(([f]) => f !== 'pod-validation.yaml' && f !== 'pod-nonroot.yaml'))('%s', async (_f, args) => {
    await withNetns('img', async (img) => {
      await withNetns('ref', async (ref) => {
        const r = await execa('ip', ['netns', 'exec', img.name, entrypoint, ...args], { reject: false, timeout: 30_000 });
        expect(r.exitCode, r.stderr).toBe(0);
        expect((await runCli([...args, '--network-namespace', ref.name])).code).toBe(0);
        const got = await tables(img);
        expect(got).toContain(':ISTIO_OUTPUT');
        expect(got).toBe(await tables(ref));
      });
    });
  });

  it('pod-validation.yaml: exit 126 before the rules exist, 0 after, running as uid 1337', async () => {
    const args = examples.find(([f]) => f === 'pod-validation.yaml')?.[1] ?? [];
    // As the image has it: an executable anyone may run. (setpriv still holds root's capabilities
    // when it execs, so it could run one from the 0700 checkout too; a program it starts could not.)
    const installed = installed755();
    const asProxy = (ns: string) => ['netns', 'exec', ns, 'setpriv', '--reuid', '1337', '--regid', '1337', '--clear-groups', installed, ...args, '--probe-timeout', '1s'];
    await withNetns('val', async (ns) => {
      const before = await execa('ip', asProxy(ns.name), { reject: false, timeout: 30_000 });
      expect(before.exitCode, before.stderr).toBe(126);
      // The probe's own verdict, not an executable the kernel refused to run (also 126).
      expect(before.stderr).toMatch(/validation failed/);
      const redirect = examples.find(([f]) => f === 'pod-redirect.yaml')?.[1] ?? [];
      expect((await execa('ip', ['netns', 'exec', ns.name, entrypoint, ...redirect], { reject: false })).exitCode).toBe(0);
      const after = await execa('ip', asProxy(ns.name), { reject: false, timeout: 30_000 });
      expect(after.exitCode, after.stderr).toBe(0);
    });
  });

  it('pod-nonroot.yaml: as uid 65534 with file capabilities on the kernel-facing programs only', async () => {
    const args = examples.find(([f]) => f === 'pod-nonroot.yaml')?.[1] ?? [];
    // The nonroot image's file capabilities (container/rootfs.sh), on copies of the host's programs;
    // test/kernel/podman.test.ts runs the image itself.
    const dir = mkdtempSync(join(tmpdir(), 'iit-caps-'));
    temporary.push(dir);
    await execa('chmod', ['755', dir]);
    for (const [bin, src, caps] of [
      ['xtables-nft-multi', '/usr/sbin/xtables-nft-multi', 'cap_net_admin+ep'],
      ['xtables-legacy-multi', '/usr/sbin/xtables-legacy-multi', 'cap_net_admin,cap_net_raw+ep'],
    ] as const) {
      copyFileSync(src, join(dir, bin));
      await execa('setcap', [caps, join(dir, bin)]);
    }
    for (const name of ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save']) symlinkSync('xtables-nft-multi', join(dir, name));
    // The entrypoint where uid 65534 may run it, as in the image (the checkout may sit in a 0700 directory).
    copyFileSync(entrypoint, join(dir, 'istio-iptables'));
    for (const name of ['iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy-save', 'ip6tables-legacy-save']) symlinkSync('xtables-legacy-multi', join(dir, name));
    await withNetns('nonroot', async (ns) => {
      await withNetns('ref', async (ref) => {
        const env = `PATH=${dir}:/usr/bin:/bin`;
        const r = await execa(
          'ip',
          ['netns', 'exec', ns.name, 'setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all,+net_admin,+net_raw', 'env', '-i', env, 'XTABLES_LOCKFILE=/tmp/iit-xtables.lock', join(dir, 'istio-iptables'), ...args],
          { reject: false, timeout: 30_000 },
        );
        expect(r.exitCode, r.stderr).toBe(0);
        expect((await runCli([...args, '--network-namespace', ref.name])).code).toBe(0);
        expect(await tables(ns)).toBe(await tables(ref));
      });
    });
  });
});
