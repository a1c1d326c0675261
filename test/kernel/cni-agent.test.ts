import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PLUGIN, podInterface, runPlugin, until, type Agent } from '../support/cni.js';
import { apiPod, standInPerTest } from '../support/kube-standin.js';
import { createNetns, withNetns, type Netns } from './netns.js';

/**
 * The plugin and the node agent together against a STAND-IN Kubernetes API server (no real one
 * can be installed here; test/support/kube-standin.ts serves the API's real shapes), on real
 * network namespaces: an expired token (401) does not block the agent's own pod, the API down
 * fails ADD with a CNI error after bounded retries, a pod created a moment ago gets its rules,
 * and a pod whose validation exited 126 is repaired (rules applied from outside), deleted or
 * labelled, as the repair options say.
 */

const ctx = standInPerTest('kagent', ['--pod-namespace', 'istio-system', '--api-attempts', '3', '--api-retry-ms', '200', '--api-timeout-ms', '1000', '--plugin', PLUGIN]);
const start = ctx.start;

const conf = (a: Agent) => ({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'istio-cni', cni_agent_run_dir: a.runDir, pod_namespace: 'istio-system', exclude_namespaces: ['kube-system'] });
const rules = async (ns: Netns) => (await ns.run('iptables-nft-save', [])).stdout + (await ns.run('iptables-legacy-save', [])).stdout;

describe('stand-in API server: with an expired token (401 from the API)', () => {
  it("the agent's own pod starts (no rules, no question asked); any other pod's ADD fails with error 11", async () => {
    const a = await start([], 'expired-token');
    await withNetns('cni-401', async (ns) => {
      await podInterface((cmd, args) => ns.run(cmd, args));
      const own = await runPlugin({ command: 'ADD', netns: `/var/run/netns/${ns.name}`, pod: { namespace: 'istio-system', name: 'istio-cni-node-7xk2p' }, conf: conf(a) });
      expect(own.exitCode, own.stdout).toBe(0);
      expect(own.stderr).toMatch(/looks like our own agent pod/);
      const started = Date.now();
      const other = await runPlugin({ command: 'ADD', netns: `/var/run/netns/${ns.name}`, pod: { namespace: 'shop', name: 'web' }, conf: conf(a) });
      expect(other.exitCode).toBe(1);
      expect(other.json).toMatchObject({ code: 11, msg: 'the istio-cni node agent could not get pod shop/web', details: expect.stringMatching(/HTTP 401: Unauthorized/) });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await rules(ns)).not.toMatch(/ISTIO/);
    });
  });
});

describe('stand-in API server: with the API down', () => {
  it('ADD fails with a CNI error after bounded retries, and nothing is applied', async () => {
    const a = await start();
    await ctx.api.stop();
    await withNetns('cni-apidown', async (ns) => {
      await podInterface((cmd, args) => ns.run(cmd, args));
      const started = Date.now();
      const r = await runPlugin({ command: 'ADD', netns: `/var/run/netns/${ns.name}`, pod: { namespace: 'shop', name: 'web' }, conf: conf(a) });
      const took = Date.now() - started;
      expect(r.json).toMatchObject({ code: 11, details: expect.stringMatching(/after 3 attempt\(s\)/) });
      // 3 attempts of at most 1 s, 200 ms apart: bounded well within the plugin's own 30 s.
      expect(took).toBeLessThan(6_000);
      expect(await rules(ns)).not.toMatch(/ISTIO/);
    });
  });
});

describe('stand-in API server: a pod created a moment ago', () => {
  it('gets its rules (found by the watch or a GET)', async () => {
    const a = await start();
    await until('watching', () => ctx.api.watchCount >= 2);
    ctx.api.put(apiPod('shop', 'fresh', 'node-a'));
    await withNetns('cni-fresh', async (ns) => {
      await podInterface((cmd, args) => ns.run(cmd, args));
      const r = await runPlugin({ command: 'ADD', netns: `/var/run/netns/${ns.name}`, pod: { namespace: 'shop', name: 'fresh', uid: 'uid-fresh' }, conf: conf(a) });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(await rules(ns)).toMatch(/-A ISTIO_OUTPUT -j ISTIO_REDIRECT/);
    });
  });
});

describe('stand-in API server: repair of a pod whose validation exited 126', () => {
  /** A pod's namespace with a process in it (its sandbox), at an address no other suite uses. */
  async function sandbox(address: string) {
    const ns = await createNetns('cni-repair');
    await podInterface((cmd, args) => ns.run(cmd, args), `${address}/24`);
    const holder = spawn('ip', ['netns', 'exec', ns.name, 'sleep', '120'], { stdio: 'ignore' });
    return {
      ns,
      async remove() {
        holder.kill('SIGKILL');
        await new Promise((r) => holder.once('exit', r));
        await ns.remove();
      },
    };
  }
  const broken = (name: string, address: string) =>
    apiPod('shop', name, 'node-a', {
      status: {
        podIP: address,
        initContainerStatuses: [{ name: 'istio-validation', state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 126, reason: 'Error' } } }],
      },
    });
  // 100.64.0.0/10 with this process's id: an address no other suite's namespace holds.
  const address = `100.${64 + (process.pid % 60)}.${(process.pid >> 6) % 250}.6`;

  it('repair: the rules are applied in its namespace from outside (the plugin run for it)', async () => {
    const box = await sandbox(address);
    try {
      ctx.api.put(broken('crashing', address));
      const a = await start(['--host-proc', '/proc']);
      await until('the rules in the pod\'s namespace', async () => /-A ISTIO_OUTPUT -j ISTIO_REDIRECT/.test(await rules(box.ns)), 20_000);
      await until('the repair logged', () => /pod shop\/crashing detected as broken \(validation exited 126\): rules applied in \/proc\/\d+\/ns\/net/.test(a.log()));
    } finally {
      await box.remove();
    }
  });

  it('a pod whose validation now exits 0 is left alone', async () => {
    const pod = broken('fine', address);
    (pod['status'] as { initContainerStatuses: { state: unknown }[] }).initContainerStatuses[0]!.state = { terminated: { exitCode: 0, reason: 'Completed' } };
    ctx.api.put(pod);
    const a = await start(['--repair-mode', 'label']);
    await until('watching', () => ctx.api.watchCount >= 2);
    expect(ctx.api.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect(a.log()).not.toMatch(/detected as broken/);
  });

  it('label: the pod gets cni.istio.io/uninitialized=true through pods/status', async () => {
    ctx.api.put(broken('crashing', address));
    await start(['--repair-mode', 'label']);
    await until('labelled', () => ctx.api.get('shop', 'crashing')?.metadata.labels?.['cni.istio.io/uninitialized'] === 'true');
    expect(ctx.api.requests.filter((r) => r.method === 'PATCH').map((r) => r.path)).toEqual(['/api/v1/namespaces/shop/pods/crashing/status']);
  });

  it('delete: the pod is deleted, with its uid and version as preconditions', async () => {
    ctx.api.put(broken('crashing', address));
    await start(['--repair-mode', 'delete']);
    await until('deleted', () => ctx.api.get('shop', 'crashing') === undefined);
    expect(ctx.api.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual(['/api/v1/namespaces/shop/pods/crashing']);
  });
});
