import type { ValueInput, ValueName, ValueOf } from './values.js';

/**
 * The option table: the one definition of every istio-iptables option. Each entry holds the
 * flag's long and short name, its environment variables, Istio's default (and its typed reading),
 * the kind of value it takes (a value schema of values.ts), where it goes in the configuration
 * and what --help says about it. The flag reader (args.ts), the yargs definition and --help
 * (parser.ts), validation (parse.ts: a zod object over the entries given), the configuration's
 * type (config.ts), the library's typed input (ConfigInput, below) and README's flag table
 * (checked by test/options.test.ts) all derive from it. The key of an entry is its key in the
 * configuration and in configFromObject.
 *
 * Adding an option is one entry here; a capture option is then read by the builder as
 * `config.<key>`.
 */

/**
 * Whether a flag takes a value (`string`), is a switch (`boolean`), or is a string flag that may be
 * given several times, each value kept (`strings`, pflag's StringArray).
 */
export type OptionKind = 'string' | 'boolean' | 'strings';

/**
 * The commands of the command line: `apply` (the main one: apply, or print with --dry-run),
 * `trace` and `diff`.
 */
export type OptionCommand = 'apply' | 'trace' | 'diff';

/** The sections of --help. */
export type OptionGroup = 'Ports' | 'Capture' | 'Proxy identity' | 'DNS' | 'TPROXY' | 'Run' | 'Output';

/** One option of the table. */
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
  /** Istio's default, as raw text; absent means "derived" (the proxy uid is looked up, IPv6 is detected). */
  readonly default?: string | boolean;
  /**
   * How Istio parses this option's environment variable, when not as a string: a value Istio
   * cannot parse is ignored there (the flag keeps its default) and here, with a warning. Booleans
   * are always parsed (Go's ParseBool); `uint16` and `duration` as pflag's Uint16 and Duration.
   */
  readonly envParse?: 'uint16' | 'duration';
  /**
   * An environment value that is not one of Go's boolean spellings is an error instead of being
   * ignored as Istio ignores it: a misspelt DRY_RUN=yes would apply where a printout was asked for.
   */
  readonly envStrict?: boolean;
  /** The value schema (values.ts) each value is read with. */
  readonly value: ValueName;
  /**
   * The default as its schema reads it, so that options nobody set need no schema at run time
   * (test/options.test.ts checks it equals the schema's reading of `default`).
   */
  readonly parsed?: unknown;
  /** Where the value goes in the configuration (`Config.capture` or `Config.run`); absent: checked only. */
  readonly config?: 'capture' | 'run';
  readonly group: OptionGroup;
  /**
   * The commands in which the option has an effect, whose --help lists it; absent: all. Every
   * command accepts every option (a pod's init arguments can be given to trace and diff as they
   * are). None: accepted and checked, with no effect anywhere (Istio's flags for its Go logger
   * and Kubernetes client), so hidden from --help.
   */
  readonly commands?: readonly OptionCommand[];
  /** What --help and README's flag table say about it. */
  readonly help: string;
}

/**
 * The option table. Written out in full, environment names included (a table built by calls cost
 * the entrypoint's interpreter ~0.15 ms at every start-up, before it can start the restore);
 * Istio's rule for the names (the long name upper-cased, `-` as `_`) is checked by a test.
 */
export const OPTIONS = {
  proxyPort: {
    long: 'envoy-port', short: 'p', kind: 'string', default: '15001', env: [], value: 'port', parsed: 15001, config: 'capture',
    group: 'Ports', help: 'Port of the proxy to which all outbound TCP traffic is redirected',
  },
  inboundCapturePort: {
    long: 'inbound-capture-port', short: 'z', kind: 'string', default: '15006', env: ['INBOUND_CAPTURE_PORT'], value: 'port', parsed: 15006, config: 'capture',
    group: 'Ports', help: 'Port to which all inbound TCP traffic to the pod is redirected',
  },
  inboundTunnelPort: {
    long: 'inbound-tunnel-port', short: 'e', kind: 'string', default: '15008', env: ['INBOUND_TUNNEL_PORT'], value: 'port', parsed: 15008, config: 'capture',
    group: 'Ports', help: 'Istio tunnel (HBONE) port: inbound traffic to it is never redirected',
  },
  proxyUids: {
    long: 'proxy-uid', short: 'u', kind: 'string', env: ['PROXY_UID'], value: 'uidList', config: 'capture',
    group: 'Proxy identity', help: 'Comma-separated uids (numbers or names) whose traffic is not captured [default: uid of $ENVOY_USER (istio-proxy), else 1337]',
  },
  proxyGids: {
    long: 'proxy-gid', short: 'g', kind: 'string', env: ['PROXY_GID'], value: 'gidList', config: 'capture',
    group: 'Proxy identity', help: 'Comma-separated gids (numbers or names) whose traffic is not captured [default: same as --proxy-uid]',
  },
  mode: {
    long: 'istio-inbound-interception-mode', short: 'm', kind: 'string', default: 'REDIRECT', env: ['ISTIO_INBOUND_INTERCEPTION_MODE'], value: 'interceptionMode', parsed: 'REDIRECT', config: 'capture',
    group: 'Capture', help: 'How inbound connections reach the proxy: REDIRECT (nat) or TPROXY (mangle, keeps the client address)',
  },
  tproxyMark: {
    long: 'istio-inbound-tproxy-mark', short: 't', kind: 'string', default: '1337', env: ['ISTIO_INBOUND_TPROXY_MARK'], value: 'tproxyMark', parsed: 1337, config: 'capture',
    group: 'TPROXY', help: 'Packet mark (32-bit) set on TPROXY-diverted packets and used by the policy route',
  },
  tproxyRouteTable: {
    long: 'istio-inbound-tproxy-route-table', short: 'r', kind: 'string', default: '133', env: ['ISTIO_INBOUND_TPROXY_ROUTE_TABLE'], value: 'routeTable', parsed: 133, config: 'capture',
    group: 'TPROXY', help: 'Routing table (32-bit) holding the local default route for TPROXY-marked packets',
  },
  inboundPorts: {
    long: 'istio-inbound-ports', short: 'b', kind: 'string', default: '', env: ['ISTIO_INBOUND_PORTS'], value: 'inboundPorts', parsed: { kind: 'none' }, config: 'capture',
    group: 'Capture', help: 'Comma-separated inbound ports to capture, "*" for all; empty captures none',
  },
  inboundPortsExclude: {
    long: 'istio-local-exclude-ports', short: 'd', kind: 'string', default: '', env: ['ISTIO_LOCAL_EXCLUDE_PORTS'], value: 'portList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Comma-separated inbound ports never captured (applies with -b "*")',
  },
  excludeInterfaces: {
    long: 'istio-exclude-interfaces', short: 'c', kind: 'string', default: '', env: ['ISTIO_EXCLUDE_INTERFACES'], value: 'interfaceList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Comma-separated interfaces whose inbound and outbound traffic is never captured',
  },
  outboundCidrs: {
    long: 'istio-service-cidr', short: 'i', kind: 'string', default: '', env: ['ISTIO_SERVICE_CIDR'], value: 'outboundCidrs', parsed: { kind: 'list', ipv4: [], ipv6: [], hasLoopback: false }, config: 'capture',
    group: 'Capture', help: 'Comma-separated CIDRs whose outbound traffic is captured, "*" for all; empty captures none',
  },
  outboundExcludeCidrs: {
    long: 'istio-service-exclude-cidr', short: 'x', kind: 'string', default: '', env: ['ISTIO_SERVICE_EXCLUDE_CIDR'], value: 'excludeCidrs', parsed: { ipv4: [], ipv6: [], hasLoopback: false }, config: 'capture',
    group: 'Capture', help: 'Comma-separated CIDRs whose outbound traffic is never captured ("*" is not allowed)',
  },
  outboundPorts: {
    long: 'istio-outbound-ports', short: 'q', kind: 'string', default: '', env: ['ISTIO_OUTBOUND_PORTS'], value: 'portRangeList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Comma-separated outbound ports (0-65535) or ranges first:last always captured, whatever the destination',
  },
  outboundPortsExclude: {
    long: 'istio-local-outbound-ports-exclude', short: 'o', kind: 'string', default: '', env: ['ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE'], value: 'portRangeList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Comma-separated outbound ports (0-65535) or ranges first:last never captured (TCP and UDP)',
  },
  kubeVirtInterfaces: {
    long: 'kube-virt-interfaces', short: 'k', kind: 'string', default: '', env: ['KUBE_VIRT_INTERFACES'], value: 'interfaceList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Comma-separated virtual interfaces (VMs) whose inbound traffic is treated as outbound',
  },
  outboundOwnerGroups: {
    long: 'outbound-owner-groups', kind: 'string', default: '*', env: ['ISTIO_OUTBOUND_OWNER_GROUPS'], value: 'ownerGroupsInclude', parsed: { all: true },
    group: 'Capture', help: 'Comma-separated groups (names or gids) whose outbound traffic is captured, "*" for all',
  },
  outboundOwnerGroupsExclude: {
    long: 'outbound-owner-groups-exclude', kind: 'string', default: '', env: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'], value: 'ownerGroupsExclude', parsed: { all: false, groups: [] },
    group: 'Capture', help: 'Comma-separated groups (names or gids) whose outbound traffic is not captured',
  },
  ipv4LoopbackCidr: {
    long: 'ipv4-loopback-cidr', kind: 'string', default: '127.0.0.1/32', env: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'], value: 'ipv4LoopbackCidr', parsed: { family: 'ipv4', address: '127.0.0.1', prefixLength: 32 }, config: 'capture',
    group: 'Capture', help: 'IPv4 loopback CIDR treated as localhost (within 127.0.0.0/8)',
  },
  redirectDns: {
    long: 'redirect-dns', kind: 'boolean', default: false, env: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'], value: 'boolean', parsed: false, config: 'capture',
    group: 'DNS', help: 'Capture DNS (port 53) to the istio-agent on port 15053',
  },
  captureAllDns: {
    long: 'capture-all-dns', kind: 'boolean', default: false, env: ['CAPTURE_ALL_DNS'], value: 'boolean', parsed: false, config: 'capture',
    group: 'DNS', help: 'With --redirect-dns, capture DNS to any server, not only the configured nameservers',
  },
  dnsServers: {
    long: 'dns-servers', kind: 'string', env: ['DNS_SERVERS'], value: 'dnsServers', config: 'capture',
    group: 'DNS', help: 'Comma-separated nameservers for DNS capture; "" for none [default: nameservers in /etc/resolv.conf]',
  },
  dropInvalid: {
    long: 'drop-invalid', kind: 'boolean', default: false, env: ['INVALID_DROP', 'DROP_INVALID'], value: 'boolean', parsed: false, config: 'capture',
    group: 'Capture', help: 'Drop packets conntrack marks INVALID instead of letting the kernel reset the connection',
  },
  dualStack: {
    long: 'dual-stack', kind: 'boolean', default: false, env: ['ISTIO_DUAL_STACK', 'DUAL_STACK'], value: 'boolean', parsed: false, config: 'capture',
    group: 'Capture', help: 'Dual-stack pod: IPv6 is enabled when the pod has any IPv6 address',
  },
  enableIpv6: {
    long: 'enable-ipv6', kind: 'boolean', env: ['ENABLE_IPV6'], value: 'boolean', config: 'capture',
    group: 'Capture', help: 'Emit IPv6 rules [default: detected from the first non-loopback, non-link-local address]',
  },
  dryRun: {
    long: 'dry-run', short: 'n', kind: 'boolean', default: false, env: ['DRY_RUN'], envStrict: true, value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Print the rules and routes instead of applying them (needs no root, touches nothing)',
  },
  output: {
    long: 'output', kind: 'string', default: 'text', env: [], value: 'outputFormat', parsed: 'text', config: 'run',
    group: 'Output', commands: ['apply', 'trace'], help: 'Output format of a dry run (needs --dry-run: without it the rules are applied) or of trace: text, json, svg (a picture: the chain graph, or the packet\'s path) or mermaid (the same, for GitHub)',
  },
  explain: {
    long: 'explain', kind: 'boolean', default: false, env: [], value: 'boolean', parsed: false, config: 'run',
    group: 'Output', commands: ['apply'], help: 'With --dry-run: a # line above each rule naming the flag, environment variable and value that made it, and why (in JSON: explain)',
  },
  networkNamespace: {
    long: 'network-namespace', kind: 'string', default: '', env: ['NETWORK_NAMESPACE'], value: 'networkNamespace', parsed: undefined, config: 'run',
    group: 'Run', commands: ['apply', 'diff'], help: 'Network namespace to act on (to program; for diff, to read): a name under /var/run/netns or a path',
  },
  cniMode: {
    long: 'cni-mode', kind: 'boolean', default: false, env: ['CNI_MODE'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Run as the CNI plugin does',
  },
  reconcile: {
    long: 'reconcile', kind: 'boolean', default: true, env: ['RECONCILE'], value: 'boolean', parsed: true, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Heal drift in our chains by removing them and applying again',
  },
  cleanupOnly: {
    long: 'cleanup-only', kind: 'boolean', default: false, env: ['CLEANUP_ONLY'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Remove our chains, jumps and routes, and apply nothing',
  },
  forceApply: {
    long: 'force-apply', kind: 'boolean', default: false, env: ['FORCE_APPLY'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Apply even when existing rules conflict',
  },
  nativeNftables: {
    long: 'native-nftables', kind: 'boolean', default: false, env: ['NATIVE_NFTABLES'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Program nftables directly instead of iptables',
  },
  nftSets: {
    long: 'nft-sets', kind: 'boolean', default: false, env: ['NFT_SETS'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'With --native-nftables, write long lists (excluded and included CIDRs, port lists) as one rule with an anonymous set instead of one rule per value; the same traffic is captured',
  },
  forceIptablesBinary: {
    long: 'force-iptables-binary', kind: 'string', default: '', env: ['FORCE_IPTABLES_BINARY'], value: 'forceIptablesBinary', parsed: undefined, config: 'run',
    group: 'Run', commands: ['apply', 'diff'], help: 'Use this iptables backend instead of detecting it: legacy or nft (or a binary name such as iptables-legacy)',
  },
  skipRuleApply: {
    long: 'skip-rule-apply', kind: 'boolean', default: false, env: ['SKIP_RULE_APPLY'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Apply no rules (with --run-validation: only validate)',
  },
  runValidation: {
    long: 'run-validation', kind: 'boolean', default: false, env: ['RUN_VALIDATION'], value: 'boolean', parsed: false, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Prove that redirection works by connecting through the rules (exit 126 on failure)',
  },
  iptablesProbePort: {
    long: 'iptables-probe-port', kind: 'string', default: '15002', env: ['IPTABLES_PROBE_PORT'], envParse: 'uint16', value: 'port', parsed: 15002, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Port the validation probe listens on',
  },
  probeTimeoutMs: {
    long: 'probe-timeout', kind: 'string', default: '5s', env: ['PROBE_TIMEOUT'], envParse: 'duration', value: 'duration', parsed: 5000, config: 'run',
    group: 'Run', commands: ['apply'], help: 'How long the validation probe waits (Go duration, e.g. 5s, 500ms)',
  },
  runTimeoutMs: {
    long: 'run-timeout', kind: 'string', default: '60s', env: ['RUN_TIMEOUT'], envParse: 'duration', value: 'duration', parsed: 60000, config: 'run',
    group: 'Run', commands: ['apply'], help: 'Deadline for the run\'s changes (Go duration): past it, what the run changed is rolled back and it exits 1',
  },
  logLevel: {
    long: 'log_output_level', kind: 'string', default: 'default:info', env: ['LOG_OUTPUT_LEVEL'], value: 'logOutputLevel', parsed: 'info', config: 'run',
    group: 'Output', help: 'Log level, as Istio: a level or scope:level pairs (none, fatal, error, warn, info, debug)',
  },
  logAsJson: {
    long: 'log_as_json', kind: 'boolean', default: false, env: [], value: 'boolean', parsed: false, config: 'run',
    group: 'Output', help: 'Write each log line (errors included) as one JSON object with Istio\'s keys: level, time, msg',
  },
  logTargets: {
    long: 'log_target', kind: 'strings', env: [], value: 'logTarget', config: 'run',
    group: 'Output', help: 'Where log lines go: stdout or stderr; repeat the flag for both [default: stderr]',
  },
  logCaller: {
    long: 'log_caller', kind: 'string', default: '', env: [], value: 'logCallers', parsed: [],
    group: 'Output', commands: [], help: 'Istio\'s comma-separated scopes to log callers for: checked, no effect here',
  },
  logStacktraceLevel: {
    long: 'log_stacktrace_level', kind: 'string', default: 'default:none', env: [], value: 'logOutputLevel', parsed: 'none',
    group: 'Output', commands: [], help: 'Istio\'s stack-trace level (as --log_output_level): checked, no effect here (user errors never print a stack)',
  },
  vklog: {
    long: 'vklog', kind: 'string', default: '0', env: [], value: 'klogLevel', parsed: 0,
    group: 'Output', commands: [], help: 'Verbosity of the Kubernetes client\'s logs, an integer (Istio\'s --vklog): checked, no effect here',
  },
} as const satisfies Record<string, OptionSpec>;

/** An option's key in the option table, and in the configuration (`inboundPorts`, `mode`, ...). */
export type OptionKey = keyof typeof OPTIONS;
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[];

/**
 * Values as flags and environment variables give them, before validation: each option's text (a
 * switch's also as a boolean, a repeatable flag's as its list of texts). configFromObject also
 * takes these at run time, for JavaScript callers of 1.x; its type is ConfigInput.
 */
export type RawOptions = {
  [K in OptionKey]?: (typeof OPTIONS)[K]['kind'] extends 'boolean' ? boolean | string : (typeof OPTIONS)[K]['kind'] extends 'strings' ? string | readonly string[] : string;
};

/**
 * One option's typed input: its kind of value's typed form (ValueInputs: a number for a port, an
 * array for a list, a literal union for a mode, a boolean for a switch), a list of them for a
 * repeatable flag.
 */
export type OptionInput<K extends OptionKey> = (typeof OPTIONS)[K]['kind'] extends 'strings'
  ? readonly ValueInput<(typeof OPTIONS)[K]['value']>[]
  : ValueInput<(typeof OPTIONS)[K]['value']>;

/**
 * What configFromObject takes: any options of the table, under their keys, each in its typed form
 * (`{ proxyPort: 15001, mode: 'TPROXY', inboundPorts: '*', outboundExcludeCidrs: ['10.0.0.0/8'] }`).
 * An option absent or undefined takes its default, as a flag not given does.
 */
export type ConfigInput = {
  readonly [K in OptionKey]?: OptionInput<K> | undefined;
};

/** An option's validated value: its schema's output (a list of them for a repeatable flag). */
export type OptionValue<K extends OptionKey> = (typeof OPTIONS)[K]['kind'] extends 'strings'
  ? readonly ValueOf<(typeof OPTIONS)[K]['value']>[]
  : ValueOf<(typeof OPTIONS)[K]['value']>;

/** The options that go to one section of the configuration, with their validated values. */
export type OptionSection<S extends 'capture' | 'run'> = {
  readonly [K in OptionKey as (typeof OPTIONS)[K] extends { readonly config: S } ? K : never]: OptionValue<K>;
};
