import type { Config } from '../config/config.js';
import type { HostFacts } from '../config/host.js';
import { ApplyError, ConfigError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { redirectConfig } from './config.js';
import { AmbientPodError, decide, RedirectError, type PodFacts, type Redirect } from './pod.js';
import { PROTOCOL_VERSION, type AgentReply, type PodRequest } from './protocol.js';
import { CNI_CODE, CniError, parseConf, parseParams, renderError, renderResult, renderVersion, versionOf, type CniParams, type PluginConf } from './spec.js';

/*
 * The istio-cni plugin's logic, for one invocation: Istio's chained plugin for sidecar mode
 * (cni/pkg/plugin/plugin.go) on our engine. ADD asks the node agent about the pod, decides by
 * Istio's rules, and programs the pod's namespace; CHECK compares the namespace with the same
 * plan; DEL does nothing (the namespace goes with the pod). Effects come through `deps`, so the
 * flow is the same on the runtime (src/entrypoint-cni.ts) and in tests.
 */

/** What the plugin does to the world. */
export interface PluginDeps {
  /** The agent's answer about a pod; throws when the agent cannot be reached or answers nothing usable. */
  askAgent(runDir: string, request: PodRequest): Promise<AgentReply>;
  /** Whether a path is a network namespace file that exists. */
  namespaceExists(path: string): boolean;
  /** Whether a namespace file is the plugin's own network namespace. */
  isOwnNamespace(path: string): boolean;
  /** The facts Istio reads inside the pod's namespace (IPv6), read there. */
  targetFacts(netns: string): HostFacts;
  /** Program the pod's namespace as the configuration says (all or nothing); a one-line summary. */
  apply(config: Config, log: Logger): Promise<string>;
  /** Compare the pod's namespace with the configuration's plan: '' in sync, else what differs. */
  check(config: Config, log: Logger): Promise<string>;
  /** Where log lines go (stderr). */
  log(line: string): void;
}

export interface PluginOutcome {
  readonly stdout: string;
  readonly exitCode: number;
}

/** Our own agent's pods (istio-cni-node-* in the agent's namespace): let through before anything else, as Istio does. */
function isAgentPod(conf: PluginConf, p: CniParams): boolean {
  return p.args.podName.startsWith('istio-cni-node-') && p.args.podNamespace === conf.podNamespace;
}

/** Run one invocation: what to print on stdout and the exit code. Never throws. */
export async function runPlugin(env: Readonly<Record<string, string | undefined>>, stdin: string, deps: PluginDeps): Promise<PluginOutcome> {
  let log: Logger = createLogger('info', deps.log, { json: true });
  try {
    const params = parseParams(env);
    if (params.command === 'VERSION') return { stdout: renderVersion(), exitCode: 0 };
    if (params.command === 'DEL') {
      // Nothing to undo: the rules live in the pod's namespace and go with it. Succeeds whatever
      // is left (namespace gone, called twice), as the spec asks; a configuration that is not
      // JSON at all is still an error.
      parseDelConf(stdin);
      return { stdout: '', exitCode: 0 };
    }
    const conf = parseConf(stdin);
    log = createLogger(conf.logLevel, deps.log, { json: true });
    if (params.command === 'CHECK' && ['0.1.0', '0.2.0', '0.3.0', '0.3.1'].includes(conf.cniVersion)) {
      throw new CniError(CNI_CODE.incompatibleVersion, `CHECK needs cniVersion 0.4.0 or later; the configuration has ${conf.cniVersion}`);
    }
    const netns = params.netns ?? '';
    if (!deps.namespaceExists(netns)) throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(netns)} for CNI_NETNS: no such network namespace`);
    if (deps.isOwnNamespace(netns)) {
      throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(netns)} for CNI_NETNS: it is the plugin's own network namespace (the node's), never a pod's`);
    }
    const pod = await podToCapture(conf, params, deps, log);
    if (pod !== undefined) {
      const config = configFor(pod.facts, pod.redirect, netns, conf, deps);
      if (params.command === 'ADD') {
        const summary = await deps.apply(config, log);
        log.info(`${pod.facts.namespace}/${pod.facts.name}: ${summary}`);
      } else {
        const drift = await deps.check(config, log);
        if (drift !== '') throw new CniError(CNI_CODE.drift, `the network namespace of pod ${pod.facts.namespace}/${pod.facts.name} does not hold its rules`, drift);
      }
    }
    return { stdout: params.command === 'ADD' ? renderResult(conf) : '', exitCode: 0 };
  } catch (err) {
    const e = asCniError(err);
    log.error(`${env['CNI_COMMAND'] ?? ''} failed: ${e.message}${e.details === '' ? '' : ` (${e.details.split('\n')[0]})`}`);
    return { stdout: renderError(versionOf(stdin), e), exitCode: 1 };
  }
}

function parseDelConf(stdin: string): void {
  try {
    JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CNI_CODE.decode, 'cannot decode the network configuration on stdin: expected a JSON object', err instanceof Error ? err.message : String(err));
  }
}

/** The pod and its redirect when the pod is to be captured; undefined when Istio's rules skip it. */
async function podToCapture(conf: PluginConf, p: CniParams, deps: PluginDeps, log: Logger) {
  const { podName, podNamespace } = p.args;
  if (isAgentPod(conf, p)) {
    log.info(`${podName} looks like our own agent pod, skipping`);
    return undefined;
  }
  if (podNamespace === '' || podName === '') {
    log.debug('not a Kubernetes pod (no K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS), skipping');
    return undefined;
  }
  if (conf.excludeNamespaces.includes(podNamespace)) {
    log.info(`${podNamespace}/${podName}: pod namespace ${podNamespace} excluded`);
    return undefined;
  }
  const facts = await podFacts(conf, p, deps);
  let decision: ReturnType<typeof decide>;
  try {
    decision = decide(facts);
  } catch (err) {
    if (err instanceof RedirectError) throw new CniError(CNI_CODE.badPod, `pod ${podNamespace}/${podName}: ${err.message}`);
    throw err;
  }
  if (!decision.capture) {
    log.info(`${podNamespace}/${podName}: ${decision.reason}`);
    return undefined;
  }
  return { facts, redirect: decision.redirect };
}

async function podFacts(conf: PluginConf, p: CniParams, deps: PluginDeps): Promise<PodFacts> {
  const { podName, podNamespace, podUid } = p.args;
  let reply: AgentReply;
  try {
    reply = await deps.askAgent(conf.agentRunDir, { v: PROTOCOL_VERSION, op: 'pod', namespace: podNamespace, name: podName, uid: podUid });
  } catch (err) {
    // No agent (not started yet, restarting, its socket gone): the kubelet retries the pod.
    throw new CniError(CNI_CODE.tryAgainLater, `cannot get pod ${podNamespace}/${podName} from the istio-cni node agent in ${conf.agentRunDir}`, err instanceof Error ? err.message : String(err));
  }
  if ('error' in reply) throw new CniError(CNI_CODE.tryAgainLater, `the istio-cni node agent could not get pod ${podNamespace}/${podName}`, reply.error);
  if ('missing' in reply) throw new CniError(CNI_CODE.tryAgainLater, `the istio-cni node agent finds no pod ${podNamespace}/${podName}`, reply.missing);
  const f = reply.pod;
  if (f.namespace !== podNamespace || f.name !== podName || (podUid !== '' && f.uid !== '' && f.uid !== podUid)) {
    throw new CniError(CNI_CODE.tryAgainLater, `the istio-cni node agent answered for another pod (${f.namespace}/${f.name} uid ${f.uid}) than ${podNamespace}/${podName} uid ${podUid}`);
  }
  return f;
}

function configFor(pod: PodFacts, redirect: Redirect, netns: string, conf: PluginConf, deps: PluginDeps): Config {
  try {
    return redirectConfig(redirect, netns, conf.nativeNftables, deps.targetFacts(netns));
  } catch (err) {
    if (err instanceof ConfigError) throw new CniError(CNI_CODE.badPod, `pod ${pod.namespace}/${pod.name}: ${err.message}`);
    throw err;
  }
}

/** Any failure as the spec's error: ours as they are, the pod's and the apply's with their codes. */
function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof AmbientPodError) return new CniError(CNI_CODE.unsupportedPod, err.message);
  if (err instanceof ApplyError) return new CniError(CNI_CODE.applyFailed, `programming the pod's network namespace failed: ${err.message.split('\n')[0] ?? ''}`, err.stderr || err.message);
  return new CniError(CNI_CODE.applyFailed, err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err));
}
