import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podInterface, podsFile, runPlugin, startAgent, tempDir, type Agent } from '../support/cni.js';
import { createNetns, snapshot, withNetns, type Netns } from './netns.js';

/**
 * The plugin speaking the CNI protocol, executed directly as a runtime executes it
 * (dist/cni/istio-cni, CNI_* variables, the conf on stdin): VERSION, errors as the spec's JSON on
 * stdout with a non-zero exit, DEL that always succeeds, CHECK that finds drift, results passed on
 * at each version, and no rules (and no success) without the agent.
 */

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', uid: 'uid-web', annotations: { 'sidecar.istio.io/status': '{}' } },
  spec: { initContainers: [{ name: 'istio-validation' }], containers: [{ name: 'app' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'] }] },
};
const WEB = { namespace: 'shop', name: 'web', uid: 'uid-web' };

/** The previous plugin's result (a bridge's), in each version's shape. */
const PREV = {
  '0.3.1': { cniVersion: '0.3.1', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
  '0.4.0': { cniVersion: '0.4.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
  '1.0.0': { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
} as const;

let dir: { path: string; remove(): void };
let agent: Agent;
const conf = (version: keyof typeof PREV | string = '1.0.0', extra: Record<string, unknown> = {}) => ({
  cniVersion: version,
  name: 'k8s-pod-network',
  type: 'istio-cni',
  cni_agent_run_dir: agent.runDir,
  pod_namespace: 'istio-system',
  ...(version in PREV ? { prevResult: PREV[version as keyof typeof PREV] } : {}),
  ...extra,
});

beforeAll(async () => {
  dir = tempDir('protocol');
  agent = await startAgent(`${dir.path}/run`, ['--pods', podsFile(dir.path, [POD]), '--repair=false']);
});
afterAll(async () => {
  await agent?.stop();
  dir?.remove();
});

async function podNetns(tag: string): Promise<Netns> {
  const ns = await createNetns(tag);
  await podInterface((cmd, args) => ns.run(cmd, args));
  return ns;
}
const path = (ns: Netns) => `/var/run/netns/${ns.name}`;

describe('VERSION and errors', () => {
  it('VERSION lists 0.1.0 through 1.0.0', async () => {
    const r = await runPlugin({ command: 'VERSION', conf: { cniVersion: '1.0.0' } });
    expect(r.exitCode).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });

  it.each([
    ['no CNI_COMMAND', { omit: ['CNI_COMMAND'] }, 4, /CNI_COMMAND is missing/],
    ['ADD without CNI_NETNS', { omit: [] }, 4, /CNI_NETNS missing for ADD/],
    ['ADD without CNI_CONTAINERID', { omit: ['CNI_CONTAINERID'], netns: '/var/run/netns/x' }, 4, /CNI_CONTAINERID missing/],
  ])('%s: error 4 on stdout, exit 1', async (_n, o, code, msg) => {
    const r = await runPlugin({ command: 'ADD', pod: WEB, conf: conf(), ...o });
    expect(r.exitCode).toBe(1);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0', code });
    expect(String(r.json?.['msg'])).toMatch(msg);
    // Logs go to stderr, as JSON lines.
    expect(JSON.parse(r.stderr.trim().split('\n').pop() ?? '')).toMatchObject({ level: 'error' });
  });

  it.each([
    ['bad JSON', '{"cniVersion": "1.0.0",', 6],
    ['a conf without cni_agent_run_dir', JSON.stringify({ cniVersion: '0.4.0', name: 'x', type: 'istio-cni' }), 7],
    ['a conf with exclude_namespaces not a list', JSON.stringify({ cniVersion: '0.4.0', name: 'x', cni_agent_run_dir: '/r', exclude_namespaces: 'a' }), 7],
    ['a version we do not speak', JSON.stringify({ cniVersion: '1.1.0', name: 'x', cni_agent_run_dir: '/r' }), 1],
  ])('%s: error %d', async (_n, text, code) => {
    await withNetns('cni-badconf', async (ns) => {
      const r = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: text });
      expect(r.exitCode).toBe(1);
      expect(r.json).toMatchObject({ code });
      expect(await snapshot(ns)).not.toMatch(/ISTIO/);
    });
  });

  it("refuses the plugin's own namespace (the node's) as CNI_NETNS", async () => {
    // This process runs in the node's namespace too: its namespace file names the same namespace by another path.
    for (const netns of ['/proc/self/ns/net', `/proc/${process.pid}/ns/net`]) {
      const r = await runPlugin({ command: 'ADD', netns, pod: WEB, conf: conf() });
      expect(r.json).toMatchObject({ code: 4, msg: expect.stringMatching(/plugin's own network namespace/) });
    }
  });
});

describe('DEL', () => {
  it('succeeds without a namespace, on one that is gone, and twice, printing nothing', async () => {
    const ns = await podNetns('cni-del');
    const gone = path(ns);
    const add = await runPlugin({ command: 'ADD', netns: gone, pod: WEB, conf: conf() });
    expect(add.exitCode, add.stdout).toBe(0);
    for (const netns of [gone, gone]) {
      const r = await runPlugin({ command: 'DEL', netns, pod: WEB, conf: conf() });
      expect(r).toMatchObject({ exitCode: 0, stdout: '' });
    }
    await ns.remove();
    for (const netns of [gone, undefined, undefined]) {
      const r = await runPlugin({ command: 'DEL', netns, pod: WEB, conf: conf() });
      expect(r).toMatchObject({ exitCode: 0, stdout: '' });
    }
  });
});

describe('CHECK', () => {
  it('succeeds while the namespace holds the plan; after drift, error 102 with the difference', async () => {
    const ns = await podNetns('cni-check');
    try {
      const add = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf() });
      expect(add.exitCode, add.stdout).toBe(0);
      const before = await runPlugin({ command: 'CHECK', netns: path(ns), pod: WEB, conf: conf() });
      expect(before).toMatchObject({ exitCode: 0, stdout: '' });
      // Drift: a rule of ours deleted behind our back.
      const del = await ns.run('iptables-nft', ['-t', 'nat', '-D', 'ISTIO_OUTPUT', '-j', 'ISTIO_REDIRECT']);
      expect(del.exitCode, del.stderr).toBe(0);
      const after = await runPlugin({ command: 'CHECK', netns: path(ns), pod: WEB, conf: conf() });
      expect(after.exitCode).toBe(1);
      expect(after.json).toMatchObject({ code: 102, msg: expect.stringMatching(/pod shop\/web does not hold its rules/) });
      expect(String(after.json?.['details'])).toMatch(/ISTIO_REDIRECT/);
      // ADD heals it; CHECK agrees again.
      expect((await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf() })).exitCode).toBe(0);
      expect((await runPlugin({ command: 'CHECK', netns: path(ns), pod: WEB, conf: conf() })).exitCode).toBe(0);
    } finally {
      await ns.remove();
    }
  });

  it('of a pod that is not captured: success, nothing compared', async () => {
    await withNetns('cni-check-skip', async (ns) => {
      const r = await runPlugin({ command: 'CHECK', netns: path(ns), args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns', conf: conf('1.0.0', { exclude_namespaces: ['kube-system'] }) });
      expect(r).toMatchObject({ exitCode: 0, stdout: '' });
    });
  });
});

describe('ADD', () => {
  it.each(Object.keys(PREV))('passes the previous result on at %s, rules applied', async (version) => {
    const ns = await podNetns(`cni-v${version.replace(/\./g, '')}`);
    try {
      const r = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf(version) });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.json).toEqual(PREV[version as keyof typeof PREV]);
      expect((await ns.run('iptables-nft-save', ['-t', 'nat'])).stdout).toMatch(/-A ISTIO_OUTPUT -j ISTIO_REDIRECT/);
    } finally {
      await ns.remove();
    }
  });

  it('first in a chain (no prevResult): an empty result in the conf\'s version', async () => {
    await withNetns('cni-noprev', async (ns) => {
      const r = await runPlugin({ command: 'ADD', netns: path(ns), args: 'IgnoreUnknown=1;K8S_POD_NAME=web', conf: conf('0.4.0', { prevResult: undefined }) });
      expect(r.json).toEqual({ cniVersion: '0.4.0' });
    });
  });

  it('without the agent: a CNI error (11, try again), never a success, nothing changed', async () => {
    const ns = await podNetns('cni-noagent');
    try {
      // The kernel adds IPv6 link-local addresses (and their local routes) on its own: not ours to compare.
      const state = async () => (await snapshot(ns)).split('\n').filter((l) => !l.includes('fe80:')).join('\n');
      const before = await state();
      const r = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf('1.0.0', { cni_agent_run_dir: `${dir.path}/no-agent-here` }) });
      expect(r.exitCode).toBe(1);
      expect(r.json).toMatchObject({ code: 11, msg: expect.stringMatching(/cannot get pod shop\/web from the istio-cni node agent/) });
      expect(String(r.json?.['details'])).toMatch(/istio-cni-agent.sock: No such file or directory/);
      expect(await state()).toBe(before);
    } finally {
      await ns.remove();
    }
  });

  it('a pod with no usable address in its namespace fails, as in Istio (IPv6 cannot be decided)', async () => {
    await withNetns('cni-noaddr', async (ns) => {
      const r = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf() });
      expect(r.json).toMatchObject({ code: 100, msg: expect.stringMatching(/no valid local IP address/) });
    });
  });

  it('IPv6 is decided by the pod\'s addresses, read in its namespace (an IPv6-only pod gets IPv6 rules)', async () => {
    const ns = await createNetns('cni-v6');
    try {
      await podInterface((cmd, args) => ns.run(cmd, args), 'fd00::2/64');
      const r = await runPlugin({ command: 'ADD', netns: path(ns), pod: WEB, conf: conf() });
      expect(r.exitCode, r.stdout).toBe(0);
      expect((await ns.run('ip6tables-nft-save', ['-t', 'nat'])).stdout).toMatch(/-A ISTIO_OUTPUT -j ISTIO_REDIRECT/);
    } finally {
      await ns.remove();
    }
  });
});
