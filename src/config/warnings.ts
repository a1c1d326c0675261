import type { Cidr } from '../model/rule.js';
import { flagName } from '../render/explain.js';
import type { Config } from './config.js';

/**
 * Settings that are accepted and do nothing: each is said once, as a warning, by every program
 * that reads a configuration (the Node CLI and the entrypoint run this through cli.ts). Pure: the
 * same configuration always gives the same warnings, in the same order.
 */

/** A warning about the configuration: a stable code (for tools reading --log_as_json) and the words. */
export interface ConfigWarning {
  readonly code: 'capture-all-dns-without-redirect-dns' | 'dns-servers-without-redirect-dns' | 'ipv6-cidrs-with-ipv6-off' | 'captures-nothing';
  readonly message: string;
}

const cidrText = (cs: readonly Cidr[]): string => cs.map((c) => `${c.address}/${c.prefixLength}`).join(',');

/** What the configuration sets that has no effect, and a configuration that captures nothing at all. */
export function configWarnings(config: Config): ConfigWarning[] {
  const c = config.capture;
  const out: ConfigWarning[] = [];
  const dnsServers = [...c.dnsServers.ipv4, ...c.dnsServers.ipv6];
  if (c.captureAllDns && !c.redirectDns) {
    out.push({ code: 'capture-all-dns-without-redirect-dns', message: `${flagName('captureAllDns')} has no effect without ${flagName('redirectDns')}: no DNS traffic is captured` });
  }
  // Without --redirect-dns the servers are never read from resolv.conf: listed, they were given.
  if (!c.redirectDns && dnsServers.length > 0) {
    out.push({ code: 'dns-servers-without-redirect-dns', message: `${flagName('dnsServers')} (${dnsServers.join(',')}) has no effect without ${flagName('redirectDns')}` });
  }
  if (!c.enableIpv6) {
    const ipv6 = [
      [flagName('outboundCidrs'), c.outboundCidrs.kind === 'list' ? cidrText(c.outboundCidrs.ipv6) : ''],
      [flagName('outboundExcludeCidrs'), cidrText(c.outboundExcludeCidrs.ipv6)],
      [flagName('dnsServers'), c.redirectDns ? c.dnsServers.ipv6.join(',') : ''],
    ] as const;
    for (const [flag, listed] of ipv6) {
      if (listed === '') continue;
      out.push({
        code: 'ipv6-cidrs-with-ipv6-off',
        message: `${flag} lists IPv6 (${listed}) but IPv6 is off (${flagName('enableIpv6')}=false, given or detected): no IPv6 rules are written, so these have no effect`,
      });
    }
  }
  if (!config.run.cleanupOnly && !captures(config)) {
    out.push({
      code: 'captures-nothing',
      message:
        `this configuration captures no traffic: no inbound ports (${flagName('inboundPorts')}), no outbound CIDRs (${flagName('outboundCidrs')})` +
        `${c.enableIpv6 ? '' : ' of IPv4'}, no outbound ports (${flagName('outboundPorts')}), no DNS (${flagName('redirectDns')}); the rules are written and redirect nothing`,
    });
  }
  return out;
}

/** Whether any traffic reaches the proxy: inbound ports, outbound destinations or ports, DNS. */
function captures(config: Config): boolean {
  const c = config.capture;
  const cidrs = c.outboundCidrs;
  const outbound = cidrs.kind === 'all' || cidrs.ipv4.length > 0 || (c.enableIpv6 && cidrs.ipv6.length > 0);
  const dns = c.redirectDns && (c.captureAllDns || c.dnsServers.ipv4.length > 0 || (c.enableIpv6 && c.dnsServers.ipv6.length > 0));
  return c.inboundPorts.kind !== 'none' || outbound || c.outboundPorts.length > 0 || dns;
}
