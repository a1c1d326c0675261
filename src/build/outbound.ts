import type { CaptureConfig } from '../config/config.js';
import type { CidrSet } from '../config/values.js';
import { Chains, type Cidr, type Family, type OwnerId } from '../model/rule.js';
import { m, t, type RuleSet } from './rules.js';

/** Where OUTPUT enters our chain, and the port exclusions that must come before anything else. */
export function buildOutboundEntry(rs: RuleSet, c: CaptureConfig): void {
  // All locally generated traffic passes through ISTIO_OUTPUT; UDP is only ever touched for DNS.
  rs.append('nat', 'OUTPUT', [], t.jump(Chains.OUTPUT));
  // Excluded outbound ports, before connections back to self are redirected.
  for (const port of c.outboundPortsExclude) {
    rs.append('nat', Chains.OUTPUT, [m.proto('tcp'), m.dports(port)], t.return);
    rs.append('nat', Chains.OUTPUT, [m.proto('udp'), m.dports(port)], t.return);
  }
  // The proxy's inbound passthrough binds 127.0.0.6 / ::6: those connections are final.
  rs.each('nat', Chains.OUTPUT, (v) => [m.out('lo'), m.src(v.passthroughSource)], t.return);
}

/**
 * Rules for the proxy's own uids and gids. For each: its connections to the pod's own address on
 * lo go through the inbound listener (app -> VIP -> proxy -> app); other processes' traffic on lo
 * is left alone; and nothing the proxy sends elsewhere is captured (no loops).
 *
 * With DNS capture, port 53 is kept out of the first two rules so that an app's TCP DNS to a
 * local resolver is still captured. Istio adds that exclusion to the uid rules only; the gid
 * rules keep `! --dport <tunnel>` alone. We reproduce that asymmetry.
 */
export function buildProxyOwnerRules(rs: RuleSet, c: CaptureConfig, redirectDns: boolean, loopbackIncluded: boolean): void {
  const owner = (kind: 'uid' | 'gid', id: OwnerId): void => {
    const is = kind === 'uid' ? m.uid(id) : m.gid(id);
    const isNot = kind === 'uid' ? m.notUid(id) : m.notGid(id);
    const portGuard = redirectDns && kind === 'uid' ? m.notDports([53, c.inboundTunnelPort]) : m.notDport(c.inboundTunnelPort);
    rs.each('nat', Chains.OUTPUT, (v) => [m.out('lo'), m.notDst(v.loopback), m.proto('tcp'), portGuard, is], t.jump(Chains.IN_REDIRECT));
    // When a loopback range is explicitly captured (-i 127.0.0.1/32), lo traffic is not skipped.
    if (!loopbackIncluded) {
      rs.append('nat', Chains.OUTPUT, redirectDns ? [m.out('lo'), m.proto('tcp'), m.notDport(53), isNot] : [m.out('lo'), isNot], t.return);
    }
    rs.append('nat', Chains.OUTPUT, [is], t.return);
  };
  for (const uid of c.proxyUids) owner('uid', uid);
  for (const gid of c.proxyGids) owner('gid', gid);
}

/** Outbound capture limited by the sending process's group (ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]). */
export function buildOwnerGroups(rs: RuleSet, c: CaptureConfig): void {
  const f = c.ownerGroups;
  if (f.kind === 'exclude') {
    for (const g of f.groups) rs.append('nat', Chains.OUTPUT, [m.gid(g)], t.return);
    return;
  }
  // Only listed groups are captured: a process in none of them returns (one rule, all matches ANDed).
  rs.append('nat', Chains.OUTPUT, f.groups.map((g) => m.notGid(g)), t.return);
}

/** Localhost is never captured, then excluded CIDRs, then included ports and CIDRs. */
export function buildOutboundDestinations(rs: RuleSet, c: CaptureConfig): void {
  // Envoy-aware apps and container-to-container traffic use localhost explicitly.
  rs.each('nat', Chains.OUTPUT, (v) => [m.dst(v.loopback)], t.return);
  excludeCidrs(rs, c.outboundExcludeCidrs);
  for (const port of c.outboundPorts) {
    rs.append('nat', Chains.OUTPUT, [m.proto('tcp'), m.dports(port)], t.jump(Chains.REDIRECT));
  }
  const inc = c.outboundCidrs;
  const families: Family[] = ['ipv4', 'ipv6'];
  for (const family of families) {
    if (inc.kind === 'all') {
      rs.appendTo(family, 'nat', Chains.OUTPUT, [], t.jump(Chains.REDIRECT));
      // Traffic from virtual interfaces is captured as outbound (inserted above their RETURN).
      for (const name of c.kubeVirtInterfaces) {
        rs.insertTo(family, 'nat', 'PREROUTING', 1, [m.in(name)], t.jump(Chains.REDIRECT));
      }
    } else {
      for (const cidr of inc[family]) {
        for (const name of c.kubeVirtInterfaces) {
          rs.insertTo(family, 'nat', 'PREROUTING', 1, [m.in(name), m.dst(cidr)], t.jump(Chains.REDIRECT));
        }
        rs.appendTo(family, 'nat', Chains.OUTPUT, [m.dst(cidr)], t.jump(Chains.REDIRECT));
      }
    }
  }
}

function excludeCidrs(rs: RuleSet, set: CidrSet): void {
  const add = (family: Family, list: readonly Cidr[]): void => {
    for (const cidr of list) rs.appendTo(family, 'nat', Chains.OUTPUT, [m.dst(cidr)], t.return);
  };
  add('ipv4', set.ipv4);
  add('ipv6', set.ipv6);
}
