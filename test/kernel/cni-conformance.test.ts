import { afterAll, describe, expect, it } from 'vitest';
import { cniCases, podInterface, podsFile, runPlugin, startAgent, tempDir } from '../support/cni.js';
import { BACKENDS, loadAndSave, normalizeSave, withNetns } from './netns.js';

/**
 * Conformance with Istio's istio-cni: for each of the nine cases of Istio's dry-run test
 * (golden/istio-cni), the plugin (dist/cni/istio-cni), given the case's pod through the node
 * agent's --pods and run as a runtime runs it, leaves in a real network namespace (eth0
 * 10.0.0.2/24, as Istio's test pod) exactly the kernel state Istio's golden leaves when loaded
 * into an empty namespace. Run twice, the second ADD changes nothing.
 */
const { conf, cases } = cniCases();
const nft = BACKENDS.find((b) => b.name === 'nft')!;
const dirs: { remove(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

describe('istio-cni conformance data', () => {
  it("has Istio's nine dry-run cases", () => {
    expect(cases.map((c) => c.name)).toEqual(['basic', 'include-exclude-ip', 'include-exclude-ports', 'tproxy', 'dns', 'invalid-drop', 'custom-uid', 'custom-uid-zero', 'custom-uid-tproxy']);
  });
});

describe('istio-cni ADD leaves the kernel state of Istio\'s golden', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const dir = tempDir(`conf-${c.name}`);
    dirs.push(dir);
    const agent = await startAgent(`${dir.path}/run`, ['--pods', podsFile(dir.path, [c.pod]), '--repair=false']);
    try {
      const expected = await loadAndSave(nft, 'ipv4', c.expected);
      expect(expected).toContain(':ISTIO_');
      await withNetns(`cni-${c.name}`, async (ns) => {
        await podInterface((cmd, args) => ns.run(cmd, args));
        const add = () =>
          runPlugin({ command: 'ADD', netns: `/var/run/netns/${ns.name}`, pod: { namespace: c.pod.metadata.namespace, name: c.pod.metadata.name }, conf: { ...conf, cni_agent_run_dir: agent.runDir } });
        const first = await add();
        expect(first.exitCode, `${first.stdout}\n${first.stderr}`).toBe(0);
        // A chained plugin passes the previous result on.
        expect(first.json).toEqual(conf['prevResult']);
        const v4 = normalizeSave((await ns.run('iptables-nft-save', [])).stdout);
        expect(v4).toBe(expected);
        // Istio's case has IPv4 only (the pod has no IPv6 address); nothing in the other family or backend.
        for (const save of ['ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
          expect((await ns.run(save, [])).stdout, save).not.toContain('ISTIO');
        }
        if (c.name.includes('tproxy')) {
          // TPROXY's routing (Istio programs it too, outside its dry-run output).
          expect((await ns.run('ip', ['-4', 'rule'])).stdout).toMatch(/fwmark 0x539 lookup 133/);
          expect((await ns.run('ip', ['-4', 'route', 'show', 'table', '133'])).stdout).toMatch(/^local default dev lo/m);
        }
        const second = await add();
        expect(second.exitCode, second.stdout).toBe(0);
        expect(second.stderr).toMatch(/ipv4 unchanged/);
        expect(normalizeSave((await ns.run('iptables-nft-save', [])).stdout)).toBe(expected);
      });
    } finally {
      await agent.stop();
    }
  });
});
