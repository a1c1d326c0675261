import type { CaptureConfig } from '../config/config.js';
import { hostCidr } from '../config/net.js';
import { Chains, type Family } from '../model/rule.js';
import { because, m, t, use, type RuleSet } from './rules.js';

/** The istio-agent's DNS listener. */
export const AGENT_DNS_PORT = 15053;

/**
 * DNS capture: port 53 to the agent on 15053, either to the configured nameservers only (so a
 * local resolver chain such as app -> agent -> dnsmasq -> upstream cannot loop) or, with
 * --capture-all-dns, to any address.
 */
export function buildDns(rs: RuleSet, c: CaptureConfig): void {
  const all = c.captureAllDns;
  const servers = c.dnsServers;
  const dns = use('redirectDns', true);
  // The raw-table jump exists only with DNS capture; nat needs the jump only in a family that has
  // something to capture.
  rs.append('raw', 'OUTPUT', [], t.jump(Chains.OUTPUT_DNS), because('locally generated traffic enters raw ISTIO_OUTPUT_DNS, for the DNS conntrack zones', dns));
  rs.appendFor({ ipv4: all || servers.ipv4.length > 0, ipv6: all || servers.ipv6.length > 0 }, 'nat', Chains.OUTPUT, [], t.jump(Chains.OUTPUT_DNS), because('locally generated traffic enters ISTIO_OUTPUT_DNS, for DNS capture', dns));

  // TCP first, then UDP; Istio spells the UDP target option `--to-port`.
  for (const [proto, spelling] of [['tcp', '--to-ports'], ['udp', '--to-port']] as const) {
    if (all) {
      rs.append('nat', Chains.OUTPUT_DNS, [m.proto(proto), m.dport(53)], t.redirect(AGENT_DNS_PORT, spelling), because('DNS to any server goes to the istio-agent (port 15053)', dns, use('captureAllDns', true)));
      continue;
    }
    for (const family of FAMILIES) {
      for (const s of servers[family]) {
        rs.appendTo(family, 'nat', Chains.OUTPUT_DNS, [m.proto(proto), m.dport(53), m.dst(hostCidr(s, family))], t.redirect(AGENT_DNS_PORT, spelling), because('DNS to a configured nameserver goes to the istio-agent (port 15053)', dns, use('dnsServers', s)));
      }
    }
  }
  buildConntrackZones(rs, c);
}

/**
 * UDP DNS is split into two conntrack zones so the two legs of a proxied query never collide:
 * zone 1 is agent <-> upstream resolver, zone 2 is app <-> agent.
 */
function buildConntrackZones(rs: RuleSet, c: CaptureConfig): void {
  const dns = use('redirectDns', true);
  const owners = [...c.proxyUids.map((id) => [m.uid(id), use('proxyUids', id)] as const), ...c.proxyGids.map((id) => [m.gid(id), use('proxyGids', id)] as const)];
  for (const [owner, who] of owners) {
    // The agent's queries to upstream resolvers.
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53), owner], t.ct(1), because("the agent's queries to upstream resolvers use conntrack zone 1", dns, who));
    // The agent's answers to apps.
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.sport(AGENT_DNS_PORT), owner], t.ct(2), because("the agent's answers to apps use conntrack zone 2", dns, who));
  }
  const enter = 'DNS answers enter raw ISTIO_INBOUND, for their conntrack zone';
  const queries = "apps' DNS queries use conntrack zone 2";
  const answers = "resolvers' answers use conntrack zone 1";
  if (c.captureAllDns) {
    const any = use('captureAllDns', true);
    rs.append('raw', 'PREROUTING', [], t.jump(Chains.INBOUND), because(enter, dns, any));
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53)], t.ct(2), because(queries, dns, any));
    rs.append('raw', Chains.INBOUND, [m.proto('udp'), m.sport(53)], t.ct(1), because(answers, dns, any));
    return;
  }
  const servers = c.dnsServers;
  rs.appendFor({ ipv4: servers.ipv4.length > 0, ipv6: servers.ipv6.length > 0 }, 'raw', 'PREROUTING', [], t.jump(Chains.INBOUND), because(enter, dns));
  for (const family of FAMILIES) {
    for (const s of servers[family]) {
      const cidr = hostCidr(s, family);
      const server = use('dnsServers', s);
      // App queries to the resolver, and the resolver's answers.
      rs.appendTo(family, 'raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53), m.dst(cidr)], t.ct(2), because(queries, dns, server));
      rs.appendTo(family, 'raw', Chains.INBOUND, [m.proto('udp'), m.sport(53), m.src(cidr)], t.ct(1), because(answers, dns, server));
    }
  }
}

const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];
