// The node agent's resident memory with N pods known (default 1,000, as on a large node), against
// the same agent knowing none, side by side:
//   file  --pods FILE with N injected pods (a List, JSON)
//   api   --kubeconfig to a minimal HTTPS API in this process: the node's PodList of N pods (in
//         the pages the agent asks for), then a watch that stays open (the agent's normal state)
// The pods are what Istio's injector makes of a Deployment's pod (istio-validation, the app,
// istio-proxy with its env, probes and mounts, status): about 7 KB of JSON each.
// Each agent is started, asked for the last pod (so it has answered), given 3 s to settle,
// and its VmRSS and VmHWM read from /proc. Usage: npm run build && node bench/cni-agent-memory.bench.mjs [pods]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const count = Number(process.argv[2] ?? 1000);
// BENCH_AGENT: another build of the agent (the image's bundle, scripts/bundle-agent.mjs) in its place.
const agentBin = process.env.BENCH_AGENT ?? join(root, 'bin/istio-cni-agent.js');
const dir = mkdtempSync(join(tmpdir(), 'iit-h6-bench-mem-'));

function pod(i) {
  const name = `reviews-v${i % 3}-7d8f9c5b6-${String(i).padStart(5, '0')}`;
  const env = (n, v) => ({ name: n, value: v });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: `team-${i % 20}`,
      uid: `6f1c0d2e-${String(i).padStart(4, '0')}-4a7b-9c3d-1e2f3a4b5c6d`,
      resourceVersion: String(1000 + i),
      labels: { app: 'reviews', version: `v${i % 3}`, 'pod-template-hash': '7d8f9c5b6', 'security.istio.io/tlsMode': 'istio', 'service.istio.io/canonical-name': 'reviews', 'service.istio.io/canonical-revision': `v${i % 3}` },
      annotations: {
        'istio.io/rev': 'default',
        'kubectl.kubernetes.io/default-container': 'reviews',
        'kubectl.kubernetes.io/default-logs-container': 'reviews',
        'prometheus.io/path': '/stats/prometheus',
        'prometheus.io/port': '15020',
        'prometheus.io/scrape': 'true',
        'sidecar.istio.io/status': '{"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}',
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d8f9c5b6', uid: '0a1b2c3d-0000-4000-8000-000000000000', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: 'node-a',
      serviceAccountName: 'bookinfo-reviews',
      initContainers: [
        {
          name: 'istio-validation',
          image: 'docker.io/istio/proxyv2:1.28.0',
          args: ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info', '--run-validation', '--skip-rule-apply'],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
          resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '100m', memory: '128Mi' } },
        },
      ],
      containers: [
        { name: 'reviews', image: 'docker.io/istio/examples-bookinfo-reviews-v1:1.20.2', ports: [{ containerPort: 9080, protocol: 'TCP' }], env: [env('LOG_DIR', '/tmp/logs')], volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }] },
        {
          name: 'istio-proxy',
          image: 'docker.io/istio/proxyv2:1.28.0',
          args: ['proxy', 'sidecar', '--domain', '$(POD_NAMESPACE).svc.cluster.local', '--proxyLogLevel=warning', '--proxyComponentLogLevel=misc:error', '--log_output_level=default:info'],
          env: [
            env('PILOT_CERT_PROVIDER', 'istiod'), env('CA_ADDR', 'istiod.istio-system.svc:15012'), env('PROXY_CONFIG', '{}\n'), env('ISTIO_META_POD_PORTS', '[{"containerPort":9080,"protocol":"TCP"}]'),
            env('ISTIO_META_APP_CONTAINERS', 'reviews'), env('GOMEMLIMIT', '1073741824'), env('GOMAXPROCS', '2'), env('ISTIO_META_CLUSTER_ID', 'Kubernetes'), env('ISTIO_META_NODE_NAME', 'node-a'),
            env('ISTIO_META_INTERCEPTION_MODE', 'REDIRECT'), env('ISTIO_META_WORKLOAD_NAME', 'reviews-v1'), env('ISTIO_META_OWNER', 'kubernetes://apis/apps/v1/namespaces/default/deployments/reviews-v1'), env('ISTIO_META_MESH_ID', 'cluster.local'),
            env('TRUST_DOMAIN', 'cluster.local'), env('ISTIO_META_DNS_CAPTURE', 'true'), env('ISTIO_KUBE_APP_PROBERS', '{}'),
            { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }, { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
            { name: 'INSTANCE_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } }, { name: 'SERVICE_ACCOUNT', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.serviceAccountName' } } },
          ],
          ports: [{ containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' }],
          readinessProbe: { failureThreshold: 4, httpGet: { path: '/healthz/ready', port: 15021, scheme: 'HTTP' }, periodSeconds: 15, timeoutSeconds: 3 },
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, privileged: false, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
          volumeMounts: ['workload-socket', 'credential-socket', 'workload-certs', 'istiod-ca-cert', 'istio-data', 'istio-envoy', 'istio-token', 'istio-podinfo'].map((n) => ({ name: n, mountPath: `/var/run/secrets/${n}` })),
        },
      ],
      volumes: ['workload-socket', 'credential-socket', 'workload-certs', 'istio-envoy', 'istio-data', 'istio-podinfo', 'istio-token', 'istiod-ca-cert', 'tmp'].map((n) => ({ name: n, emptyDir: {} })),
    },
    status: {
      phase: 'Running',
      podIP: `10.244.${Math.floor(i / 250)}.${(i % 250) + 2}`,
      hostIP: '192.168.1.10',
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' })),
      initContainerStatuses: [{ name: 'istio-validation', ready: true, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: '2026-01-01T00:00:01Z', finishedAt: '2026-01-01T00:00:01Z' } } }],
      containerStatuses: ['reviews', 'istio-proxy'].map((name) => ({ name, ready: true, restartCount: 0, started: true, state: { running: { startedAt: '2026-01-01T00:00:02Z' } }, image: 'img', imageID: 'sha256:0000', containerID: 'containerd://0000' })),
    },
  };
}

const pods = Array.from({ length: count }, (_, i) => pod(i));
const perPod = Math.round(JSON.stringify(pods).length / Math.max(count, 1));

// A minimal HTTPS API for the api variant: this node's pods listed, namespaces listed, watches held open.
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key'), '-out', join(dir, 'cert'), '-days', '1', '-subj', '/CN=bench', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
const cert = readFileSync(join(dir, 'cert'), 'utf8');
let served = [];
const held = new Set();
const server = createServer({ key: readFileSync(join(dir, 'key')), cert }, (req, res) => {
  const url = new URL(req.url, 'https://x');
  if (url.searchParams.get('watch') === 'true') {
    res.writeHead(200, { 'content-type': 'application/json' });
    held.add(res);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  const at = Number(url.searchParams.get('continue') ?? 0);
  const limit = Number(url.searchParams.get('limit') ?? served.length);
  const more = at + limit < served.length ? { continue: String(at + limit) } : {};
  if (url.pathname === '/api/v1/pods') res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '5000', ...more }, items: served.slice(at, at + limit) }));
  else res.end(JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: '5000' }, items: [] }));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n    server: https://127.0.0.1:${server.address().port}\n    certificate-authority-data: ${Buffer.from(cert).toString('base64')}\nusers:\n- name: b\n  user:\n    token: t\ncontexts:\n- name: b\n  context: {cluster: b, user: b}\ncurrent-context: b\n`);

function ask(socket, namespace, name) {
  return new Promise((resolve, reject) => {
    const c = createConnection(socket);
    let data = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${JSON.stringify({ v: 1, op: 'pod', namespace, name, uid: '' })}\n`));
    c.on('data', (d) => {
      data += d;
      if (data.includes('\n')) {
        c.destroy();
        resolve(JSON.parse(data));
      }
    });
    c.on('error', reject);
  });
}

async function measure(variant, n) {
  const run = join(dir, `run-${variant}-${n}`);
  const file = join(dir, `pods-${n}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods.slice(0, n) }));
  served = pods.slice(0, n);
  const source = variant === 'file' ? ['--pods', file] : ['--kubeconfig', kubeconfig, '--node-name', 'node-a'];
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), agentBin, '--run-dir', run, '--ready-address', 'none', '--repair=false', '--log-level', 'info', ...source], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const ready = variant === 'file' ? /answering the plugin/ : new RegExp(`knows the ${n} pod`);
  for (let i = 0; i < 1500 && !(ready.test(log) && log.includes('answering the plugin')); i++) await new Promise((r) => setTimeout(r, 20));
  if (n > 0) {
    const last = pods[n - 1].metadata;
    const reply = await ask(join(run, 'istio-cni-agent.sock'), last.namespace, last.name);
    if (!reply.pod) throw new Error(`${variant}: the agent does not know ${last.name}: ${JSON.stringify(reply)}\n${log}`);
  }
  await new Promise((r) => setTimeout(r, 3000));
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

try {
  console.log(`istio-cni-agent resident memory, ${count} pods of ~${(perPod / 1024).toFixed(1)} KB JSON each (MB):`);
  for (const variant of ['file', 'api']) {
    const none = await measure(variant, 0);
    const full = await measure(variant, count);
    console.log(`  ${variant.padEnd(4)}  0 pods: RSS ${none.rss.toFixed(1)} (peak ${none.hwm.toFixed(1)})   ${count} pods: RSS ${full.rss.toFixed(1)} (peak ${full.hwm.toFixed(1)})   +${(full.rss - none.rss).toFixed(1)} MB`);
  }
} finally {
  for (const r of held) r.destroy();
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
