import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { askAgent, nodeDirs, PLUGIN, podRequest, podsFile, startAgent, tempDir, until } from '../support/cni.js';

/**
 * The node agent as its package bin runs (bin/istio-cni-agent.js): with --pods it answers the
 * plugin's question over its socket, re-reading the file for a pod it does not have; with
 * --install it puts the plugin into the node's configuration, puts it back when another tool
 * rewrites the file, and takes it out when it stops.
 */
const dirs: { remove(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

const pod = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, annotations: { 'sidecar.istio.io/status': '{}' }, ...extra },
  spec: { containers: [{ name: 'app' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'] }] },
});


describe('istio-cni-agent --pods', () => {
  it('answers for a pod in the file, with its facts; a missing pod as missing', async () => {
    const d = tempDir('agent-pods');
    dirs.push(d);
    const file = podsFile(d.path, [pod('web'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'none' } } }]);
    const agent = await startAgent(join(d.path, 'run'), ['--pods', file]);
    try {
      expect((statSync(agent.socket).mode & 0o777).toString(8)).toBe('600');
      const r = await askAgent(agent.socket, podRequest('shop', 'web', 'uid-web'));
      expect(r).toEqual({ v: 1, pod: { namespace: 'shop', name: 'web', uid: 'uid-web', containers: ['app', 'istio-proxy'], labels: {}, annotations: { 'sidecar.istio.io/status': '{}' }, proxy: { env: {}, type: 'sidecar', runAsUser: null, runAsGroup: null }, namespaceDataplaneMode: 'none' } });
      expect(await askAgent(agent.socket, podRequest('shop', 'nope'))).toMatchObject({ missing: expect.stringMatching(/no pod shop\/nope/) });
      // Another uid than the file's: not this pod.
      expect(await askAgent(agent.socket, podRequest('shop', 'web', 'uid-other'))).toMatchObject({ missing: expect.any(String) });
      // A pod added to the file later is found (the file is read again on a miss).
      podsFile(d.path, [pod('web'), pod('late')]);
      expect(await askAgent(agent.socket, podRequest('shop', 'late'))).toMatchObject({ pod: { name: 'late' } });
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });

  it('reads YAML with several documents', async () => {
    const d = tempDir('agent-yaml');
    dirs.push(d);
    const file = join(d.path, 'pods.yaml');
    writeFileSync(file, `apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns}\nspec: {containers: [{name: app}]}\n---\napiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: ns}, spec: {containers: [{name: istio-proxy}]}}\n`);
    const agent = await startAgent(join(d.path, 'run'), ['--pods', file]);
    try {
      expect(await askAgent(agent.socket, podRequest('ns', 'a'))).toMatchObject({ pod: { containers: ['app'] } });
      expect(await askAgent(agent.socket, podRequest('ns', 'b'))).toMatchObject({ pod: { containers: ['istio-proxy'] } });
    } finally {
      await agent.stop();
    }
  });

  it.each([
    ['a Deployment', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }, /object 1 is a Deployment: expected a Pod, a Namespace or a List/],
    ['a pod without a name', { apiVersion: 'v1', kind: 'Pod', metadata: {} }, /object 1 is not a pod/],
  ])('refuses to start on a file with %s, naming it', async (_n, object, message) => {
    const d = tempDir('agent-bad');
    dirs.push(d);
    await expect(startAgent(join(d.path, 'run'), ['--pods', podsFile(d.path, [object])])).rejects.toThrow(message);
  });

  it('answers a request that is not the protocol with an error, and keeps serving', async () => {
    const d = tempDir('agent-proto');
    dirs.push(d);
    const agent = await startAgent(join(d.path, 'run'), ['--pods', podsFile(d.path, [pod('web')])]);
    try {
      const bad = await askAgent(agent.socket, { v: 2 } as never);
      expect(bad).toMatchObject({ error: expect.stringMatching(/not one the protocol/) });
      expect(await askAgent(agent.socket, podRequest('shop', 'web'))).toMatchObject({ pod: { name: 'web' } });
    } finally {
      await agent.stop();
    }
  });

  it('refuses to replace a file at its socket path that is not a socket', async () => {
    const d = tempDir('agent-nosock');
    dirs.push(d);
    mkdirSync(join(d.path, 'run'));
    writeFileSync(join(d.path, 'run', 'istio-cni-agent.sock'), 'important');
    await expect(startAgent(join(d.path, 'run'), ['--pods', podsFile(d.path, [pod('web')])])).rejects.toThrow(/is not a socket; refusing to replace it/);
    expect(readFileSync(join(d.path, 'run', 'istio-cni-agent.sock'), 'utf8')).toBe('important');
  });
});

describe('istio-cni-agent --install', () => {
  it('installs, restores the entry after a rewrite, and uninstalls on SIGTERM', { timeout: 30_000 }, async () => {
    const d = nodeDirs('agent-install');
    dirs.push(d);
    const { net, bin } = d;
    const conflist = join(net, '10-calico.conflist');
    const original = { cniVersion: '0.3.1', name: 'k8s-pod-network', plugins: [{ type: 'calico', ipam: { type: 'calico-ipam' } }, { type: 'portmap', capabilities: { portMappings: true } }] };
    writeFileSync(conflist, JSON.stringify(original));
    const types = () => (JSON.parse(readFileSync(conflist, 'utf8')) as { plugins: { type: string }[] }).plugins.map((p) => p.type);
    const agent = await startAgent(join(d.path, 'run'), ['--pods', podsFile(d.path, []), '--install', '--cni-net-dir', net, '--cni-bin-dir', bin, '--plugin', PLUGIN, '--install-retry-ms', '200']);
    try {
      await until('the plugin installed', () => types().includes('istio-cni'));
      expect(types()).toEqual(['calico', 'portmap', 'istio-cni']);
      expect(readFileSync(join(bin, 'istio-cni')).equals(readFileSync(PLUGIN))).toBe(true);
      const entry = (JSON.parse(readFileSync(conflist, 'utf8')) as { plugins: Record<string, unknown>[] }).plugins[2];
      expect(entry).toMatchObject({ cni_agent_run_dir: join(d.path, 'run'), exclude_namespaces: ['kube-system'], ambient_enabled: false });
      // Another tool writes its own version of the file: our entry comes back.
      writeFileSync(conflist, JSON.stringify(original));
      await until('the entry restored', () => types().join() === 'calico,portmap,istio-cni');
    } finally {
      expect(await agent.stop()).toBe(0);
    }
    expect(JSON.parse(readFileSync(conflist, 'utf8'))).toEqual(original);
    expect(() => statSync(join(bin, 'istio-cni'))).toThrow();
    expect(agent.log()).toMatch(/uninstalled/);
  });
});
