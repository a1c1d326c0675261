import { existsSync, watch, type FSWatcher } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { createLogger, type Logger } from '../log.js';
import type { LogLevel } from '../config/values.js';
import { install, InstallError, uninstall, PLUGIN_TYPE, type PluginEntry } from './install.js';
import { filePods, PodStore, type PodSource } from './pods.js';
import { pluginReapply, repairer, type RepairMode } from './repair.js';
import { serveAgent, type AgentServer } from './server.js';

/*
 * istio-cni-agent: the node agent of the istio-cni plugin (dist/cni/istio-cni). It knows the pods
 * of its node (from the Kubernetes API, or from a file) and answers the plugin over a unix socket
 * in its run directory; it installs the plugin into the node's CNI configuration and keeps it
 * there; it repairs pods whose validation found no rules; it serves its readiness over HTTP.
 */

export const AGENT = 'istio-cni-agent';

/** The plugin executable beside this package's build (dist/cni/istio-cni); the image passes --plugin. */
const DEFAULT_PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cni', 'istio-cni');

export interface AgentArgs {
  readonly runDir: string;
  readonly pods: string | undefined;
  readonly kubeconfig: string | undefined;
  readonly nodeName: string;
  readonly install: boolean;
  readonly cniNetDir: string;
  readonly cniConfName: string | undefined;
  readonly cniBinDir: readonly string[];
  readonly plugin: string;
  readonly cleanupOnExit: boolean;
  readonly excludeNamespaces: readonly string[];
  readonly podNamespace: string;
  readonly pluginLogLevel: string;
  readonly nativeNftables: boolean;
  readonly repair: boolean;
  readonly repairMode: RepairMode;
  readonly repairLabelKey: string;
  readonly repairLabelValue: string;
  readonly repairInitContainer: string;
  readonly repairExitCode: number;
  readonly hostProc: string;
  readonly readyAddress: string;
  readonly apiAttempts: number;
  readonly apiRetryMs: number;
  readonly apiTimeoutMs: number;
  readonly installRetryMs: number;
  readonly logLevel: LogLevel;
}

/** The command line, read once (yargs: --help, errors naming the flag). */
export async function parseAgentArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<AgentArgs> {
  const y = yargs([...argv])
    .scriptName(AGENT)
    .usage(`${AGENT} --run-dir DIR (--pods FILE | --kubeconfig FILE | in cluster) [--install ...]\n\nThe node agent of the istio-cni plugin for Istio's sidecar mode.`)
    .strict()
    .env(false)
    .option('run-dir', { type: 'string', demandOption: true, describe: 'Directory of the agent\'s socket (the conflist\'s cni_agent_run_dir), e.g. /var/run/istio-cni' })
    .option('pods', { type: 'string', describe: 'Pods from this file (a Pod, Namespaces, or a List; JSON or YAML) instead of the Kubernetes API' })
    .option('kubeconfig', { type: 'string', describe: 'Kubeconfig file for the API (default: the in-cluster service account)' })
    .option('node-name', { type: 'string', default: env['NODE_NAME'] ?? env['KUBERNETES_NODE_NAME'] ?? '', describe: 'This node\'s name (env NODE_NAME): its pods are watched' })
    .option('install', { type: 'boolean', default: false, describe: 'Install the plugin into the node\'s CNI configuration and keep it there' })
    .option('cni-net-dir', { type: 'string', default: '/host/etc/cni/net.d', describe: 'The node\'s CNI configuration directory (mounted)' })
    .option('cni-conf-name', { type: 'string', describe: 'The primary configuration file (default: the first in the directory)' })
    .option('cni-bin-dir', { type: 'string', array: true, default: ['/host/opt/cni/bin'], describe: 'The node\'s CNI plugin directories (mounted)' })
    .option('plugin', { type: 'string', default: DEFAULT_PLUGIN, describe: 'The istio-cni plugin executable to install' })
    .option('cleanup-on-exit', { type: 'boolean', default: true, describe: 'On SIGTERM, take the plugin out of the configuration (as Istio\'s install-cni)' })
    .option('exclude-namespaces', { type: 'string', default: 'kube-system', describe: 'Namespaces the plugin never captures (comma-separated)' })
    .option('pod-namespace', { type: 'string', default: env['POD_NAMESPACE'] ?? 'istio-system', describe: 'The agent\'s own namespace (env POD_NAMESPACE): its pods are never held up' })
    .option('plugin-log-level', { type: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'none'] })
    .option('native-nftables', { type: 'boolean', default: false, describe: 'The plugin programs native nftables instead of iptables' })
    .option('repair', { type: 'boolean', default: true, describe: 'Repair pods whose validation container exited with --repair-exit-code' })
    .option('repair-mode', { type: 'string', default: 'repair', choices: ['repair', 'delete', 'label'] })
    .option('repair-label-key', { type: 'string', default: 'cni.istio.io/uninitialized' })
    .option('repair-label-value', { type: 'string', default: 'true' })
    .option('repair-init-container', { type: 'string', default: 'istio-validation' })
    .option('repair-exit-code', { type: 'number', default: 126 })
    .option('host-proc', { type: 'string', default: '/host/proc', describe: 'The node\'s /proc (mounted), to find a pod\'s namespace for repair' })
    .option('ready-address', { type: 'string', default: '0.0.0.0:8000', describe: 'HOST:PORT of /healthz and /readyz, or "none"' })
    .option('api-attempts', { type: 'number', default: 5, describe: 'Attempts to GET a pod the watch has not delivered' })
    .option('api-retry-ms', { type: 'number', default: 1000 })
    .option('api-timeout-ms', { type: 'number', default: 4000, describe: 'Bound on each GET' })
    .option('install-retry-ms', { type: 'number', default: 1000, describe: 'Pause before installing again (no configuration yet, or one rewritten)' })
    .option('log-level', { type: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'none'] })
    .check((a) => {
      if (a.pods !== undefined && a.kubeconfig !== undefined) throw new Error('--pods and --kubeconfig: give one');
      if (a.pods === undefined && a['node-name'] === '') throw new Error('--node-name (or env NODE_NAME) is needed to watch this node\'s pods');
      for (const k of ['api-attempts', 'api-retry-ms', 'api-timeout-ms', 'install-retry-ms', 'repair-exit-code'] as const) {
        if (!Number.isInteger(a[k]) || a[k] < 0) throw new Error(`invalid value ${String(a[k])} for --${k}: expected a whole number`);
      }
      if (a['api-attempts'] < 1) throw new Error('invalid value 0 for --api-attempts: expected 1 or more');
      return true;
    })
    .help()
    .version(false);
  const a = await y.parseAsync();
  return {
    runDir: a['run-dir'],
    pods: a.pods,
    kubeconfig: a.kubeconfig,
    nodeName: a['node-name'],
    install: a.install,
    cniNetDir: a['cni-net-dir'],
    cniConfName: a['cni-conf-name'],
    cniBinDir: a['cni-bin-dir'],
    plugin: a.plugin,
    cleanupOnExit: a['cleanup-on-exit'],
    excludeNamespaces: a['exclude-namespaces'].split(',').map((s) => s.trim()).filter((s) => s !== ''),
    podNamespace: a['pod-namespace'],
    pluginLogLevel: a['plugin-log-level'],
    nativeNftables: a['native-nftables'],
    repair: a.repair,
    repairMode: a['repair-mode'] as RepairMode,
    repairLabelKey: a['repair-label-key'],
    repairLabelValue: a['repair-label-value'],
    repairInitContainer: a['repair-init-container'],
    repairExitCode: a['repair-exit-code'],
    hostProc: a['host-proc'],
    readyAddress: a['ready-address'],
    apiAttempts: a['api-attempts'],
    apiRetryMs: a['api-retry-ms'],
    apiTimeoutMs: a['api-timeout-ms'],
    installRetryMs: a['install-retry-ms'],
    logLevel: a['log-level'] as LogLevel,
  };
}

/** Our entry in the node's conflist. */
export function pluginEntry(a: AgentArgs): PluginEntry {
  return {
    type: PLUGIN_TYPE,
    name: PLUGIN_TYPE,
    plugin_log_level: a.pluginLogLevel,
    cni_agent_run_dir: a.runDir,
    ambient_enabled: false,
    exclude_namespaces: a.excludeNamespaces,
    pod_namespace: a.podNamespace,
    native_nftables: a.nativeNftables,
  };
}

/** Installs, and installs again whenever the configuration directory or our files change. */
class Installer {
  private conf: string | undefined;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  ready = false;

  constructor(
    private readonly a: AgentArgs,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.check();
    for (const dir of [this.a.cniNetDir, ...this.a.cniBinDir]) {
      try {
        this.watchers.push(watch(dir, () => this.schedule(50)));
      } catch (err) {
        this.log.warn(`cannot watch ${dir} (${err instanceof Error ? err.message : String(err)}); checking it every ${this.a.installRetryMs} ms instead`);
      }
    }
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.check();
    }, ms);
  }

  /** Install what is missing; not there yet (no configuration): again in a moment. */
  private check(): void {
    if (this.stopped) return;
    try {
      const r = install({ confDir: this.a.cniNetDir, confName: this.a.cniConfName, binDirs: this.a.cniBinDir, plugin: this.a.plugin, entry: pluginEntry(this.a) });
      this.conf = r.conf;
      for (const f of r.changed) this.log.info(`installed: ${f}`);
      this.ready = true;
    } catch (err) {
      this.ready = false;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof InstallError) this.log.warn(`${message}; trying again in ${this.a.installRetryMs} ms`);
      else this.log.error(`installing the plugin failed: ${message}; trying again in ${this.a.installRetryMs} ms`);
      this.schedule(this.a.installRetryMs);
      return;
    }
    // A watch can miss a rename over the file; a slow check catches what it missed.
    this.schedule(Math.max(this.a.installRetryMs, 5000));
  }

  stop(cleanup: boolean): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    if (cleanup) for (const f of uninstall({ confDir: this.a.cniNetDir, binDirs: this.a.cniBinDir }, this.conf)) this.log.info(`uninstalled: ${f}`);
  }
}

function serveReadiness(address: string, ready: () => boolean, log: Logger): Promise<Server | undefined> {
  if (address === 'none') return Promise.resolve(undefined);
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  const server = createServer((req, res) => {
    const ok = req.url === '/healthz' || (req.url === '/readyz' && ready());
    res.writeHead(req.url === '/healthz' || req.url === '/readyz' ? (ok ? 200 : 503) : 404, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok\n' : 'not ready\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      log.info(`readiness on http://${address}/readyz`);
      resolve(server);
    });
  });
}

export interface RunningAgent {
  readonly socket: string;
  readonly source: PodSource;
  ready(): boolean;
  stop(): Promise<void>;
}

/** Start everything; resolves once the socket answers. */
export async function startAgent(a: AgentArgs, log: Logger): Promise<RunningAgent> {
  const store = new PodStore();
  const installer = a.install ? new Installer(a, log) : undefined;
  const repair = a.repair
    ? repairer(
        {
          mode: a.repairMode,
          filter: { sidecarAnnotation: 'sidecar.istio.io/status', initContainerName: a.repairInitContainer, exitCode: a.repairExitCode, terminationMessage: '' },
          labelKey: a.repairLabelKey,
          labelValue: a.repairLabelValue,
          proc: a.hostProc,
        },
        {
          reapply: pluginReapply(a.plugin, { ...pluginEntry(a) }, 120_000),
          deletePod: (ns, name, uid, rv) => kubeActions.deletePod(ns, name, uid, rv),
          labelPod: (ns, name, k, v) => kubeActions.labelPod(ns, name, k, v),
        },
        (m) => log.info(m),
      )
    : undefined;
  // The API's actions for repair, set once the client exists (a --pods agent has none).
  let kubeActions: { deletePod(ns: string, name: string, uid: string, rv: string): Promise<void>; labelPod(ns: string, name: string, k: string, v: string): Promise<void> } = {
    deletePod: () => Promise.reject(new Error('deleting a pod needs the Kubernetes API (not --pods)')),
    labelPod: () => Promise.reject(new Error('labelling a pod needs the Kubernetes API (not --pods)')),
  };
  let source: PodSource;
  if (a.pods !== undefined) {
    source = filePods(a.pods, store, (m) => log.info(m));
  } else {
    // Loaded only when the API is used: the client is most of the agent's start-up and memory,
    // and an optional peer of this package (the image bundles it).
    let k8s: [typeof import('./kube.js'), typeof import('@kubernetes/client-node')];
    try {
      k8s = await Promise.all([import('./kube.js'), import('@kubernetes/client-node')]);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
      throw new Error('reading pods from the Kubernetes API needs @kubernetes/client-node 1.4.0, which is not installed (npm install @kubernetes/client-node@1.4.0; the image has it; --pods FILE needs nothing)');
    }
    const [{ kubeClient, kubePods }, { PatchStrategy, setHeaderOptions }] = k8s;
    const client = kubeClient(a.kubeconfig);
    kubeActions = {
      deletePod: async (namespace, name, uid, resourceVersion) => {
        await client.api.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid, resourceVersion } } });
      },
      labelPod: async (namespace, name, key, value) => {
        // pods/status: the lower privilege that can still set a label.
        await client.api.patchNamespacedPodStatus({ name, namespace, body: { metadata: { labels: { [key]: value } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      },
    };
    source = kubePods(
      client,
      { kubeconfig: a.kubeconfig, nodeName: a.nodeName, getAttempts: a.apiAttempts, getRetryMs: a.apiRetryMs, requestTimeoutMs: a.apiTimeoutMs, maxBackoffMs: 30_000 },
      store,
      log,
      (pod) => repair?.onPod(pod),
    );
  }
  const server: AgentServer = await serveAgent(a.runDir, (r) => source.lookup(r), (m) => log.debug(m));
  log.info(`answering the plugin on ${server.path}`);
  installer?.start();
  const ready = () => source.synced && (installer === undefined || installer.ready);
  const http = await serveReadiness(a.readyAddress, ready, log);
  return {
    socket: server.path,
    source,
    ready,
    async stop() {
      source.stop();
      installer?.stop(a.cleanupOnExit);
      await server.close();
      await new Promise<void>((resolve) => (http === undefined ? resolve() : http.close(() => resolve())));
    },
  };
}

/** The program: start, run until SIGTERM or SIGINT, stop. Returns the exit code. */
export async function agentMain(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let a: AgentArgs;
  try {
    a = await parseAgentArgs(argv, env);
  } catch (err) {
    process.stderr.write(`${AGENT}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const log = createLogger(a.logLevel, (line) => void process.stderr.write(line), { json: true });
  if (a.install && !existsSync(a.plugin)) {
    log.error(`the plugin ${a.plugin} does not exist (npm run build:entrypoint builds it; the image has it)`);
    return 1;
  }
  let agent: RunningAgent;
  try {
    agent = await startAgent(a, log);
  } catch (err) {
    log.error(`cannot start: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await agent.stop();
  return 0;
}
