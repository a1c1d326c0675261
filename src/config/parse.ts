import { ConfigError, type ValueSource } from '../errors.js';
import type { OwnerId } from '../model/rule.js';
import type { CaptureConfig, Config, OwnerGroupFilter, RunConfig } from './config.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type RawOptions } from './options.js';
import * as V from './values.js';
import type { HostFacts } from './host.js';

/** Raw values with where each came from (flag, env var, library option); absent keys take defaults. */
export interface RawInput {
  readonly values: RawOptions;
  readonly sources: Partial<Record<OptionKey, ValueSource>>;
  /** Environment variables ignored because Istio could not parse them either (logged as warnings). */
  readonly ignored?: readonly IgnoredEnv[];
}

/** An environment variable whose value was ignored, and what was expected. */
export interface IgnoredEnv {
  readonly name: string;
  readonly value: string;
  readonly expected: string;
}

const SCHEMAS = {
  envoyPort: V.port,
  inboundCapturePort: V.port,
  inboundTunnelPort: V.port,
  proxyUid: V.uidList,
  proxyGid: V.gidList,
  interceptionMode: V.interceptionMode,
  tproxyMark: V.tproxyMark,
  tproxyRouteTable: V.routeTable,
  inboundPorts: V.inboundPorts,
  localExcludePorts: V.portList,
  excludeInterfaces: V.interfaceList,
  serviceCidr: V.outboundCidrs,
  serviceExcludeCidr: V.excludeCidrs,
  outboundPorts: V.portRangeList,
  localOutboundPortsExclude: V.portRangeList,
  kubeVirtInterfaces: V.interfaceList,
  outboundOwnerGroups: V.ownerGroupsInclude,
  outboundOwnerGroupsExclude: V.ownerGroupsExclude,
  ipv4LoopbackCidr: V.ipv4LoopbackCidr,
  redirectDns: V.boolean,
  captureAllDns: V.boolean,
  dnsServers: V.dnsServers,
  dropInvalid: V.boolean,
  dualStack: V.boolean,
  enableIpv6: V.boolean,
  dryRun: V.boolean,
  output: V.outputFormat,
  networkNamespace: V.networkNamespace,
  cniMode: V.boolean,
  reconcile: V.boolean,
  cleanupOnly: V.boolean,
  forceApply: V.boolean,
  nativeNftables: V.boolean,
  nftSets: V.boolean,
  forceIptablesBinary: V.forceIptablesBinary,
  skipRuleApply: V.boolean,
  runValidation: V.boolean,
  iptablesProbePort: V.port,
  probeTimeout: V.duration,
  logOutputLevel: V.logOutputLevel,
  logAsJson: V.boolean,
  logTarget: V.logTarget,
  logCaller: V.logCallers,
  logStacktraceLevel: V.logOutputLevel,
  vklog: V.klogLevel,
} satisfies Record<OptionKey, V.ValueSchema<unknown>>;

type SchemaOutput<S> = S extends V.ValueSchema<infer T> ? T : never;
type Parsed = {
  [K in OptionKey]: (typeof OPTIONS)[K]['kind'] extends 'strings' ? readonly SchemaOutput<(typeof SCHEMAS)[K]>[] : SchemaOutput<(typeof SCHEMAS)[K]>;
};
/** Options whose absence means "derive it" rather than "use a default". */
type Derived = 'proxyUid' | 'proxyGid' | 'dnsServers' | 'enableIpv6' | 'logTarget';
export type ParsedOptions = Omit<Parsed, Derived> & Partial<Pick<Parsed, Derived>>;

/**
 * The typed value of every default in the option table, so that options nobody set need no
 * schema at run time (a test checks each equals its schema's reading of the default).
 */
export const PARSED_DEFAULTS: { readonly [K in OptionKey as (typeof OPTIONS)[K] extends { default: unknown } ? K : never]: Parsed[K] } = {
  envoyPort: 15001,
  inboundCapturePort: 15006,
  inboundTunnelPort: 15008,
  interceptionMode: 'REDIRECT',
  tproxyMark: 1337,
  tproxyRouteTable: 133,
  inboundPorts: { kind: 'none' },
  localExcludePorts: [],
  excludeInterfaces: [],
  serviceCidr: { kind: 'list', ipv4: [], ipv6: [], hasLoopback: false },
  serviceExcludeCidr: { ipv4: [], ipv6: [], hasLoopback: false },
  outboundPorts: [],
  localOutboundPortsExclude: [],
  kubeVirtInterfaces: [],
  outboundOwnerGroups: { all: true },
  outboundOwnerGroupsExclude: { all: false, groups: [] },
  ipv4LoopbackCidr: { family: 'ipv4', address: '127.0.0.1', prefixLength: 32 },
  redirectDns: false,
  captureAllDns: false,
  dropInvalid: false,
  dualStack: false,
  dryRun: false,
  output: 'text',
  networkNamespace: undefined,
  cniMode: false,
  reconcile: true,
  cleanupOnly: false,
  forceApply: false,
  nativeNftables: false,
  nftSets: false,
  forceIptablesBinary: undefined,
  skipRuleApply: false,
  runValidation: false,
  iptablesProbePort: 15002,
  probeTimeout: 5000,
  logOutputLevel: 'info',
  logAsJson: false,
  logCaller: [],
  logStacktraceLevel: 'none',
  vklog: 0,
};

/** Each option's schema, for tests. */
export function schemaOf(key: OptionKey): V.ValueSchema<unknown> {
  return SCHEMAS[key];
}

function sourceOf(input: RawInput, key: OptionKey): ValueSource {
  return input.sources[key] ?? { kind: 'option', name: key };
}

/** Validate every raw value (given or default); the first bad one throws a ConfigError naming its source. */
export function parseOptions(input: RawInput): ParsedOptions {
  const out: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    const given = input.values[key];
    if (given === undefined) {
      if (key in PARSED_DEFAULTS) out[key] = PARSED_DEFAULTS[key as keyof typeof PARSED_DEFAULTS];
      continue;
    }
    if (OPTIONS[key].kind === 'strings') {
      // A repeatable flag: each value checked on its own (the error names the one that failed).
      out[key] = (typeof given === 'string' ? [given] : (given as readonly unknown[])).map((item) => parseValue(input, key, item));
      continue;
    }
    const data = parseValue(input, key, given);
    // Istio treats an empty uid/gid as "not given": fall back to the derived default.
    if ((key === 'proxyUid' || key === 'proxyGid') && (data as OwnerId[]).length === 0) continue;
    out[key] = data;
  }
  return out as ParsedOptions;
}

function parseValue(input: RawInput, key: OptionKey, given: unknown): unknown {
  const result = SCHEMAS[key].safeParse(given);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const expected = issue?.code === 'invalid_type' || issue?.code === 'invalid_union' ? `a ${OPTIONS[key].kind}` : (issue?.message ?? 'a valid value');
  throw new ConfigError(sourceOf(input, key), typeof given === 'string' ? given : String(given), expected);
}

/**
 * Istio's owner-group filter: when the include list is exactly "*", the exclude list decides
 * (empty: every group is captured); otherwise only the listed groups are captured and the
 * exclude list is ignored, as in Istio (we say so in a warning). An empty include list captures
 * no group. An exclude of "*" could never load and is rejected.
 */
function ownerGroupFilter(p: ParsedOptions, input: RawInput, warn: (msg: string) => void): OwnerGroupFilter {
  const inc = p.outboundOwnerGroups;
  const exc = p.outboundOwnerGroupsExclude;
  if (exc.all) {
    throw new ConfigError(sourceOf(input, 'outboundOwnerGroupsExclude'), '*', 'a comma-separated list of groups ("*" would exclude every group)');
  }
  if (inc.all) return { kind: 'exclude', groups: exc.groups };
  if (exc.groups.length > 0) {
    warn(`${describeKey('outboundOwnerGroupsExclude')} is ignored because ${describeKey('outboundOwnerGroups')} lists groups (as in Istio)`);
  }
  if (inc.groups.length === 0) warn(`${describeKey('outboundOwnerGroups')} is empty: no outbound traffic is captured`);
  return { kind: 'include', groups: inc.groups };
}

function describeKey(key: OptionKey): string {
  return `--${OPTIONS[key].long}`;
}

/** Turn parsed options plus host facts into the final configuration. */
export function resolveConfig(
  p: ParsedOptions,
  host: HostFacts,
  input: RawInput = { values: {}, sources: {} },
  warn: (msg: string) => void = () => {},
): Config {
  if (p.nftSets && !p.nativeNftables) {
    // Sets are a rendering of the nft script; iptables has no counterpart here. Rejected rather
    // than ignored so a pod never silently runs a configuration other than the one asked for.
    throw new ConfigError(undefined, undefined, `${describeKey('nftSets')} needs ${describeKey('nativeNftables')}`);
  }
  const proxyUids = p.proxyUid ?? [host.proxyUid()];
  const proxyGids = p.proxyGid ?? proxyUids;
  const needsResolvConf = p.redirectDns && !p.captureAllDns && p.dnsServers === undefined;
  const capture: CaptureConfig = {
    proxyPort: p.envoyPort,
    inboundCapturePort: p.inboundCapturePort,
    inboundTunnelPort: p.inboundTunnelPort,
    proxyUids,
    proxyGids,
    mode: p.interceptionMode,
    tproxyMark: p.tproxyMark,
    tproxyRouteTable: p.tproxyRouteTable,
    inboundPorts: p.inboundPorts,
    inboundPortsExclude: p.localExcludePorts,
    excludeInterfaces: p.excludeInterfaces,
    kubeVirtInterfaces: p.kubeVirtInterfaces,
    outboundCidrs: p.serviceCidr,
    outboundExcludeCidrs: p.serviceExcludeCidr,
    outboundPorts: p.outboundPorts,
    outboundPortsExclude: p.localOutboundPortsExclude,
    ownerGroups: ownerGroupFilter(p, input, warn),
    ipv4LoopbackCidr: p.ipv4LoopbackCidr,
    redirectDns: p.redirectDns,
    captureAllDns: p.captureAllDns,
    dnsServers: p.dnsServers ?? (needsResolvConf ? host.dnsServers() : { ipv4: [], ipv6: [] }),
    dropInvalid: p.dropInvalid,
    dualStack: p.dualStack,
    enableIpv6: p.enableIpv6 ?? host.ipv6Enabled(p.dualStack),
  };
  const run: RunConfig = {
    dryRun: p.dryRun,
    output: p.output,
    networkNamespace: p.networkNamespace,
    cniMode: p.cniMode,
    reconcile: p.reconcile,
    cleanupOnly: p.cleanupOnly,
    forceApply: p.forceApply,
    nativeNftables: p.nativeNftables,
    nftSets: p.nftSets,
    forceIptablesBinary: p.forceIptablesBinary,
    skipRuleApply: p.skipRuleApply,
    runValidation: p.runValidation,
    iptablesProbePort: p.iptablesProbePort,
    probeTimeoutMs: p.probeTimeout,
    logLevel: p.logOutputLevel,
    logAsJson: p.logAsJson,
    logTargets: p.logTarget ?? ['stderr'],
  };
  return { capture, run };
}
