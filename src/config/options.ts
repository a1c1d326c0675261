/**
 * The option table: one entry per istio-iptables flag, with its short form, environment variables
 * and default. The CLI, the environment reader and `--help` are all generated from it, so they
 * cannot disagree. Defaults are the raw strings Istio uses; `undefined` means "derived" (e.g. the
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
  readonly describe: string;
  readonly group: OptionGroup;
  /** Values shown in --help. */
  readonly choices?: readonly string[];
}

export type OptionGroup = 'Ports' | 'Capture' | 'Proxy identity' | 'DNS' | 'TPROXY' | 'Run' | 'Output';

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
    long: 'envoy-port', short: 'p', kind: 'string', default: '15001', env: false, group: 'Ports',
    describe: 'Port of the proxy to which all outbound TCP traffic is redirected',
  }),
  inboundCapturePort: opt({
    long: 'inbound-capture-port', short: 'z', kind: 'string', default: '15006', group: 'Ports',
    describe: 'Port to which all inbound TCP traffic to the pod is redirected',
  }),
  inboundTunnelPort: opt({
    long: 'inbound-tunnel-port', short: 'e', kind: 'string', default: '15008', group: 'Ports',
    describe: 'Istio tunnel (HBONE) port: inbound traffic to it is never redirected',
  }),
  proxyUid: opt({
    long: 'proxy-uid', short: 'u', kind: 'string', group: 'Proxy identity',
    describe: 'Comma-separated uids (numbers or names) whose traffic is not captured [default: uid of $ENVOY_USER (istio-proxy), else 1337]',
  }),
  proxyGid: opt({
    long: 'proxy-gid', short: 'g', kind: 'string', group: 'Proxy identity',
    describe: 'Comma-separated gids (numbers or names) whose traffic is not captured [default: same as --proxy-uid]',
  }),
  interceptionMode: opt({
    long: 'istio-inbound-interception-mode', short: 'm', kind: 'string', default: 'REDIRECT', group: 'Capture',
    choices: ['REDIRECT', 'TPROXY'],
    describe: 'How inbound connections reach the proxy: REDIRECT (nat) or TPROXY (mangle, keeps the client address)',
  }),
  tproxyMark: opt({
    long: 'istio-inbound-tproxy-mark', short: 't', kind: 'string', default: '1337', group: 'TPROXY',
    describe: 'Packet mark (32-bit) set on TPROXY-diverted packets and used by the policy route',
  }),
  tproxyRouteTable: opt({
    long: 'istio-inbound-tproxy-route-table', short: 'r', kind: 'string', default: '133', group: 'TPROXY',
    describe: 'Routing table (32-bit) holding the local default route for TPROXY-marked packets',
  }),
  inboundPorts: opt({
    long: 'istio-inbound-ports', short: 'b', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated inbound ports to capture, "*" for all; empty captures none',
  }),
  localExcludePorts: opt({
    long: 'istio-local-exclude-ports', short: 'd', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated inbound ports never captured (applies with -b "*")',
  }),
  excludeInterfaces: opt({
    long: 'istio-exclude-interfaces', short: 'c', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated interfaces whose inbound and outbound traffic is never captured',
  }),
  serviceCidr: opt({
    long: 'istio-service-cidr', short: 'i', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated CIDRs whose outbound traffic is captured, "*" for all; empty captures none',
  }),
  serviceExcludeCidr: opt({
    long: 'istio-service-exclude-cidr', short: 'x', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated CIDRs whose outbound traffic is never captured ("*" is not allowed)',
  }),
  outboundPorts: opt({
    long: 'istio-outbound-ports', short: 'q', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated outbound ports always captured, whatever the destination',
  }),
  localOutboundPortsExclude: opt({
    long: 'istio-local-outbound-ports-exclude', short: 'o', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated outbound ports never captured (TCP and UDP)',
  }),
  kubeVirtInterfaces: opt({
    long: 'kube-virt-interfaces', short: 'k', kind: 'string', default: '', group: 'Capture',
    describe: 'Comma-separated virtual interfaces (VMs) whose inbound traffic is treated as outbound',
  }),
  outboundOwnerGroups: opt({
    long: 'outbound-owner-groups', kind: 'string', default: '*', group: 'Capture',
    env: ['ISTIO_OUTBOUND_OWNER_GROUPS'],
    describe: 'Comma-separated groups (names or gids) whose outbound traffic is captured, "*" for all',
  }),
  outboundOwnerGroupsExclude: opt({
    long: 'outbound-owner-groups-exclude', kind: 'string', default: '', group: 'Capture',
    env: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
    describe: 'Comma-separated groups (names or gids) whose outbound traffic is not captured',
  }),
  ipv4LoopbackCidr: opt({
    long: 'ipv4-loopback-cidr', kind: 'string', default: '127.0.0.1/32', group: 'Capture',
    env: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    describe: 'IPv4 loopback CIDR treated as localhost (within 127.0.0.0/8)',
  }),
  redirectDns: opt({
    long: 'redirect-dns', kind: 'boolean', default: false, group: 'DNS',
    env: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'],
    describe: 'Capture DNS (port 53) to the istio-agent on port 15053',
  }),
  captureAllDns: opt({
    long: 'capture-all-dns', kind: 'boolean', default: false, group: 'DNS',
    describe: 'With --redirect-dns, capture DNS to any server, not only the configured nameservers',
  }),
  dnsServers: opt({
    long: 'dns-servers', kind: 'string', group: 'DNS',
    describe: 'Comma-separated nameservers for DNS capture; "" for none [default: nameservers in /etc/resolv.conf]',
  }),
  dropInvalid: opt({
    long: 'drop-invalid', kind: 'boolean', default: false, group: 'Capture',
    env: ['INVALID_DROP', 'DROP_INVALID'],
    describe: 'Drop packets conntrack marks INVALID instead of letting the kernel reset the connection',
  }),
  dualStack: opt({
    long: 'dual-stack', kind: 'boolean', default: false, group: 'Capture',
    env: ['ISTIO_DUAL_STACK', 'DUAL_STACK'],
    describe: 'Dual-stack pod: IPv6 is enabled when the pod has any IPv6 address',
  }),
  enableIpv6: opt({
    long: 'enable-ipv6', kind: 'boolean', group: 'Capture',
    describe: 'Emit IPv6 rules [default: detected from the first non-loopback, non-link-local address]',
  }),
  dryRun: opt({
    long: 'dry-run', short: 'n', kind: 'boolean', default: false, group: 'Run',
    describe: 'Print the rules and routes instead of applying them (needs no root, touches nothing)',
  }),
  output: opt({
    long: 'output', kind: 'string', default: 'text', env: false, group: 'Output',
    choices: ['text', 'json'],
    describe: 'Dry-run output format',
  }),
  networkNamespace: opt({
    long: 'network-namespace', kind: 'string', default: '', group: 'Run',
    describe: 'Network namespace to program: a name under /var/run/netns or a path',
  }),
  cniMode: opt({
    long: 'cni-mode', kind: 'boolean', default: false, group: 'Run',
    describe: 'Run as the CNI plugin does',
  }),
  reconcile: opt({
    long: 'reconcile', kind: 'boolean', default: true, group: 'Run',
    describe: 'Heal drift in our chains by removing them and applying again',
  }),
  cleanupOnly: opt({
    long: 'cleanup-only', kind: 'boolean', default: false, group: 'Run',
    describe: 'Remove our chains, jumps and routes, and apply nothing',
  }),
  forceApply: opt({
    long: 'force-apply', kind: 'boolean', default: false, group: 'Run',
    describe: 'Apply even when existing rules conflict',
  }),
  nativeNftables: opt({
    long: 'native-nftables', kind: 'boolean', default: false, group: 'Run',
    describe: 'Program nftables directly instead of iptables',
  }),
  nftSets: opt({
    long: 'nft-sets', kind: 'boolean', default: false, group: 'Run',
    describe: 'With --native-nftables, write long lists (excluded and included CIDRs, port lists) as one rule with an anonymous set instead of one rule per value; the same traffic is captured',
  }),
  forceIptablesBinary: opt({
    long: 'force-iptables-binary', kind: 'string', default: '', group: 'Run',
    describe: 'Use this iptables backend instead of detecting it: legacy or nft (or a binary name such as iptables-legacy)',
  }),
  skipRuleApply: opt({
    long: 'skip-rule-apply', kind: 'boolean', default: false, group: 'Run',
    describe: 'Apply no rules (with --run-validation: only validate)',
  }),
  runValidation: opt({
    long: 'run-validation', kind: 'boolean', default: false, group: 'Run',
    describe: 'Prove that redirection works by connecting through the rules (exit 126 on failure)',
  }),
  iptablesProbePort: opt({
    long: 'iptables-probe-port', kind: 'string', default: '15002', group: 'Run',
    describe: 'Port the validation probe listens on',
  }),
  probeTimeout: opt({
    long: 'probe-timeout', kind: 'string', default: '5s', group: 'Run',
    describe: 'How long the validation probe waits (Go duration, e.g. 5s, 500ms)',
  }),
  logOutputLevel: opt({
    long: 'log_output_level', kind: 'string', default: 'default:info', group: 'Output',
    describe: 'Log level, as Istio: a level or scope:level pairs (none, fatal, error, warn, info, debug)',
  }),
} as const satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[];

/** Raw values as they arrive from flags, env vars or an object, before validation. */
export type RawOptions = { [K in OptionKey]?: (typeof OPTIONS)[K]['kind'] extends 'boolean' ? boolean | string : string };
