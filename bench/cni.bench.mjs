// istio-cni ADD until the rules are in place, against the init container's entrypoint for the
// same pod, side by side, alternating, in fresh network namespaces (eth0 10.0.0.2/24, as a pod's):
//   plugin      dist/cni/istio-cni, run as a runtime runs it (CNI_* variables, the conf with a
//               previous result on stdin), from the node's namespace; it asks the running node
//               agent (--pods) about the pod and programs the namespace from outside
//   entrypoint  dist/entrypoint/istio-iptables with the injector's istio-init args for the same
//               pod, started in the namespace (nsenter --net), as the init container runs there
//   floor       the unavoidable work: iptables-restore of the plan's payload in the namespace
//               (nsenter --net), plus the routing steps for TPROXY
// Each sample: a namespace made (not timed), the variant run (timed), its rules checked, the
// namespace deleted. Medians over N rounds; ratios to the floor.
// Usage (root): npm run build && npm run build:entrypoint && node bench/cni.bench.mjs [rounds]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.argv[2] ?? 15);
const plugin = join(root, 'dist/cni/istio-cni');
const entry = join(root, 'dist/entrypoint/istio-iptables');
const agentBin = join(root, 'bin/istio-cni-agent.js');
const cliBin = join(root, 'bin/istio-iptables.js');

// The injector's istio-init args for a pod with no traffic annotations (Istio's injection template),
// and the same pod as the plugin sees it.
const INIT = {
  REDIRECT: ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:error'],
  TPROXY: ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:error'],
};
const pod = (name, mode) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'bench', uid: `uid-${name}`, annotations: { 'sidecar.istio.io/status': '{}', 'sidecar.istio.io/interceptionMode': mode } },
  spec: { initContainers: [{ name: 'istio-validation' }], containers: [{ name: 'app' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'] }] },
});

const dir = mkdtempSync(join(tmpdir(), 'iit-h6-bench-cni-'));
writeFileSync(join(dir, 'pods.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [pod('redirect', 'REDIRECT'), pod('tproxy', 'TPROXY')] }));
const runDir = join(dir, 'run');
const agent = spawn(process.execPath, [agentBin, '--run-dir', runDir, '--pods', join(dir, 'pods.json'), '--ready-address', 'none', '--repair=false', '--log-level', 'error'], { stdio: 'ignore' });
for (let i = 0; i < 500 && !existsSync(join(runDir, 'istio-cni-agent.sock')); i++) await new Promise((r) => setTimeout(r, 20));

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

let seq = 0;
function namespace() {
  const ns = `h6-bench-${process.pid}-${seq++}`;
  sh('ip', ['netns', 'add', ns]);
  for (const a of [['link', 'set', 'lo', 'up'], ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0'], ['addr', 'add', '10.0.0.2/24', 'dev', 'eth0'], ['link', 'set', 'eth0', 'up']]) sh('ip', ['-n', ns, ...a]);
  return ns;
}

const CONF = (name) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'istio-cni', cni_agent_run_dir: runDir, prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24', interface: 0 }] } });

function payload(mode) {
  const dry = JSON.parse(sh(process.execPath, [cliBin, ...INIT[mode].slice(1), '--enable-ipv6=false', '--dry-run', '--output', 'json']));
  const f = join(dir, `${mode}.v4`);
  writeFileSync(f, dry.iptablesRestore);
  const lines = [`iptables-restore --noflush < ${f}`, ...dry.ipCommands.map((c) => c.join(' '))];
  const script = join(dir, `${mode}.floor.sh`);
  writeFileSync(script, `set -e\n${lines.join('\n')}\n`);
  return script;
}

function timed(argv, env, input) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env, input, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return ms;
}

const PATH = process.env.PATH;
const variants = (mode) => {
  const floor = payload(mode);
  const name = mode.toLowerCase();
  return {
    plugin: (ns) =>
      timed([plugin], { PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bench', CNI_NETNS: `/var/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${name}` }, CONF(name)),
    entrypoint: (ns) => timed(['nsenter', `--net=/var/run/netns/${ns}`, '--', entry, ...INIT[mode]], { PATH }),
    floor: (ns) => timed(['nsenter', `--net=/var/run/netns/${ns}`, '--', 'sh', floor], { PATH }),
  };
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  for (const mode of ['REDIRECT', 'TPROXY']) {
    const v = variants(mode);
    const samples = Object.fromEntries(Object.keys(v).map((k) => [k, []]));
    for (let i = 0; i < rounds; i++) {
      for (const [k, run] of Object.entries(v)) {
        const ns = namespace();
        try {
          samples[k].push(run(ns));
          if (!sh('ip', ['netns', 'exec', ns, 'iptables-save', '-t', 'nat']).includes('-A ISTIO_OUTPUT')) throw new Error(`${k}: no rules in ${ns}`);
        } finally {
          sh('ip', ['netns', 'del', ns]);
        }
      }
    }
    const floor = median(samples.floor);
    console.log(`\n${mode} IPv4 sidecar pod, ${rounds} rounds (median ms, ratio to floor):`);
    for (const [k, xs] of Object.entries(samples)) console.log(`  ${k.padEnd(11)} ${median(xs).toFixed(2).padStart(7)} ms  ${(median(xs) / floor).toFixed(2)}x  (min ${Math.min(...xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)})`);
  }
} finally {
  agent.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
