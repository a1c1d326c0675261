import type { Config } from '../config/config.js';
import type { HostFacts } from '../config/host.js';
import type { OptionKey, RawOptions } from '../config/options.js';
import { parseOptions, resolveConfig, type RawInput } from '../config/parse.js';
import type { ValueSource } from '../errors.js';
import type { Redirect, RedirectValue } from './pod.js';

/*
 * A pod's redirect as istio-iptables configuration, as Istio's plugin fills its config
 * (cni/pkg/plugin/sidecar_iptables_linux.go): Istio's defaults for everything the redirect does
 * not set, CNI mode, the pod's namespace. DNS capture is all of port 53 (Istio's plugin sets
 * capture-all-dns with redirect-dns), so no resolv.conf is read. The owner-group and loopback
 * settings Istio reads from its process's environment are left at their defaults: the plugin
 * runs in the kubelet's environment, which says nothing about a pod.
 */

const OPTION_OF: Readonly<Record<RedirectValue, OptionKey>> = {
  mode: 'mode',
  includeIpRanges: 'outboundCidrs',
  excludeIpRanges: 'outboundExcludeCidrs',
  includeInboundPorts: 'inboundPorts',
  excludeInboundPorts: 'inboundPortsExclude',
  includeOutboundPorts: 'outboundPorts',
  excludeOutboundPorts: 'outboundPortsExclude',
  rerouteVirtualInterfaces: 'kubeVirtInterfaces',
  excludeInterfaces: 'excludeInterfaces',
};

/** The option values for a redirect into the namespace `netns`. */
export function redirectOptions(r: Redirect, netns: string, nativeNftables: boolean): RawOptions {
  return {
    proxyPort: r.proxyPort,
    proxyUids: r.proxyUid,
    proxyGids: r.proxyGid,
    mode: r.mode,
    outboundCidrs: r.includeIpRanges,
    outboundExcludeCidrs: r.excludeIpRanges,
    inboundPorts: r.includeInboundPorts,
    inboundPortsExclude: r.excludeInboundPorts,
    outboundPorts: r.includeOutboundPorts,
    outboundPortsExclude: r.excludeOutboundPorts,
    kubeVirtInterfaces: r.rerouteVirtualInterfaces,
    excludeInterfaces: r.excludeInterfaces,
    redirectDns: r.dnsRedirect,
    captureAllDns: r.dnsRedirect,
    dropInvalid: r.invalidDrop,
    dualStack: r.dualStack,
    networkNamespace: netns,
    cniMode: true,
    nativeNftables,
  };
}

/**
 * The configuration for a redirect; a value the configuration rejects names the annotation it
 * came from (ConfigError). `facts` answer what Istio reads in the pod's namespace (IPv6).
 */
export function redirectConfig(r: Redirect, netns: string, nativeNftables: boolean, facts: HostFacts): Config {
  const sources: Partial<Record<OptionKey, ValueSource>> = {};
  for (const [value, annotation] of Object.entries(r.sources) as [RedirectValue, string][]) sources[OPTION_OF[value]] = { kind: 'annotation', name: annotation };
  const input: RawInput = { values: redirectOptions(r, netns, nativeNftables), sources };
  return resolveConfig(parseOptions(input), facts, input);
}
