import type { Cidr, OwnerId, PortOrRange } from '../model/rule.js';
import type { CidrSet, DnsServers, InboundPorts, IptablesBackend, LogLevel, LogTarget, OutboundCidrs } from './values.js';

/** Which outbound traffic is captured by the owner group of the sending process. */
export type OwnerGroupFilter =
  /** Capture all groups except these (an empty list captures every group). */
  | { readonly kind: 'exclude'; readonly groups: readonly OwnerId[] }
  /** Capture only these groups. */
  | { readonly kind: 'include'; readonly groups: readonly OwnerId[] };

/** The validated configuration the plan is built from. Every value is typed and checked. */
export interface CaptureConfig {
  readonly proxyPort: number;
  readonly inboundCapturePort: number;
  readonly inboundTunnelPort: number;
  readonly proxyUids: readonly OwnerId[];
  readonly proxyGids: readonly OwnerId[];
  readonly mode: 'REDIRECT' | 'TPROXY';
  readonly tproxyMark: number;
  readonly tproxyRouteTable: number;
  readonly inboundPorts: InboundPorts;
  readonly inboundPortsExclude: readonly number[];
  readonly excludeInterfaces: readonly string[];
  readonly kubeVirtInterfaces: readonly string[];
  readonly outboundCidrs: OutboundCidrs;
  readonly outboundExcludeCidrs: CidrSet;
  readonly outboundPorts: readonly PortOrRange[];
  readonly outboundPortsExclude: readonly PortOrRange[];
  readonly ownerGroups: OwnerGroupFilter;
  readonly ipv4LoopbackCidr: Cidr;
  readonly redirectDns: boolean;
  readonly captureAllDns: boolean;
  readonly dnsServers: DnsServers;
  readonly dropInvalid: boolean;
  readonly dualStack: boolean;
  readonly enableIpv6: boolean;
}

/** How and where the plan is run. Parsed and validated now; used by apply, validation and nftables. */
export interface RunConfig {
  readonly dryRun: boolean;
  readonly output: 'text' | 'json';
  readonly networkNamespace: string | undefined;
  readonly cniMode: boolean;
  readonly reconcile: boolean;
  readonly cleanupOnly: boolean;
  readonly forceApply: boolean;
  readonly nativeNftables: boolean;
  /** With nativeNftables: lists as anonymous sets in the nft script (`--nft-sets`). */
  readonly nftSets: boolean;
  readonly forceIptablesBinary: IptablesBackend | undefined;
  readonly skipRuleApply: boolean;
  readonly runValidation: boolean;
  readonly iptablesProbePort: number;
  readonly probeTimeoutMs: number;
  readonly logLevel: LogLevel;
  /** `--log_as_json`: each log line one JSON object, as Istio's. */
  readonly logAsJson: boolean;
  /** `--log_target`: where log lines go (stderr when not given). */
  readonly logTargets: readonly LogTarget[];
}

/** A validated configuration: what to capture (the plan's input) and how to run. */
export interface Config {
  readonly capture: CaptureConfig;
  readonly run: RunConfig;
}
