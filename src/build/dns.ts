import type { CaptureConfig } from '../config/config.js';
import { hostCidr } from '../config/net.js';
import { Chains, type Family } from '../model/rule.js';
import { m, t, type RuleSet } from './rules.js';

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
  // The raw-table jump exists only with DNS capture; nat needs the jump only in a family that has
  // something to capture.
  rs.append('raw', 'OUTPUT', [], t.jump(Chains.OUTPUT_DNS));
  rs.appendFor({ ipv4: all || servers.ipv4.length > 0, ipv6: all || servers.ipv6.length > 0 }, 'nat', Chains.OUTPUT, [], t.jump(Chains.OUTPUT_DNS));

  // TCP first, then UDP; Istio spells the UDP target option `--to-port`.
  for (const [proto, spelling] of [['tcp', '--to-ports'], ['udp', '--to-port']] as const) {
    if (all) {
      rs.append('nat', Chains.OUTPUT_DNS, [m.proto(proto), m.dport(53)], t.redirect(AGENT_DNS_PORT, spelling));
      continue;
    }
    for (const family of FAMILIES) {
      for (const s of servers[family]) {
        rs.appendTo(family, 'nat', Chains.OUTPUT_DNS, [m.proto(proto), m.dport(53), m.dst(hostCidr(s, family))], t.redirect(AGENT_DNS_PORT, spelling));
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
  const owners = [...c.proxyUids.map((id) => m.uid(id)), ...c.proxyGids.map((id) => m.gid(id))];
  for (const owner of owners) {
    // The agent's queries to upstream resolvers.
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53), owner], t.ct(1));
    // The agent's answers to apps.
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.sport(AGENT_DNS_PORT), owner], t.ct(2));
  }
  if (c.captureAllDns) {
    rs.append('raw', 'PREROUTING', [], t.jump(Chains.INBOUND));
    rs.append('raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53)], t.ct(2));
    rs.append('raw', Chains.INBOUND, [m.proto('udp'), m.sport(53)], t.ct(1));
    return;
  }
  const servers = c.dnsServers;
  rs.appendFor({ ipv4: servers.ipv4.length > 0, ipv6: servers.ipv6.length > 0 }, 'raw', 'PREROUTING', [], t.jump(Chains.INBOUND));
  for (const family of FAMILIES) {
    for (const s of servers[family]) {
      const cidr = hostCidr(s, family);
      // App queries to the resolver, and the resolver's answers.
      rs.appendTo(family, 'raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53), m.dst(cidr)], t.ct(2));
      rs.appendTo(family, 'raw', Chains.INBOUND, [m.proto('udp'), m.sport(53), m.src(cidr)], t.ct(1));
    }
  }
}

const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];
