import * as z from 'zod/mini';
import { GO_FALSE, GO_TRUE } from '../config/gobool.js';

/*
 * What the istio-cni plugin needs to know about a pod, and what it decides from it: whether the
 * pod is its business (Istio's skip rules, in Istio's order: cni/pkg/plugin/plugin.go), and the
 * redirect its annotations and proxy settings ask for (cni/pkg/plugin/sidecar_redirect.go), as
 * istio-iptables options. Pure; shared by the node agent (which reads pods) and the plugin.
 */

export const ISTIO_PROXY = 'istio-proxy';
export const ISTIO_INIT = 'istio-init';

/** The annotations the plugin reads (Istio's names). */
export const ANNOTATION = {
  inject: 'sidecar.istio.io/inject',
  status: 'sidecar.istio.io/status',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  excludeInterfaces: 'traffic.sidecar.istio.io/excludeInterfaces',
  kubevirtInterfaces: 'traffic.sidecar.istio.io/kubevirtInterfaces',
  rerouteVirtualInterfaces: 'istio.io/reroute-virtual-interfaces',
} as const;

/** The labels the plugin reads. */
export const LABEL = {
  inject: 'sidecar.istio.io/inject',
  /** Ambient mode's enrolment (pod or namespace): this plugin serves sidecar mode only. */
  dataplaneMode: 'istio.io/dataplane-mode',
} as const;

/** The istio-proxy container's environment variables the plugin reads. */
export const PROXY_ENV = {
  disableEnvoy: 'DISABLE_ENVOY',
  dnsCapture: 'ISTIO_META_DNS_CAPTURE',
  dualStack: 'ISTIO_DUAL_STACK',
  invalidDrop: 'INVALID_DROP',
} as const;

const ANNOTATION_KEYS: ReadonlySet<string> = new Set(Object.values(ANNOTATION));
const LABEL_KEYS: ReadonlySet<string> = new Set(Object.values(LABEL));
const PROXY_ENV_KEYS: ReadonlySet<string> = new Set(Object.values(PROXY_ENV));

/** The facts of a pod the plugin decides on: only what it reads, so the agent keeps little per pod. */
export interface PodFacts {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  /** Init containers, then containers, by name (Istio's order). */
  readonly containers: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** The istio-proxy container's settings, when the pod has one. */
  readonly proxy: ProxyFacts | null;
  /** The pod's namespace's istio.io/dataplane-mode label, when the agent knows it. */
  readonly namespaceDataplaneMode?: string | undefined;
}

export interface ProxyFacts {
  /** Its env entries with a plain value (valueFrom is not read, as Istio does not). */
  readonly env: Readonly<Record<string, string>>;
  /** `args[1]` when `args[0]` is `proxy` (sidecar, router...); '' otherwise. */
  readonly type: string;
  readonly runAsUser: number | null;
  readonly runAsGroup: number | null;
}

const container = z.looseObject({
  name: z.string(),
  args: z.nullish(z.array(z.string())),
  env: z.nullish(z.array(z.looseObject({ name: z.string(), value: z.nullish(z.string()) }))),
  securityContext: z.nullish(z.looseObject({ runAsUser: z.nullish(z.int()), runAsGroup: z.nullish(z.int()) })),
});

/** The parts of a Pod object (as the API serves it) the facts come from; anything else is ignored. */
export const podSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string().check(z.minLength(1)),
    namespace: z.nullish(z.string()),
    uid: z.nullish(z.string()),
    labels: z.nullish(z.record(z.string(), z.string())),
    annotations: z.nullish(z.record(z.string(), z.string())),
  }),
  spec: z.nullish(z.looseObject({ initContainers: z.nullish(z.array(container)), containers: z.nullish(z.array(container)) })),
});

function pick(from: Record<string, string> | null | undefined, keys: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(from ?? {})) if (keys.has(k)) out[k] = v;
  return out;
}

/** A pod's facts from its object (as Istio's ExtractPodInfo reads it); throws a zod error when it is not a pod. */
export function factsFromPod(pod: unknown, defaultNamespace = 'default'): PodFacts {
  const p = podSchema.parse(pod);
  const all = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])];
  let proxy: { env: Record<string, string>; type: string; runAsUser: number | null; runAsGroup: number | null } | null = null;
  for (const c of all) {
    if (c.name !== ISTIO_PROXY) continue;
    proxy ??= { env: {}, type: '', runAsUser: null, runAsGroup: null };
    for (const e of c.env ?? []) if (PROXY_ENV_KEYS.has(e.name)) proxy.env[e.name] = e.value ?? '';
    const args = c.args ?? [];
    if (args.length >= 2 && args[0] === 'proxy') proxy.type = args[1] ?? '';
    if (c.securityContext !== null && c.securityContext !== undefined) {
      proxy.runAsUser = c.securityContext.runAsUser ?? null;
      proxy.runAsGroup = c.securityContext.runAsGroup ?? null;
    }
  }
  return {
    namespace: p.metadata.namespace || defaultNamespace,
    name: p.metadata.name,
    uid: p.metadata.uid ?? '',
    containers: all.map((c) => c.name),
    labels: pick(p.metadata.labels, LABEL_KEYS),
    annotations: pick(p.metadata.annotations, ANNOTATION_KEYS),
    proxy,
  };
}

/** Go's strconv.ParseBool: a value, or undefined when it is not one of its spellings. */
export function goBool(value: string): boolean | undefined {
  return GO_TRUE.has(value) ? true : GO_FALSE.has(value) ? false : undefined;
}

/** What the plugin does with a pod. */
export type Decision =
  | { readonly capture: false; readonly reason: string }
  | { readonly capture: true; readonly redirect: Redirect };

/** A value the redirect could not take, naming where it came from. */
export class RedirectError extends Error {
  override readonly name = 'RedirectError';
  constructor(
    readonly source: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`invalid value ${JSON.stringify(value)} for ${source}: expected ${expected}`);
  }
}

/** A pod enrolled in ambient mode: not this plugin's to serve, and not to be let through silently. */
export class AmbientPodError extends Error {
  override readonly name = 'AmbientPodError';
}

/**
 * Istio's skip rules after the pod is read, in Istio's order (an istio-init container, DISABLE_ENVOY,
 * no istio-proxy, another proxy type, injection disabled, no sidecar status), then the redirect.
 * Ambient enrolment (istio.io/dataplane-mode=ambient on the pod or its namespace) is refused first:
 * Istio's sidecar-only plugin would let such a pod start uncaptured.
 */
export function decide(pod: PodFacts): Decision {
  const mode = pod.labels[LABEL.dataplaneMode] ?? (pod.namespaceDataplaneMode === undefined ? undefined : pod.namespaceDataplaneMode);
  if (mode === 'ambient' && pod.proxy === null) {
    const where = pod.labels[LABEL.dataplaneMode] !== undefined ? 'the pod' : `its namespace ${pod.namespace}`;
    throw new AmbientPodError(`pod ${pod.namespace}/${pod.name} is enrolled in ambient mode (${LABEL.dataplaneMode}=ambient on ${where}): this istio-cni serves sidecar mode only; run Istio's istio-cni with ambient enabled for it`);
  }
  if (pod.containers.includes(ISTIO_INIT)) return { capture: false, reason: 'excluded due to being already injected with istio-init container' };
  const disable = pod.proxy?.env[PROXY_ENV.disableEnvoy];
  if (disable !== undefined && goBool(disable) === true) return { capture: false, reason: 'excluded due to DISABLE_ENVOY on istio-proxy' };
  if (!pod.containers.includes(ISTIO_PROXY) || pod.proxy === null) {
    return { capture: false, reason: `excluded because it does not have istio-proxy container (have ${[...new Set(pod.containers)].sort().join(', ') || 'none'})` };
  }
  if (pod.proxy.type !== '' && pod.proxy.type !== 'sidecar') return { capture: false, reason: `excluded because it has proxy type ${pod.proxy.type}` };
  // The label is the newer API; with both, the label wins. A value that is not a boolean is ignored.
  const inject = pod.labels[LABEL.inject] ?? pod.annotations[ANNOTATION.inject] ?? '';
  if (inject !== '' && goBool(inject) === false) return { capture: false, reason: 'excluded due to inject-disabled annotation' };
  if (pod.annotations[ANNOTATION.status] === undefined) return { capture: false, reason: 'excluded due to not containing sidecar annotation' };
  return { capture: true, redirect: redirectFor(pod) };
}

/** The redirect Istio's plugin derives (its Redirect object), as istio-iptables option values. */
export interface Redirect {
  readonly proxyPort: '15001';
  readonly mode: 'REDIRECT' | 'TPROXY';
  readonly proxyUid: string;
  readonly proxyGid: string;
  readonly includeIpRanges: string;
  readonly excludeIpRanges: string;
  readonly includeInboundPorts: string;
  readonly excludeInboundPorts: string;
  readonly includeOutboundPorts: string;
  readonly excludeOutboundPorts: string;
  readonly rerouteVirtualInterfaces: string;
  readonly excludeInterfaces: string;
  readonly dnsRedirect: boolean;
  readonly dualStack: boolean;
  readonly invalidDrop: boolean;
  /** The annotation each value came from (absent: the default), for error messages. */
  readonly sources: Readonly<Partial<Record<RedirectValue, string>>>;
}
export type RedirectValue = 'mode' | 'includeIpRanges' | 'excludeIpRanges' | 'includeInboundPorts' | 'excludeInboundPorts' | 'includeOutboundPorts' | 'excludeOutboundPorts' | 'rerouteVirtualInterfaces' | 'excludeInterfaces';

const PORT_LIST = /^\s*\d+\s*(,\s*\d+\s*)*$/;
/** Istio's port-list check: each entry a number 0-65535 (spaces around it allowed); "" is an empty list. */
function validPortList(value: string, wildcard: boolean): boolean {
  if (wildcard && value === '*') return true;
  if (value.trim() === '') return true;
  return PORT_LIST.test(value) && value.split(',').every((p) => Number(p.trim()) <= 65535);
}

/**
 * Istio's NewRedirect: each annotation validated as Istio does (an invalid one fails the pod's
 * ADD, naming it), its defaults where absent, the inbound exclusions always extended with the
 * proxy's own ports (15020, 15021, 15090), and the proxy's uid/gid from its securityContext.
 * What Istio passes on unparsed (CIDRs, interface names) is validated by the configuration itself.
 */
export function redirectFor(pod: PodFacts): Redirect {
  const a = pod.annotations;
  const sources: Partial<Record<RedirectValue, string>> = {};
  const take = (value: RedirectValue, key: string, fallback: string, check?: (v: string) => string | undefined): string => {
    const v = a[key];
    if (v === undefined) return fallback;
    sources[value] = key;
    const expected = check?.(v);
    if (expected !== undefined) throw new RedirectError(`annotation ${key}`, v, expected);
    return v;
  };
  const ports = (wildcard: boolean) => (v: string) => (validPortList(v, wildcard) ? undefined : `a comma-separated list of ports${wildcard ? ' or "*"' : ''}`);
  const mode = take('mode', ANNOTATION.interceptionMode, 'REDIRECT', (v) => (v === 'REDIRECT' || v === 'TPROXY' ? undefined : 'REDIRECT or TPROXY')) as 'REDIRECT' | 'TPROXY';
  const includeIpRanges = take('includeIpRanges', ANNOTATION.includeOutboundIPRanges, '*');
  const excludeIpRanges = take('excludeIpRanges', ANNOTATION.excludeOutboundIPRanges, '', (v) => (v.split(',').includes('*') ? 'a comma-separated list of CIDRs' : undefined));
  let excludeInboundPorts = take('excludeInboundPorts', ANNOTATION.excludeInboundPorts, '15020', ports(true));
  const includeInboundPorts = take('includeInboundPorts', ANNOTATION.includeInboundPorts, '*', ports(true));
  const excludeOutboundPorts = take('excludeOutboundPorts', ANNOTATION.excludeOutboundPorts, '15020', ports(true));
  const includeOutboundPorts = take('includeOutboundPorts', ANNOTATION.includeOutboundPorts, '', ports(true));
  // The proxy's status, health and Prometheus ports are never captured inbound (as the injection template does for istio-init).
  excludeInboundPorts = excludeInboundPorts.trim();
  if (excludeInboundPorts.length > 0 && !excludeInboundPorts.endsWith(',')) excludeInboundPorts += ',';
  excludeInboundPorts = [...new Set(`${excludeInboundPorts}15020,15021,15090`.split(','))].join(',');
  const excludeInterfaces = take('excludeInterfaces', ANNOTATION.excludeInterfaces, '');
  // The deprecated kubevirtInterfaces only when reroute-virtual-interfaces is absent.
  const rerouteVirtualInterfaces =
    a[ANNOTATION.rerouteVirtualInterfaces] !== undefined
      ? take('rerouteVirtualInterfaces', ANNOTATION.rerouteVirtualInterfaces, '')
      : take('rerouteVirtualInterfaces', ANNOTATION.kubevirtInterfaces, '');
  const env = pod.proxy?.env ?? {};
  // A value Go cannot parse as a boolean is false (Istio logs a warning).
  const flag = (name: string) => goBool(env[name] ?? '') === true;
  const id = (n: number | null | undefined) => (n !== null && n !== undefined && n !== 0 ? String(n) : '1337');
  return {
    proxyPort: '15001',
    mode,
    proxyUid: id(pod.proxy?.runAsUser),
    proxyGid: id(pod.proxy?.runAsGroup),
    includeIpRanges,
    excludeIpRanges,
    includeInboundPorts,
    excludeInboundPorts,
    includeOutboundPorts,
    excludeOutboundPorts,
    rerouteVirtualInterfaces,
    excludeInterfaces,
    dnsRedirect: flag(PROXY_ENV.dnsCapture),
    dualStack: flag(PROXY_ENV.dualStack),
    invalidDrop: flag(PROXY_ENV.invalidDrop),
    sources,
  };
}
