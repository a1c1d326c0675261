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
  // The raw-table jump exists only with DNS capture; nat needs a jump per family only when that
  // family has something to capture.
  rs.append('raw', 'OUTPUT', [], t.jump(Chains.OUTPUT_DNS));
  if (all || servers.ipv4.length > 0) rs.appendTo('ipv4', 'nat', Chains.OUTPUT, [], t.jump(Chains.OUTPUT_DNS));
  if (all || servers.ipv6.length > 0) rs.appendTo('ipv6', 'nat', Chains.OUTPUT, [], t.jump(Chains.OUTPUT_DNS));

  // TCP first, then UDP; Istio spells the UDP target option `--to-port`.
  for (const [proto, spelling] of [['tcp', '--to-ports'], ['udp', '--to-port']] as const) {
    if (all) {
      rs.append('nat', Chains.OUTPUT_DNS, [m.proto(proto), m.dport(53)], t.redirect(AGENT_DNS_PORT, spelling));
      continue;
    }
    for (const family of ['ipv4', 'ipv6'] as const) {
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
  const perFamily = (family: Family): void => {
    const list = c.dnsServers[family];
    if (list.length > 0) rs.appendTo(family, 'raw', 'PREROUTING', [], t.jump(Chains.INBOUND));
    for (const s of list) {
      const cidr = hostCidr(s, family);
      // App queries to the resolver, and the resolver's answers.
      rs.appendTo(family, 'raw', Chains.OUTPUT_DNS, [m.proto('udp'), m.dport(53), m.dst(cidr)], t.ct(2));
      rs.appendTo(family, 'raw', Chains.INBOUND, [m.proto('udp'), m.sport(53), m.src(cidr)], t.ct(1));
    }
  };
  perFamily('ipv4');
  perFamily('ipv6');
}
