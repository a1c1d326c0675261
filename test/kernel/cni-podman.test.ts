import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { diff } from '../../src/api/namespace.js';
import { buildPlan } from '../../src/build/plan.js';
import { redirectConfig } from '../../src/cni/config.js';
import { factsFromPod, redirectFor } from '../../src/cni/pod.js';
import { fixedHost } from '../../src/config/host.js';
import { ROOT } from '../support/cli.js';
import { holdPodmanLock, PLUGIN, podsFile, startAgent, tempDir, type Agent } from '../support/cni.js';
import { hostNetworkState } from '../support/host-guard.js';
import { createNetns, type Netns } from './netns.js';

/**
 * A real CNI runtime: podman 4.3's CNI network backend (containernetworking-plugins from
 * /usr/lib/cni) runs a conflist of bridge + host-local + our plugin, installed there by the agent
 * (--install, on podman's conflist shape). Everything is private to the test: CONTAINERS_CONF,
 * --root, --runroot, --network-config-dir, the CNI bin dir, host-local's lease dir; never the
 * system's /etc/cni or /opt/cni. podman itself runs inside a network namespace made for the test
 * (nsenter --net), so the bridge, its addresses and the veths live there, never in the host's
 * namespace, which is read before and after and must not change. The whole file holds
 * /tmp/podman.lock (other suites use podman too).
 *
 * podman passes CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=<pod> and appends its own environment's
 * CNI_ARGS: the test sets K8S_POD_NAMESPACE=h6 there, as a kubelet's runtime would pass it.
 */

const POD_NAMESPACE = 'h6';
const NETWORK = 'h6-cni';
const SUBNET = '10.89.66';
const VALIDATION_ARGS = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info', '--run-validation', '--skip-rule-apply'];
const IMAGE = 'localhost/h6-cni-test:latest';

let dir: { path: string; remove(): void };
let releaseLock: (() => void) | undefined;
let runner: Netns;
let agent: Agent;
let hostBefore = '';
const pods: unknown[] = [];
const played: string[] = [];

const p = (...parts: string[]) => join(dir.path, ...parts);

/** podman with every store and configuration private, run inside the test's namespace. */
async function podman(args: readonly string[], timeout = 120_000) {
  return execa(
    'nsenter',
    [`--net=/var/run/netns/${runner.name}`, '--', 'podman', '--root', p('root'), '--runroot', p('runroot'), '--tmpdir', p('tmp'), '--network-config-dir', p('net'), ...args],
    { reject: false, timeout, env: { CONTAINERS_CONF: p('containers.conf'), CNI_ARGS: `K8S_POD_NAMESPACE=${POD_NAMESPACE}` } },
  );
}

/** A pod for kube play: an istio-validation init container (the entrypoint of this checkout), an app, and istio-proxy when `proxy`. */
function pod(name: string, o: { captured: boolean }) {
  const sleeper = (n: string, extra: Record<string, unknown> = {}) => ({ name: n, image: IMAGE, imagePullPolicy: 'Never', command: ['/sleeper'], ...extra });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: POD_NAMESPACE,
      // Kept after they exit (podman), so their exit code can be read. podman 4.3 refuses
      // annotation values over 63 characters: Istio's status JSON is shortened to what its test uses.
      annotations: { 'io.podman.annotations.init.container.type': 'always', ...(o.captured ? { 'sidecar.istio.io/status': 'true' } : {}) },
    },
    spec: {
      restartPolicy: 'Never',
      initContainers: [{ name: 'istio-validation', image: IMAGE, imagePullPolicy: 'Never', args: VALIDATION_ARGS, securityContext: { runAsUser: 1337, runAsGroup: 1337 } }],
      containers: [sleeper('app'), sleeper('istio-proxy', { args: ['proxy', 'sidecar'] })],
    },
  };
}

interface Played {
  readonly name: string;
  readonly validationExit: number;
  /** The pod's network namespace, as a path through its infra container's process. */
  readonly netns: string;
  readonly address: string;
}

/** kube play on our network; the validation container's exit code, the pod's namespace and address. */
async function play(name: string, captured: boolean): Promise<Played> {
  const spec = pod(name, { captured });
  pods.push(spec);
  podsFile(dir.path, pods);
  const file = p(`${name}.yaml`);
  writeFileSync(file, stringify(spec));
  played.push(name);
  const r = await podman(['kube', 'play', '--network', NETWORK, '--log-driver', 'k8s-file', file]);
  const state = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', `${name}-istio-validation`]);
  const [status, code] = state.stdout.trim().split(' ');
  const validationExit = state.exitCode === 0 && status === 'exited' ? Number(code) : -1;
  if (r.exitCode !== 0 && validationExit === 0) throw new Error(`podman kube play ${name} failed: ${r.stderr}`);
  const infra = (await podman(['pod', 'inspect', '--format', '{{.InfraContainerID}}', name])).stdout.trim();
  const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', infra])).stdout.trim();
  const address = (await podman(['inspect', '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`, infra])).stdout.trim();
  if (!/^[1-9]\d*$/.test(pid)) throw new Error(`pod ${name} has no running infra container (pid "${pid}"): ${r.stderr}`);
  return { name, validationExit, netns: `/proc/${pid}/ns/net`, address };
}

const inPod = (pl: Played, cmd: string, args: readonly string[]) => execa('nsenter', [`--net=${pl.netns}`, '--', cmd, ...args], { reject: false, timeout: 20_000 });

/** The plan the plugin derives for a pod (the pod has IPv4 only). */
function planFor(name: string, netns: string) {
  const spec = pods.find((x) => (x as { metadata: { name: string } }).metadata.name === name);
  return buildPlan(redirectConfig(redirectFor(factsFromPod(spec)), netns, false, fixedHost({ ipv6: false })).capture);
}

const SYSTEM_DIRS = ['/etc/cni/net.d', '/etc/containers', '/opt/cni/bin', '/usr/lib/cni'];
/** Files named like our plugin anywhere under the system's CNI and containers directories. */
function systemIstioCni(): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name.includes('istio-cni') || (e.isFile() && /\.conf(list)?$/.test(e.name) && readFileSync(full, 'utf8').includes('istio-cni'))) found.push(full);
    }
  };
  SYSTEM_DIRS.forEach(walk);
  return found;
}

beforeAll(async () => {
  // The whole file under /tmp/podman.lock (other suites use podman too).
  releaseLock = await holdPodmanLock();
  hostBefore = await hostNetworkState();
  dir = tempDir('podman');
  for (const d of ['root', 'runroot', 'tmp', 'net', 'bin', 'leases', 'image/usr/local/bin', 'image/etc']) mkdirSync(p(d), { recursive: true });
  const nofile = (await execa('sh', ['-c', 'ulimit -Hn'])).stdout.trim();
  writeFileSync(
    p('containers.conf'),
    [
      '[containers]',
      `default_ulimits = ["nofile=${nofile === 'unlimited' ? '1048576' : nofile}:${nofile === 'unlimited' ? '1048576' : nofile}", "nproc=4096:4096"]`,
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${p('bin')}", "/usr/lib/cni"]`,
      '',
    ].join('\n'),
  );
  // podman's own conflist shape: a bridge with host-local addresses; no portmap or firewall plugin.
  writeFileSync(
    p('net', `${NETWORK}.conflist`),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: NETWORK,
      plugins: [{ type: 'bridge', bridge: 'h6br0', isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', dataDir: p('leases'), routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: `${SUBNET}.0/24`, gateway: `${SUBNET}.1` }]] } }],
    }),
  );
  // The image: this checkout's entrypoint (the validation container) and a static sleeper (the pod's other containers).
  writeFileSync(p('sleeper.c'), '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n');
  await execa('gcc', ['-static', '-O2', '-o', p('image', 'sleeper'), p('sleeper.c')]);
  copyFileSync(join(ROOT, 'dist/entrypoint/istio-iptables'), p('image/usr/local/bin/istio-iptables'));
  writeFileSync(p('image/etc/passwd'), 'root:x:0:0::/:/sleeper\nistio-proxy:x:1337:1337::/:/sleeper\n');
  await execa('chmod', ['755', p('image/usr/local/bin/istio-iptables'), p('image/sleeper')]);
  await execa('tar', ['-C', p('image'), '-cf', p('image.tar'), '.']);
  runner = await createNetns('h6-podman');
  const imported = await podman(['import', '--change', 'ENTRYPOINT ["/usr/local/bin/istio-iptables"]', p('image.tar'), IMAGE]);
  if (imported.exitCode !== 0) throw new Error(`podman import failed: ${imported.stderr}`);
  // The agent installs the plugin into podman's configuration, as on a node.
  agent = await startAgent(p('run'), ['--pods', podsFile(dir.path, []), '--install', '--cni-net-dir', p('net'), '--cni-conf-name', `${NETWORK}.conflist`, '--cni-bin-dir', p('bin'), '--plugin', PLUGIN, '--repair=false']);
  const end = Date.now() + 15_000;
  while (!readFileSync(p('net', `${NETWORK}.conflist`), 'utf8').includes('istio-cni')) {
    if (Date.now() > end) throw new Error(`the agent did not install the plugin:\n${agent.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Bounded, but long: other suites hold /tmp/podman.lock for a whole run of theirs.
}, 2_400_000);

afterAll(async () => {
  for (const name of played) await podman(['pod', 'rm', '--force', '--time', '0', name]);
  await podman(['system', 'reset', '--force']);
  await agent?.stop();
  await runner?.remove();
  dir?.remove();
  releaseLock?.();
}, 300_000);

describe('podman (CNI backend) with bridge + host-local + istio-cni', () => {
  it("the agent installed istio-cni last in podman's conflist, and podman loads it (VERSION on every plugin)", async () => {
    const list = JSON.parse(readFileSync(p('net', `${NETWORK}.conflist`), 'utf8')) as { plugins: { type: string }[] };
    expect(list.plugins.map((x) => x.type)).toEqual(['bridge', 'istio-cni']);
    const nets = await podman(['network', 'ls', '--format', '{{.Name}}']);
    expect(nets.stdout.split('\n')).toContain(NETWORK);
  });

  it('a captured pod: its namespace equals the plan, it keeps its bridge address, its validation exits 0', async () => {
    const pl = await play('h6-captured', true);
    expect(pl.validationExit).toBe(0);
    const report = await diff(planFor(pl.name, pl.netns), { networkNamespace: pl.netns });
    expect(report.inSync).toBe(true);
    expect((await inPod(pl, 'iptables-save', ['-t', 'nat'])).stdout).toMatch(/-A ISTIO_OUTPUT -j ISTIO_REDIRECT/);
    expect(pl.address).toMatch(new RegExp(`^${SUBNET.replace(/\./g, '\\.')}\\.\\d+$`));
    expect((await inPod(pl, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout).toContain(`inet ${pl.address}/24`);
  });

  it('a skipped pod (no sidecar status): no rules, and its validation exits 126', async () => {
    const pl = await play('h6-skipped', false);
    expect(pl.validationExit).toBe(126);
    expect((await inPod(pl, 'iptables-save', [])).stdout).not.toMatch(/ISTIO/);
    expect(pl.address).toMatch(new RegExp(`^${SUBNET.replace(/\./g, '\\.')}\\.`));
  });

  it('podman rm calls DEL: it succeeds and the chain goes on (the bridge releases the address)', async () => {
    const pl = await play('h6-removed', true);
    expect(pl.validationExit).toBe(0);
    const lease = p('leases', NETWORK, pl.address);
    expect(existsSync(lease)).toBe(true);
    const rm = await podman(['pod', 'rm', '--force', '--time', '0', pl.name]);
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect(rm.stderr).not.toMatch(/error|tearing down/i);
    // libcni runs DEL from the last plugin back: had ours failed, the bridge's DEL would not have run.
    expect(existsSync(lease)).toBe(false);
  });

  it('four pods started at once all end right', async () => {
    const four = await Promise.all([play('h6-four-a', true), play('h6-four-b', false), play('h6-four-c', true), play('h6-four-d', true)]);
    expect(four.map((x) => x.validationExit)).toEqual([0, 126, 0, 0]);
    for (const pl of four.filter((x) => x.validationExit === 0)) expect((await diff(planFor(pl.name, pl.netns), { networkNamespace: pl.netns })).inSync, pl.name).toBe(true);
    expect(new Set(four.map((x) => x.address)).size).toBe(4);
  });

  it("the host is untouched: its network namespace as before, nothing of ours in the system's CNI and containers directories", async () => {
    expect(await hostNetworkState()).toBe(hostBefore);
    expect((await execa('ip', ['-o', 'link'])).stdout).not.toMatch(/h6br0/);
    expect(systemIstioCni()).toEqual([]);
  });
});
