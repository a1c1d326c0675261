import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { diff } from '../../src/api/namespace.js';
import { buildPlan } from '../../src/build/plan.js';
import { redirectConfig } from '../../src/cni/config.js';
import { factsFromPod, redirectFor } from '../../src/cni/pod.js';
import { fixedHost } from '../../src/config/host.js';
import { ROOT } from '../support/cli.js';
import { holdPodmanLock, podInterface, podsFile, runPlugin, tempDir, until } from '../support/cni.js';
import { hostNetworkState } from '../support/host-guard.js';
import { createNetns } from './netns.js';

/**
 * The agent's image (container/cni/Dockerfile, built by scripts/podman-cni-image.sh as CI builds
 * it; podman's layer cache makes a rebuild of unchanged inputs take seconds) run by podman as the
 * DaemonSet of container/cni/istio-cni.yaml runs it: the DaemonSet's args, env and mounts, with
 * temporary directories standing in for the node's /opt/cni/bin, /etc/cni/net.d and
 * /var/run/istio-cni, and --pods instead of the API (no API server here; the node's /proc is not
 * mounted: repair needs the API). The container has its own network namespace (--network none):
 * nothing of the host's network is touched. Then the node's side: the plugin the image installed,
 * run on the host as a runtime runs it, asks the agent in the container over the socket in the
 * shared run directory and programs a namespace made by the test. SIGTERM takes the plugin out.
 */

const IMAGE = 'localhost/istio-cni-ts:latest';
const CONTAINER = `h6-cni-image-${process.pid}`;
/** A Debian base, Node's executable, the bundle and the plugin, iptables, nft, ip: about 250 MB. */
const MAX_BYTES = 300_000_000;

interface K8sContainer {
  args: string[];
  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  readinessProbe: { httpGet: { path: string; port: number } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
const daemonSet = parseAllDocuments(readFileSync(join(ROOT, 'container/cni/istio-cni.yaml'), 'utf8'))
  .map((d) => d.toJSON() as { kind: string; spec: { template: { spec: { containers: K8sContainer[] } } } })
  .find((d) => d.kind === 'DaemonSet');
const agentContainer = daemonSet?.spec.template.spec.containers[0];

/** An injected pod (Istio's sidecar status), in the pods file the agent reads. */
const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'reviews-v1-7c9d', namespace: 'bookinfo', uid: 'uid-reviews', annotations: { 'sidecar.istio.io/status': '{"initContainers":["istio-validation"]}', 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432' } },
  spec: { nodeName: 'node-a', initContainers: [{ name: 'istio-validation' }], containers: [{ name: 'reviews' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'], securityContext: { runAsUser: 1337 } }] },
};
/** The node's primary configuration before the agent: a cluster CNI's list (Calico's shape, as Istio's tests have it). */
const PRIMARY = {
  name: 'k8s-pod-network',
  cniVersion: '0.3.1',
  plugins: [
    { type: 'calico', log_level: 'info', datastore_type: 'kubernetes', nodename: 'node-a', ipam: { type: 'calico-ipam' }, policy: { type: 'k8s' }, kubernetes: { kubeconfig: '/etc/cni/net.d/calico-kubeconfig' } },
    { type: 'portmap', snat: true, capabilities: { portMappings: true } },
  ],
};
const PREV = { cniVersion: '0.3.1', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ version: '4', address: '10.0.0.2/24', interface: 0 }], routes: [], dns: {} };

let dir: { path: string; remove(): void };
let releaseLock: (() => void) | undefined;
let hostBefore = '';
let build = '';
const p = (...parts: string[]) => join(dir.path, ...parts);
const confFile = () => p('net.d', '10-calico.conflist');

const podman = (args: readonly string[], timeout = 120_000) => execa('podman', args, { reject: false, timeout });
const inContainer = (args: readonly string[]) => podman(['exec', CONTAINER, ...args], 30_000);

/** The DaemonSet's host mounts, each to a directory of the test standing in for the node's. */
const STAND_INS: Record<string, string> = { 'cni-bin-dir': 'bin', 'cni-net-dir': 'net.d', 'cni-run-dir': 'run' };

beforeAll(async () => {
  if (agentContainer === undefined) throw new Error('container/cni/istio-cni.yaml has no DaemonSet container');
  releaseLock = await holdPodmanLock();
  hostBefore = await hostNetworkState();
  dir = tempDir('image');
  for (const d of ['bin', 'net.d', 'run', 'pods']) mkdirSync(p(d));
  writeFileSync(confFile(), JSON.stringify(PRIMARY, null, 2));
  podsFile(p('pods'), [POD]);
  const built = await execa('bash', [join(ROOT, 'scripts/podman-cni-image.sh')], { cwd: ROOT, reject: false, timeout: 1_800_000 });
  if (built.exitCode !== 0) throw new Error(`scripts/podman-cni-image.sh failed (${built.exitCode}):\n${built.stderr}\n${built.stdout}`);
  build = built.stdout.trim();
  console.log(build);

  const mounts: string[] = [];
  for (const m of agentContainer.volumeMounts) {
    const standIn = STAND_INS[m.name];
    if (standIn !== undefined) mounts.push('-v', `${p(standIn)}:${m.mountPath}`);
  }
  const env = agentContainer.env.map((e) => `${e.name}=${e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace' ? 'istio-system' : 'node-a'}`);
  const run = await podman([
    'run', '--detach', '--name', CONTAINER, '--network', 'none', '--privileged', '--pull=never',
    ...mounts, '-v', `${p('pods')}:/pods:ro`, ...env.flatMap((e) => ['--env', e]),
    IMAGE, ...agentContainer.args, '--pods=/pods/pods.json',
  ]);
  if (run.exitCode !== 0) throw new Error(`podman run ${IMAGE} failed: ${run.stderr}`);
}, 2_400_000);

afterAll(async () => {
  await podman(['rm', '--force', '--time', '0', CONTAINER]);
  dir?.remove();
  releaseLock?.();
}, 120_000);

const logs = async () => {
  const r = await execa('podman', ['logs', CONTAINER], { reject: false, all: true, timeout: 30_000 });
  return r.all ?? '';
};
const readyz = async () => {
  const { path, port } = agentContainer!.readinessProbe.httpGet;
  const r = await inContainer(['node', '-e', `fetch('http://127.0.0.1:${port}${path}').then((r) => console.log(r.status), (e) => console.log(e.cause?.code ?? e.message))`]);
  return r.stdout.trim();
};
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe(`the agent's image (${IMAGE}) run as the DaemonSet runs it`, () => {
  it('is an image of at most 300 MB whose /opt/istio-cni holds the bundled agent and the plugin only', async () => {
    const size = Number((await podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE])).stdout);
    expect(size).toBeGreaterThan(50_000_000);
    expect(size).toBeLessThanOrEqual(MAX_BYTES);
    const files = await podman(['run', '--rm', '--network', 'none', '--pull=never', '--entrypoint', 'find', IMAGE, '/opt/istio-cni', '-type', 'f']);
    expect(files.stdout.split('\n').sort()).toEqual(['/opt/istio-cni/agent/istio-cni-agent.mjs', '/opt/istio-cni/cni/istio-cni']);
  });

  it('becomes ready once it has installed the plugin: a copy of its own (0755), istio-cni last in the primary list', async () => {
    await until('/readyz answering 200', async () => (await readyz()) === '200', 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await logs()}`);
    });
    const installed = p('bin', 'istio-cni');
    expect(statSync(installed).mode & 0o777).toBe(0o755);
    const inImage = await inContainer(['sha256sum', '/opt/istio-cni/cni/istio-cni']);
    expect(inImage.stdout.split(' ')[0]).toBe(sha256(readFileSync(installed)));
    const list = JSON.parse(readFileSync(confFile(), 'utf8')) as { plugins: Record<string, unknown>[] };
    expect(list.plugins.map((x) => x['type'])).toEqual(['calico', 'portmap', 'istio-cni']);
    expect(list.plugins[0]).toEqual(PRIMARY.plugins[0]);
    expect(list.plugins[2]).toMatchObject({ cni_agent_run_dir: '/var/run/istio-cni', exclude_namespaces: ['kube-system'], pod_namespace: 'istio-system', plugin_log_level: 'info' });
    expect(existsSync(p('run', 'istio-cni-agent.sock'))).toBe(true);
  });

  it("the plugin it installed, run on the node, asks it and programs a pod's namespace (its plan exactly)", async () => {
    const entry = (JSON.parse(readFileSync(confFile(), 'utf8')) as { plugins: Record<string, unknown>[] }).plugins[2];
    // The conf as libcni hands it to the plugin: the list's name and version, the previous result.
    // The node's /var/run/istio-cni is the test's directory here.
    const conf = { ...entry, cniVersion: PRIMARY.cniVersion, name: PRIMARY.name, cni_agent_run_dir: p('run'), prevResult: PREV };
    const ns = await createNetns('cni-image');
    try {
      await podInterface((cmd, args) => ns.run(cmd, args));
      const netns = `/var/run/netns/${ns.name}`;
      const r = await runPlugin({ plugin: p('bin', 'istio-cni'), command: 'ADD', netns, pod: { namespace: 'bookinfo', name: POD.metadata.name, uid: POD.metadata.uid }, conf });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.json).toEqual(PREV);
      const plan = buildPlan(redirectConfig(redirectFor(factsFromPod(POD)), netns, false, fixedHost({ ipv6: false })).capture);
      expect((await diff(plan, { networkNamespace: netns })).inSync).toBe(true);
      expect((await ns.run('iptables-save', ['-t', 'nat'])).stdout).toMatch(/-A ISTIO_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN/);
      // The agent's resident memory after answering, as the image runs it (printed, not asserted: bench/ measures).
      const rss = await inContainer(['sh', '-c', 'grep VmRSS /proc/1/status']);
      console.log(`agent in the image, one pod known: ${rss.stdout.trim()}`);
    } finally {
      await ns.remove();
    }
  });

  it('SIGTERM: it takes its entry and the plugin out, leaves the rest of the list, and exits 0', async () => {
    const stop = await podman(['stop', '--time', '10', CONTAINER]);
    expect(stop.exitCode, stop.stderr).toBe(0);
    const state = await podman(['inspect', '--format', '{{.State.ExitCode}}', CONTAINER]);
    expect(state.stdout.trim()).toBe('0');
    expect(JSON.parse(readFileSync(confFile(), 'utf8'))).toEqual(PRIMARY);
    expect(existsSync(p('bin', 'istio-cni'))).toBe(false);
    expect(await logs()).toMatch(/uninstalled: .*istio-cni/);
  });

  it("leaves the host's network namespace as it was", async () => {
    expect(await hostNetworkState()).toBe(hostBefore);
  });
});
