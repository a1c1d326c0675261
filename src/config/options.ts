/**
 * The option table: one entry per istio-iptables flag, with its short form, environment variables
 * and default. The flag reader, the environment reader and `--help` are all generated from it, so
 * they cannot disagree; what --help says about each option is in help.ts, which only --help loads
 * (this table is read at every start-up, twice in the entrypoint). Defaults are the raw strings Istio uses; `undefined` means "derived" (e.g. the
 * proxy uid is looked up, IPv6 is detected).
 */

/**
 * Whether a flag takes a value (`string`), is a switch (`boolean`), or is a string flag that may be
 * given several times, each value kept (`strings`, pflag's StringArray).
 */
export type OptionKind = 'string' | 'boolean' | 'strings';

/** One flag of the option table. */
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
  /**
   * How Istio parses this option's environment variable, when not as a string: a value Istio
   * cannot parse is ignored there (the flag keeps its default) and here, with a warning. Booleans
   * are always parsed (Go's ParseBool); `uint16` and `duration` as pflag's Uint16 and Duration.
   */
  readonly envParse?: 'uint16' | 'duration';
}

/**
 * The option table, keyed by option (the keys of {@link RawOptions}): each flag's long and short
 * name, kind, environment variables and Istio's default.
 *
 * Written out in full, environment names included (a table built by calls cost the entrypoint's
 * interpreter ~0.15 ms at every start-up, before it can start the restore). Istio's rule for the
 * names (the long name upper-cased, `-` as `_`) and the exceptions are checked by a test.
 */
export const OPTIONS = {
  envoyPort: { long: 'envoy-port', short: 'p', kind: 'string', default: '15001', env: [] },
  inboundCapturePort: { long: 'inbound-capture-port', short: 'z', kind: 'string', default: '15006', env: ['INBOUND_CAPTURE_PORT'] },
  inboundTunnelPort: { long: 'inbound-tunnel-port', short: 'e', kind: 'string', default: '15008', env: ['INBOUND_TUNNEL_PORT'] },
  proxyUid: { long: 'proxy-uid', short: 'u', kind: 'string', env: ['PROXY_UID'] },
  proxyGid: { long: 'proxy-gid', short: 'g', kind: 'string', env: ['PROXY_GID'] },
  interceptionMode: { long: 'istio-inbound-interception-mode', short: 'm', kind: 'string', default: 'REDIRECT', env: ['ISTIO_INBOUND_INTERCEPTION_MODE'] },
  tproxyMark: { long: 'istio-inbound-tproxy-mark', short: 't', kind: 'string', default: '1337', env: ['ISTIO_INBOUND_TPROXY_MARK'] },
  tproxyRouteTable: { long: 'istio-inbound-tproxy-route-table', short: 'r', kind: 'string', default: '133', env: ['ISTIO_INBOUND_TPROXY_ROUTE_TABLE'] },
  inboundPorts: { long: 'istio-inbound-ports', short: 'b', kind: 'string', default: '', env: ['ISTIO_INBOUND_PORTS'] },
  localExcludePorts: { long: 'istio-local-exclude-ports', short: 'd', kind: 'string', default: '', env: ['ISTIO_LOCAL_EXCLUDE_PORTS'] },
  excludeInterfaces: { long: 'istio-exclude-interfaces', short: 'c', kind: 'string', default: '', env: ['ISTIO_EXCLUDE_INTERFACES'] },
  serviceCidr: { long: 'istio-service-cidr', short: 'i', kind: 'string', default: '', env: ['ISTIO_SERVICE_CIDR'] },
  serviceExcludeCidr: { long: 'istio-service-exclude-cidr', short: 'x', kind: 'string', default: '', env: ['ISTIO_SERVICE_EXCLUDE_CIDR'] },
  outboundPorts: { long: 'istio-outbound-ports', short: 'q', kind: 'string', default: '', env: ['ISTIO_OUTBOUND_PORTS'] },
  localOutboundPortsExclude: { long: 'istio-local-outbound-ports-exclude', short: 'o', kind: 'string', default: '', env: ['ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE'] },
  kubeVirtInterfaces: { long: 'kube-virt-interfaces', short: 'k', kind: 'string', default: '', env: ['KUBE_VIRT_INTERFACES'] },
  outboundOwnerGroups: { long: 'outbound-owner-groups', kind: 'string', default: '*', env: ['ISTIO_OUTBOUND_OWNER_GROUPS'] },
  outboundOwnerGroupsExclude: { long: 'outbound-owner-groups-exclude', kind: 'string', default: '', env: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'] },
  ipv4LoopbackCidr: { long: 'ipv4-loopback-cidr', kind: 'string', default: '127.0.0.1/32', env: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'] },
  redirectDns: { long: 'redirect-dns', kind: 'boolean', default: false, env: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'] },
  captureAllDns: { long: 'capture-all-dns', kind: 'boolean', default: false, env: ['CAPTURE_ALL_DNS'] },
  dnsServers: { long: 'dns-servers', kind: 'string', env: ['DNS_SERVERS'] },
  dropInvalid: { long: 'drop-invalid', kind: 'boolean', default: false, env: ['INVALID_DROP', 'DROP_INVALID'] },
  dualStack: { long: 'dual-stack', kind: 'boolean', default: false, env: ['ISTIO_DUAL_STACK', 'DUAL_STACK'] },
  enableIpv6: { long: 'enable-ipv6', kind: 'boolean', env: ['ENABLE_IPV6'] },
  dryRun: { long: 'dry-run', short: 'n', kind: 'boolean', default: false, env: ['DRY_RUN'] },
  output: { long: 'output', kind: 'string', default: 'text', env: [] },
  networkNamespace: { long: 'network-namespace', kind: 'string', default: '', env: ['NETWORK_NAMESPACE'] },
  cniMode: { long: 'cni-mode', kind: 'boolean', default: false, env: ['CNI_MODE'] },
  reconcile: { long: 'reconcile', kind: 'boolean', default: true, env: ['RECONCILE'] },
  cleanupOnly: { long: 'cleanup-only', kind: 'boolean', default: false, env: ['CLEANUP_ONLY'] },
  forceApply: { long: 'force-apply', kind: 'boolean', default: false, env: ['FORCE_APPLY'] },
  nativeNftables: { long: 'native-nftables', kind: 'boolean', default: false, env: ['NATIVE_NFTABLES'] },
  nftSets: { long: 'nft-sets', kind: 'boolean', default: false, env: ['NFT_SETS'] },
  forceIptablesBinary: { long: 'force-iptables-binary', kind: 'string', default: '', env: ['FORCE_IPTABLES_BINARY'] },
  skipRuleApply: { long: 'skip-rule-apply', kind: 'boolean', default: false, env: ['SKIP_RULE_APPLY'] },
  runValidation: { long: 'run-validation', kind: 'boolean', default: false, env: ['RUN_VALIDATION'] },
  iptablesProbePort: { long: 'iptables-probe-port', kind: 'string', default: '15002', env: ['IPTABLES_PROBE_PORT'], envParse: 'uint16' },
  probeTimeout: { long: 'probe-timeout', kind: 'string', default: '5s', env: ['PROBE_TIMEOUT'], envParse: 'duration' },
  logOutputLevel: { long: 'log_output_level', kind: 'string', default: 'default:info', env: ['LOG_OUTPUT_LEVEL'] },
  // Istio's global log flags (pkg/log and the cobra root's --vklog): flags only, no variables.
  logAsJson: { long: 'log_as_json', kind: 'boolean', default: false, env: [] },
  logTarget: { long: 'log_target', kind: 'strings', env: [] },
  logCaller: { long: 'log_caller', kind: 'string', default: '', env: [] },
  logStacktraceLevel: { long: 'log_stacktrace_level', kind: 'string', default: 'default:none', env: [] },
  vklog: { long: 'vklog', kind: 'string', default: '0', env: [] },
} as const satisfies Record<string, OptionSpec>;

/** An option's key in the option table (`inboundPorts`, `interceptionMode`, ...). */
export type OptionKey = keyof typeof OPTIONS;
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[];

/** Raw values as they arrive from flags, env vars or an object, before validation. */
export type RawOptions = {
  [K in OptionKey]?: (typeof OPTIONS)[K]['kind'] extends 'boolean' ? boolean | string : (typeof OPTIONS)[K]['kind'] extends 'strings' ? string | readonly string[] : string;
};
