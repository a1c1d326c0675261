import { describe, expect, it } from 'vitest';
import { runPlugin, type PluginDeps } from '../../src/cni/plugin.js';
import { factsFromPod, type PodFacts } from '../../src/cni/pod.js';
import type { AgentReply, PodRequest } from '../../src/cni/protocol.js';
import { fixedHost } from '../../src/config/host.js';
import { ApplyError } from '../../src/errors.js';
import type { Config } from '../../src/config/config.js';

/**
 * The plugin's flow (src/cni/plugin.ts) with its effects recorded: what it asks the agent, what
 * it applies, what it prints, and its exit code, for each command and failure.
 */

const NETNS = '/var/run/netns/pod';
const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: NETNS, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=u-1' };
const PREV = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.1.0.5/16', interface: 0 }] };
const CONF = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'istio-cni', cni_agent_run_dir: '/var/run/istio-cni', pod_namespace: 'istio-system', exclude_namespaces: ['kube-system'], prevResult: PREV };

const WEB: PodFacts = factsFromPod({
  metadata: { name: 'web', namespace: 'shop', uid: 'u-1', annotations: { 'sidecar.istio.io/status': '{}' } },
  spec: { initContainers: [{ name: 'istio-validation' }], containers: [{ name: 'app' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'] }] },
});

interface Recorded {
  asked: PodRequest[];
  applied: Config[];
  checked: Config[];
  logs: string[];
}

function deps(o: { reply?: AgentReply | Error; own?: boolean; exists?: boolean; applyError?: Error; drift?: string } = {}): PluginDeps & { rec: Recorded } {
  const rec: Recorded = { asked: [], applied: [], checked: [], logs: [] };
  return {
    rec,
    askAgent: async (_dir, r) => {
      rec.asked.push(r);
      const reply = o.reply ?? { v: 1, pod: WEB };
      if (reply instanceof Error) throw reply;
      return reply;
    },
    namespaceExists: () => o.exists ?? true,
    isOwnNamespace: () => o.own ?? false,
    targetFacts: () => fixedHost({ ipv6: false }),
    apply: async (c) => {
      rec.applied.push(c);
      if (o.applyError) throw o.applyError;
      return 'iptables (nft) ipv4 applied';
    },
    check: async (c) => {
      rec.checked.push(c);
      return o.drift ?? '';
    },
    log: (line) => void rec.logs.push(line),
  };
}

const run = (d: PluginDeps, env: Record<string, string | undefined> = ENV, conf: unknown = CONF) => runPlugin(env, typeof conf === 'string' ? conf : JSON.stringify(conf), d);
const error = (stdout: string) => JSON.parse(stdout) as { cniVersion: string; code: number; msg: string; details: string };

describe('ADD', () => {
  it('asks the agent, applies in the pod\'s namespace, passes the previous result on', async () => {
    const d = deps();
    const out = await run(d);
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(PREV);
    expect(d.rec.asked).toEqual([{ v: 1, op: 'pod', namespace: 'shop', name: 'web', uid: 'u-1' }]);
    expect(d.rec.applied).toHaveLength(1);
    expect(d.rec.applied[0]?.run.networkNamespace).toBe(NETNS);
    expect(d.rec.logs.join('')).toMatch(/shop\/web: iptables \(nft\) ipv4 applied/);
  });

  it.each([
    ["the agent's own pod (before asking anyone)", 'IgnoreUnknown=1;K8S_POD_NAMESPACE=istio-system;K8S_POD_NAME=istio-cni-node-x7k2p', /own agent pod/],
    ['no Kubernetes pod in CNI_ARGS (podman without K8S_POD_NAMESPACE)', 'IgnoreUnknown=1;K8S_POD_NAME=web', /not a Kubernetes pod/],
    ['an excluded namespace', 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns', /namespace kube-system excluded/],
  ])('lets through, without asking the agent or applying: %s', async (_n, args, log) => {
    const d = deps({ reply: new Error('must not be asked') });
    const out = await run(d, { ...ENV, CNI_ARGS: args }, { ...CONF, plugin_log_level: 'debug' });
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(PREV);
    expect(d.rec.asked).toEqual([]);
    expect(d.rec.applied).toEqual([]);
    expect(d.rec.logs.join('')).toMatch(log);
  });

  it('a pod named like the agent in another namespace is asked about', async () => {
    const d = deps({ reply: { v: 1, pod: { ...WEB, namespace: 'shop', name: 'istio-cni-node-x' } } });
    await run(d, { ...ENV, CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=istio-cni-node-x' });
    expect(d.rec.asked).toHaveLength(1);
  });

  it('skips a pod Istio skips, after asking', async () => {
    const d = deps({ reply: { v: 1, pod: { ...WEB, annotations: {} } } });
    const out = await run(d);
    expect(out.exitCode).toBe(0);
    expect(d.rec.asked).toHaveLength(1);
    expect(d.rec.applied).toEqual([]);
  });

  it.each([
    ['the agent unreachable', new Error('connect ENOENT /var/run/istio-cni/istio-cni-agent.sock'), 11, /cannot get pod shop\/web from the istio-cni node agent/],
    ['the API failing', { v: 1, error: 'after 5 attempt(s): HTTP 401: Unauthorized' } as AgentReply, 11, /could not get pod shop\/web/],
    ['no such pod', { v: 1, missing: 'the API has no pod shop/web' } as AgentReply, 11, /finds no pod shop\/web/],
    ['another pod (uid)', { v: 1, pod: { ...WEB, uid: 'u-2' } } as AgentReply, 11, /another pod/],
  ])('fails with a CNI error, applying nothing: %s', async (_n, reply, code, msg) => {
    const d = deps({ reply });
    const out = await run(d);
    expect(out.exitCode).toBe(1);
    expect(error(out.stdout)).toMatchObject({ cniVersion: '1.0.0', code });
    expect(error(out.stdout).msg).toMatch(msg);
    expect(d.rec.applied).toEqual([]);
  });

  it('a bad annotation is error 101 naming the pod and the annotation', async () => {
    const d = deps({ reply: { v: 1, pod: { ...WEB, annotations: { ...WEB.annotations, 'traffic.sidecar.istio.io/includeInboundPorts': 'http' } } } });
    const out = await run(d);
    expect(error(out.stdout)).toMatchObject({ code: 101 });
    expect(error(out.stdout).msg).toMatch(/pod shop\/web: invalid value "http" for annotation traffic.sidecar.istio.io\/includeInboundPorts/);
    expect(d.rec.applied).toEqual([]);
  });

  it('an ambient pod is error 103, not silence', async () => {
    const d = deps({ reply: { v: 1, pod: { ...WEB, containers: ['app'], proxy: null, labels: { 'istio.io/dataplane-mode': 'ambient' } } } });
    const out = await run(d);
    expect(error(out.stdout)).toMatchObject({ code: 103 });
  });

  it('a failed apply is error 100 with what failed', async () => {
    const out = await run(deps({ applyError: new ApplyError('iptables-restore failed (exit 1)', ['iptables-restore'], 'line 3 failed') }));
    expect(out.exitCode).toBe(1);
    expect(error(out.stdout)).toMatchObject({ code: 100, details: 'line 3 failed' });
  });

  it.each([
    ['a namespace that does not exist', { exists: false }, /no such network namespace/],
    ["the plugin's own namespace", { own: true }, /plugin's own network namespace/],
  ])('refuses %s (error 4), asking nothing', async (_n, o, msg) => {
    const d = deps(o);
    const out = await run(d);
    expect(error(out.stdout)).toMatchObject({ code: 4 });
    expect(error(out.stdout).msg).toMatch(msg);
    expect(d.rec.asked).toEqual([]);
  });

  it('logs JSON lines at the configured level', async () => {
    const d = deps();
    await run(d, ENV, { ...CONF, plugin_log_level: 'error' });
    expect(d.rec.logs).toEqual([]);
    const e = deps({ reply: new Error('gone') });
    await run(e, ENV, { ...CONF, plugin_log_level: 'error' });
    expect(e.rec.logs).toHaveLength(1);
    expect(JSON.parse(e.rec.logs[0] ?? '')).toMatchObject({ level: 'error' });
  });
});

describe('DEL', () => {
  it('succeeds with nothing to print, without a namespace, and touches nothing', async () => {
    const d = deps({ reply: new Error('must not be asked'), exists: false });
    for (const env of [{ ...ENV, CNI_COMMAND: 'DEL' }, { ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }]) {
      const out = await run(d, env);
      expect(out).toEqual({ stdout: '', exitCode: 0 });
    }
    expect(d.rec.asked).toEqual([]);
  });

  it('still refuses a configuration that is not JSON (error 6)', async () => {
    const out = await run(deps(), { ...ENV, CNI_COMMAND: 'DEL' }, '{');
    expect(error(out.stdout).code).toBe(6);
  });
});

describe('CHECK', () => {
  it('in sync: success, nothing printed', async () => {
    const d = deps();
    const out = await run(d, { ...ENV, CNI_COMMAND: 'CHECK' });
    expect(out).toEqual({ stdout: '', exitCode: 0 });
    expect(d.rec.checked).toHaveLength(1);
    expect(d.rec.applied).toEqual([]);
  });

  it('drift: error 102 with the difference', async () => {
    const out = await run(deps({ drift: '- -A ISTIO_OUTPUT -j ISTIO_REDIRECT' }), { ...ENV, CNI_COMMAND: 'CHECK' });
    expect(error(out.stdout)).toMatchObject({ code: 102, details: '- -A ISTIO_OUTPUT -j ISTIO_REDIRECT' });
  });

  it('needs a configuration of 0.4.0 or later (error 1)', async () => {
    const out = await run(deps(), { ...ENV, CNI_COMMAND: 'CHECK' }, { ...CONF, cniVersion: '0.3.1' });
    expect(error(out.stdout)).toMatchObject({ cniVersion: '0.3.1', code: 1 });
  });
});
