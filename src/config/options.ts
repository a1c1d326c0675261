/**
 * The option table: one entry per istio-iptables flag, with its short form, environment variables
 * and default. The flag reader, the environment reader and `--help` are all generated from it, so
 * they cannot disagree; what --help says about each option is in help.ts, which only --help loads
 * (this table is read at every start-up, twice in the entrypoint). Defaults are the raw strings Istio uses; `undefined` means "derived" (e.g. the
 * proxy uid is looked up, IPv6 is detected).
 */

export type OptionKind = 'string' | 'boolean';

export interface OptionSpec {
  /** Long flag name, as Istio spells it. */
  readonly long: string;
  readonly short?: string;
  readonly kind: OptionKind;
  /**
   * Environment variables that set this option when the flag is absent, in priority order. By
   * Istio's rule a flag's variable is its long name upper-cased with `-` turned to `_`; Istio's
   * additional names (ISTIO_META_DNS_CAPTURE, INVALID_DROP, ISTIO_DUAL_STACK) take precedence.
   */
  readonly env: readonly string[];
  readonly default?: string | boolean;
}

function envOf(long: string): string {
  return long.toUpperCase().replaceAll('-', '_');
}

function opt<const S extends Omit<OptionSpec, 'env'> & { env?: readonly string[] | false }>(
  spec: S,
): Omit<S, 'env'> & { readonly env: readonly string[] } {
  // Each spec is a fresh literal: completed in place (a copy per option is measurable at start-up).
  const names = spec.env === false ? [] : (spec.env ?? [envOf(spec.long)]);
  return Object.assign(spec, { env: names }) as Omit<S, 'env'> & { readonly env: readonly string[] };
}

export const OPTIONS = {
  envoyPort: opt({
    long: 'envoy-port', short: 'p', kind: 'string', default: '15001', env: false,
  }),
  inboundCapturePort: opt({
    long: 'inbound-capture-port', short: 'z', kind: 'string', default: '15006',
  }),
  inboundTunnelPort: opt({
    long: 'inbound-tunnel-port', short: 'e', kind: 'string', default: '15008',
  }),
  proxyUid: opt({
    long: 'proxy-uid', short: 'u', kind: 'string',
  }),
  proxyGid: opt({
    long: 'proxy-gid', short: 'g', kind: 'string',
  }),
  interceptionMode: opt({
    long: 'istio-inbound-interception-mode', short: 'm', kind: 'string', default: 'REDIRECT',
  }),
  tproxyMark: opt({
    long: 'istio-inbound-tproxy-mark', short: 't', kind: 'string', default: '1337',
  }),
  tproxyRouteTable: opt({
    long: 'istio-inbound-tproxy-route-table', short: 'r', kind: 'string', default: '133',
  }),
  inboundPorts: opt({
    long: 'istio-inbound-ports', short: 'b', kind: 'string', default: '',
  }),
  localExcludePorts: opt({
    long: 'istio-local-exclude-ports', short: 'd', kind: 'string', default: '',
  }),
  excludeInterfaces: opt({
    long: 'istio-exclude-interfaces', short: 'c', kind: 'string', default: '',
  }),
  serviceCidr: opt({
    long: 'istio-service-cidr', short: 'i', kind: 'string', default: '',
  }),
  serviceExcludeCidr: opt({
    long: 'istio-service-exclude-cidr', short: 'x', kind: 'string', default: '',
  }),
  outboundPorts: opt({
    long: 'istio-outbound-ports', short: 'q', kind: 'string', default: '',
  }),
  localOutboundPortsExclude: opt({
    long: 'istio-local-outbound-ports-exclude', short: 'o', kind: 'string', default: '',
  }),
  kubeVirtInterfaces: opt({
    long: 'kube-virt-interfaces', short: 'k', kind: 'string', default: '',
  }),
  outboundOwnerGroups: opt({
    long: 'outbound-owner-groups', kind: 'string', default: '*',
    env: ['ISTIO_OUTBOUND_OWNER_GROUPS'],
  }),
  outboundOwnerGroupsExclude: opt({
    long: 'outbound-owner-groups-exclude', kind: 'string', default: '',
    env: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
  }),
  ipv4LoopbackCidr: opt({
    long: 'ipv4-loopback-cidr', kind: 'string', default: '127.0.0.1/32',
    env: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
  }),
  redirectDns: opt({
    long: 'redirect-dns', kind: 'boolean', default: false,
    env: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'],
  }),
  captureAllDns: opt({
    long: 'capture-all-dns', kind: 'boolean', default: false,
  }),
  dnsServers: opt({
    long: 'dns-servers', kind: 'string',
  }),
  dropInvalid: opt({
    long: 'drop-invalid', kind: 'boolean', default: false,
    env: ['INVALID_DROP', 'DROP_INVALID'],
  }),
  dualStack: opt({
    long: 'dual-stack', kind: 'boolean', default: false,
    env: ['ISTIO_DUAL_STACK', 'DUAL_STACK'],
  }),
  enableIpv6: opt({
    long: 'enable-ipv6', kind: 'boolean',
  }),
  dryRun: opt({
    long: 'dry-run', short: 'n', kind: 'boolean', default: false,
  }),
  output: opt({
    long: 'output', kind: 'string', default: 'text', env: false,
  }),
  networkNamespace: opt({
    long: 'network-namespace', kind: 'string', default: '',
  }),
  cniMode: opt({
    long: 'cni-mode', kind: 'boolean', default: false,
  }),
  reconcile: opt({
    long: 'reconcile', kind: 'boolean', default: true,
  }),
  cleanupOnly: opt({
    long: 'cleanup-only', kind: 'boolean', default: false,
  }),
  forceApply: opt({
    long: 'force-apply', kind: 'boolean', default: false,
  }),
  nativeNftables: opt({
    long: 'native-nftables', kind: 'boolean', default: false,
  }),
  nftSets: opt({
    long: 'nft-sets', kind: 'boolean', default: false,
  }),
  forceIptablesBinary: opt({
    long: 'force-iptables-binary', kind: 'string', default: '',
  }),
  skipRuleApply: opt({
    long: 'skip-rule-apply', kind: 'boolean', default: false,
  }),
  runValidation: opt({
    long: 'run-validation', kind: 'boolean', default: false,
  }),
  iptablesProbePort: opt({
    long: 'iptables-probe-port', kind: 'string', default: '15002',
  }),
  probeTimeout: opt({
    long: 'probe-timeout', kind: 'string', default: '5s',
  }),
  logOutputLevel: opt({
    long: 'log_output_level', kind: 'string', default: 'default:info',
  }),
} as const satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[];

/** Raw values as they arrive from flags, env vars or an object, before validation. */
export type RawOptions = { [K in OptionKey]?: (typeof OPTIONS)[K]['kind'] extends 'boolean' ? boolean | string : string };
