import type { OptionKey } from './options.js';

/** The sections of --help. */
export type OptionGroup = 'Ports' | 'Capture' | 'Proxy identity' | 'DNS' | 'TPROXY' | 'Run' | 'Output';

export interface OptionHelp {
  readonly describe: string;
  readonly group: OptionGroup;
  /** The values it takes, when they are a fixed set. */
  readonly choices?: readonly string[];
}

/**
 * What --help says about each option of the table in options.ts (the type requires an entry for
 * every option). Kept apart so that ordinary runs do not load the text.
 */
export const OPTION_HELP: { readonly [K in OptionKey]: OptionHelp } = {
  envoyPort: { group: 'Ports', describe: 'Port of the proxy to which all outbound TCP traffic is redirected' },
  inboundCapturePort: { group: 'Ports', describe: 'Port to which all inbound TCP traffic to the pod is redirected' },
  inboundTunnelPort: { group: 'Ports', describe: 'Istio tunnel (HBONE) port: inbound traffic to it is never redirected' },
  proxyUid: { group: 'Proxy identity', describe: 'Comma-separated uids (numbers or names) whose traffic is not captured [default: uid of $ENVOY_USER (istio-proxy), else 1337]' },
  proxyGid: { group: 'Proxy identity', describe: 'Comma-separated gids (numbers or names) whose traffic is not captured [default: same as --proxy-uid]' },
  interceptionMode: { group: 'Capture', choices: ['REDIRECT', 'TPROXY'], describe: 'How inbound connections reach the proxy: REDIRECT (nat) or TPROXY (mangle, keeps the client address)' },
  tproxyMark: { group: 'TPROXY', describe: 'Packet mark (32-bit) set on TPROXY-diverted packets and used by the policy route' },
  tproxyRouteTable: { group: 'TPROXY', describe: 'Routing table (32-bit) holding the local default route for TPROXY-marked packets' },
  inboundPorts: { group: 'Capture', describe: 'Comma-separated inbound ports to capture, "*" for all; empty captures none' },
  localExcludePorts: { group: 'Capture', describe: 'Comma-separated inbound ports never captured (applies with -b "*")' },
  excludeInterfaces: { group: 'Capture', describe: 'Comma-separated interfaces whose inbound and outbound traffic is never captured' },
  serviceCidr: { group: 'Capture', describe: 'Comma-separated CIDRs whose outbound traffic is captured, "*" for all; empty captures none' },
  serviceExcludeCidr: { group: 'Capture', describe: 'Comma-separated CIDRs whose outbound traffic is never captured ("*" is not allowed)' },
  outboundPorts: { group: 'Capture', describe: 'Comma-separated outbound ports (0-65535) or ranges first:last always captured, whatever the destination' },
  localOutboundPortsExclude: { group: 'Capture', describe: 'Comma-separated outbound ports (0-65535) or ranges first:last never captured (TCP and UDP)' },
  kubeVirtInterfaces: { group: 'Capture', describe: 'Comma-separated virtual interfaces (VMs) whose inbound traffic is treated as outbound' },
  outboundOwnerGroups: { group: 'Capture', describe: 'Comma-separated groups (names or gids) whose outbound traffic is captured, "*" for all' },
  outboundOwnerGroupsExclude: { group: 'Capture', describe: 'Comma-separated groups (names or gids) whose outbound traffic is not captured' },
  ipv4LoopbackCidr: { group: 'Capture', describe: 'IPv4 loopback CIDR treated as localhost (within 127.0.0.0/8)' },
  redirectDns: { group: 'DNS', describe: 'Capture DNS (port 53) to the istio-agent on port 15053' },
  captureAllDns: { group: 'DNS', describe: 'With --redirect-dns, capture DNS to any server, not only the configured nameservers' },
  dnsServers: { group: 'DNS', describe: 'Comma-separated nameservers for DNS capture; "" for none [default: nameservers in /etc/resolv.conf]' },
  dropInvalid: { group: 'Capture', describe: 'Drop packets conntrack marks INVALID instead of letting the kernel reset the connection' },
  dualStack: { group: 'Capture', describe: 'Dual-stack pod: IPv6 is enabled when the pod has any IPv6 address' },
  enableIpv6: { group: 'Capture', describe: 'Emit IPv6 rules [default: detected from the first non-loopback, non-link-local address]' },
  dryRun: { group: 'Run', describe: 'Print the rules and routes instead of applying them (needs no root, touches nothing)' },
  output: { group: 'Output', choices: ['text', 'json'], describe: 'Dry-run output format' },
  networkNamespace: { group: 'Run', describe: 'Network namespace to program: a name under /var/run/netns or a path' },
  cniMode: { group: 'Run', describe: 'Run as the CNI plugin does' },
  reconcile: { group: 'Run', describe: 'Heal drift in our chains by removing them and applying again' },
  cleanupOnly: { group: 'Run', describe: 'Remove our chains, jumps and routes, and apply nothing' },
  forceApply: { group: 'Run', describe: 'Apply even when existing rules conflict' },
  nativeNftables: { group: 'Run', describe: 'Program nftables directly instead of iptables' },
  nftSets: { group: 'Run', describe: 'With --native-nftables, write long lists (excluded and included CIDRs, port lists) as one rule with an anonymous set instead of one rule per value; the same traffic is captured' },
  forceIptablesBinary: { group: 'Run', describe: 'Use this iptables backend instead of detecting it: legacy or nft (or a binary name such as iptables-legacy)' },
  skipRuleApply: { group: 'Run', describe: 'Apply no rules (with --run-validation: only validate)' },
  runValidation: { group: 'Run', describe: 'Prove that redirection works by connecting through the rules (exit 126 on failure)' },
  iptablesProbePort: { group: 'Run', describe: 'Port the validation probe listens on' },
  probeTimeout: { group: 'Run', describe: 'How long the validation probe waits (Go duration, e.g. 5s, 500ms)' },
  logOutputLevel: { group: 'Output', describe: 'Log level, as Istio: a level or scope:level pairs (none, fatal, error, warn, info, debug)' },
  logAsJson: { group: 'Output', describe: 'Write each log line (errors included) as one JSON object with Istio\'s keys: level, time, msg' },
  logTarget: { group: 'Output', describe: 'Where log lines go: stdout or stderr; repeat the flag for both [default: stderr]' },
  logCaller: { group: 'Output', describe: 'Istio\'s comma-separated scopes to log callers for: checked, no effect here' },
  logStacktraceLevel: { group: 'Output', describe: 'Istio\'s stack-trace level (as --log_output_level): checked, no effect here (user errors never print a stack)' },
  vklog: { group: 'Output', describe: 'Verbosity of the Kubernetes client\'s logs, an integer (Istio\'s --vklog): checked, no effect here' },
};
