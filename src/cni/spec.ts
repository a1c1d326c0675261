import * as z from 'zod/mini';

/*
 * The CNI protocol (spec 1.0.0) as the istio-cni plugin speaks it: the command and its parameters
 * from the environment, the network configuration on stdin, a result or an error as JSON on
 * stdout. Pure: the plugin's entry (src/entrypoint-cni.ts) does the reading and writing.
 */

/** The versions of the spec this plugin implements, as VERSION reports them. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const CURRENT_VERSION: CniVersion = '1.0.0';

/** The spec's error codes, and ours (100 and up, as the spec reserves them for plugins). */
export const CNI_CODE = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** Programming the pod's namespace failed (nothing was left changed). */
  applyFailed: 100,
  /** The pod's annotations or proxy settings cannot be turned into rules. */
  badPod: 101,
  /** CHECK: the pod's namespace does not hold the rules its pod asks for. */
  drift: 102,
  /** The pod asks for something this plugin does not do (ambient mode). */
  unsupportedPod: 103,
} as const;

/** A failure reported to the runtime as the spec's error object. */
export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** The parameters of one invocation, from the CNI_* environment variables. */
export interface CniParams {
  readonly command: CniCommand;
  readonly containerId: string;
  /** Absent only for DEL (the namespace may be gone). */
  readonly netns: string | undefined;
  readonly ifName: string;
  /** CNI_ARGS, parsed (empty when unset). */
  readonly args: K8sArgs;
  readonly path: string;
}

/** The CNI_ARGS keys a Kubernetes runtime passes (kubelet, containerd, CRI-O; podman sets K8S_POD_NAME). */
export interface K8sArgs {
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
  readonly infraContainerId: string;
}

const K8S_KEYS = { K8S_POD_NAME: 'podName', K8S_POD_NAMESPACE: 'podNamespace', K8S_POD_UID: 'podUid', K8S_POD_INFRA_CONTAINER_ID: 'infraContainerId' } as const;

/**
 * CNI_ARGS as libcni reads it: `K=V` pairs separated by `;`, each exactly one `=`; a key other than
 * the known ones is an error unless `IgnoreUnknown` is 1 or true (as every Kubernetes runtime sets it).
 */
export function parseCniArgs(text: string): K8sArgs {
  const out: Record<string, string> = { podName: '', podNamespace: '', podUid: '', infraContainerId: '' };
  if (text === '') return out as unknown as K8sArgs;
  const pairs = text.split(';').map((pair) => {
    const kv = pair.split('=');
    if (kv.length !== 2) throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(text)} for CNI_ARGS: expected KEY=VALUE pairs separated by ";"`, `the pair ${JSON.stringify(pair)}`);
    return kv as [string, string];
  });
  const ignore = pairs.find(([k]) => k === 'IgnoreUnknown')?.[1];
  if (ignore !== undefined && !['1', 'true', '0', 'false'].includes(ignore.toLowerCase())) {
    throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(ignore)} for IgnoreUnknown in CNI_ARGS: expected 1, true, 0 or false`);
  }
  const ignoreUnknown = ignore !== undefined && ['1', 'true'].includes(ignore.toLowerCase());
  for (const [k, v] of pairs) {
    if (k === 'IgnoreUnknown') continue;
    const field = (K8S_KEYS as Record<string, string>)[k];
    if (field !== undefined) out[field] = v;
    else if (!ignoreUnknown) throw new CniError(CNI_CODE.invalidEnv, `unknown key ${JSON.stringify(k)} in CNI_ARGS: expected ${Object.keys(K8S_KEYS).join(', ')} (or IgnoreUnknown=1)`);
  }
  return out as unknown as K8sArgs;
}

const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION'];

/** The invocation's parameters; a missing or bad variable is the spec's error 4, naming it. */
export function parseParams(env: Readonly<Record<string, string | undefined>>): CniParams {
  const command = env['CNI_COMMAND'] ?? '';
  if (command === '') throw new CniError(CNI_CODE.invalidEnv, 'required environment variable CNI_COMMAND is missing: expected ADD, DEL, CHECK or VERSION');
  if (!COMMANDS.includes(command)) throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(command)} for CNI_COMMAND: expected ADD, DEL, CHECK or VERSION`);
  const cmd = command as CniCommand;
  const empty: K8sArgs = { podName: '', podNamespace: '', podUid: '', infraContainerId: '' };
  if (cmd === 'VERSION') return { command: cmd, containerId: '', netns: undefined, ifName: '', args: empty, path: '' };
  const required = cmd === 'DEL' ? ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'] : ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'];
  const missing = required.filter((name) => (env[name] ?? '') === '');
  if (missing.length > 0) throw new CniError(CNI_CODE.invalidEnv, `required environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing for ${cmd}`);
  const netns = env['CNI_NETNS'] || undefined;
  if (netns !== undefined && !netns.startsWith('/')) throw new CniError(CNI_CODE.invalidEnv, `invalid value ${JSON.stringify(netns)} for CNI_NETNS: expected an absolute path to a network namespace`);
  return { command: cmd, containerId: env['CNI_CONTAINERID'] ?? '', netns, ifName: env['CNI_IFNAME'] ?? '', args: parseCniArgs(env['CNI_ARGS'] ?? ''), path: env['CNI_PATH'] ?? '' };
}

/**
 * The plugin's network configuration: the spec's keys it needs, and Istio's keys as install-cni
 * writes them (cni/pkg/plugin Config). Other keys are ignored, as Go's decoder ignores them; a
 * known key of the wrong type is an error.
 */
const confSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.optional(z.string()),
  type: z.optional(z.string()),
  prevResult: z.optional(z.record(z.string(), z.unknown())),
  plugin_log_level: z.optional(z.string()),
  cni_agent_run_dir: z.optional(z.string()),
  ambient_enabled: z.optional(z.boolean()),
  enablement_selectors: z.nullish(z.array(z.unknown())),
  exclude_namespaces: z.nullish(z.array(z.string())),
  pod_namespace: z.optional(z.string()),
  native_nftables: z.optional(z.boolean()),
  enable_ambient_detection_retry: z.optional(z.boolean()),
});

/** What a failed check expected, from zod's issue (mini has no messages of its own). */
export function expectedOf(issue: { code: string; expected?: unknown } | undefined): string {
  if (issue === undefined) return 'a valid value';
  return issue.code === 'invalid_type' && typeof issue.expected === 'string' ? `a value of type ${issue.expected}` : 'a valid value';
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'none';
const LOG_LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error', 'none'];

export interface PluginConf {
  readonly cniVersion: CniVersion;
  readonly name: string;
  readonly prevResult: Readonly<Record<string, unknown>> | undefined;
  readonly logLevel: LogLevel;
  /** Where the node agent's socket is (the agent's --run-dir). */
  readonly agentRunDir: string;
  readonly excludeNamespaces: readonly string[];
  /** The namespace the agent's own pods run in (istio-cni-node-*): never held up by the plugin. */
  readonly podNamespace: string;
  readonly nativeNftables: boolean;
}

/** The network configuration from stdin: 6 when it is not JSON, 1 for a version we do not speak, 7 for a bad value. */
export function parseConf(text: string): PluginConf {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI_CODE.decode, 'cannot decode the network configuration on stdin: expected a JSON object', err instanceof Error ? err.message : String(err));
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CniError(CNI_CODE.decode, 'cannot decode the network configuration on stdin: expected a JSON object');
  const version = (json as { cniVersion?: unknown }).cniVersion;
  if (typeof version === 'string' && !(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(CNI_CODE.incompatibleVersion, `incompatible CNI version ${JSON.stringify(version)}: expected one of ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const r = confSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = issue?.path.join('.') || 'cniVersion';
    throw new CniError(CNI_CODE.invalidConfig, `invalid value for ${key} in the network configuration: expected ${expectedOf(issue)}`);
  }
  const c = r.data;
  if (c.ambient_enabled === true) {
    throw new CniError(CNI_CODE.invalidConfig, 'invalid value true for ambient_enabled in the network configuration: expected false (this istio-cni serves sidecar mode only; run Istio\'s istio-cni for ambient)');
  }
  const level = c.plugin_log_level === undefined || c.plugin_log_level === '' ? 'info' : c.plugin_log_level.toLowerCase();
  if (!LOG_LEVELS.includes(level)) throw new CniError(CNI_CODE.invalidConfig, `invalid value ${JSON.stringify(c.plugin_log_level)} for plugin_log_level in the network configuration: expected one of ${LOG_LEVELS.join(', ')}`);
  const runDir = c.cni_agent_run_dir ?? '';
  if (!runDir.startsWith('/')) {
    throw new CniError(CNI_CODE.invalidConfig, `invalid value ${JSON.stringify(runDir)} for cni_agent_run_dir in the network configuration: expected the node agent's run directory, an absolute path`);
  }
  return {
    cniVersion: c.cniVersion as CniVersion,
    name: c.name ?? '',
    prevResult: c.prevResult,
    logLevel: level as LogLevel,
    agentRunDir: runDir,
    excludeNamespaces: c.exclude_namespaces ?? [],
    podNamespace: c.pod_namespace ?? '',
    nativeNftables: c.native_nftables === true,
  };
}

/** The cniVersion an error or result is written in: the configuration's when it could be read. */
export function versionOf(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : CURRENT_VERSION;
  } catch {
    return CURRENT_VERSION;
  }
}

/** The spec's error object, as one line. */
export function renderError(version: string, err: CniError): string {
  return `${JSON.stringify({ cniVersion: version, code: err.code, msg: err.message, details: err.details })}\n`;
}

/** VERSION's answer. */
export function renderVersion(): string {
  return `${JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS })}\n`;
}

/**
 * ADD's result: a chained plugin passes the previous plugin's result on (it is already in the
 * configuration's version, the runtime gave it so), or, first in a chain, an empty result.
 */
export function renderResult(conf: PluginConf): string {
  const result = conf.prevResult === undefined ? { cniVersion: conf.cniVersion } : { ...conf.prevResult, cniVersion: conf.cniVersion };
  return `${JSON.stringify(result)}\n`;
}
