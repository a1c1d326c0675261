import type { CaptureConfig } from '../config/config.js';
import type { CidrSet } from '../config/values.js';
import { Chains, type Cidr, type Family, type OwnerId } from '../model/rule.js';
import { because, m, t, use, type RuleSet } from './rules.js';

/** Where OUTPUT enters our chain, and the port exclusions that must come before anything else. */
export function buildOutboundEntry(rs: RuleSet, c: CaptureConfig): void {
  // All locally generated traffic passes through ISTIO_OUTPUT; UDP is only ever touched for DNS.
  rs.append('nat', 'OUTPUT', [], t.jump(Chains.OUTPUT), because('locally generated traffic enters ISTIO_OUTPUT'));
  // Excluded outbound ports, before connections back to self are redirected.
  for (const port of c.outboundPortsExclude) {
    const why = because('outbound port excluded from capture', use('outboundPortsExclude', port));
    rs.append('nat', Chains.OUTPUT, [m.proto('tcp'), m.dports(port)], t.return, why);
    rs.append('nat', Chains.OUTPUT, [m.proto('udp'), m.dports(port)], t.return, why);
  }
  // The proxy's inbound passthrough binds 127.0.0.6 / ::6: those connections are final.
  rs.each('nat', Chains.OUTPUT, (v) => [m.out('lo'), m.src(v.passthroughSource)], t.return, because("the proxy's passthrough connections to the app (from 127.0.0.6, ::6) are not captured"));
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
    const who = use(kind === 'uid' ? 'proxyUids' : 'proxyGids', id);
    const dns = use('redirectDns', true);
    const guardsDns = redirectDns && kind === 'uid';
    const portGuard = guardsDns ? m.notDports([53, c.inboundTunnelPort]) : m.notDport(c.inboundTunnelPort);
    const toSelf = because("the proxy's connections to the pod's own address go through its inbound listener", who, use('inboundTunnelPort', c.inboundTunnelPort), ...(guardsDns ? [dns] : []));
    rs.each('nat', Chains.OUTPUT, (v) => [m.out('lo'), m.notDst(v.loopback), m.proto('tcp'), portGuard, is], t.jump(Chains.IN_REDIRECT), toSelf);
    // When a loopback range is explicitly captured (-i 127.0.0.1/32), lo traffic is not skipped.
    if (!loopbackIncluded) {
      const others = redirectDns ? because("other processes' traffic on lo is not captured (their TCP DNS is)", who, dns) : because("other processes' traffic on lo is not captured", who);
      rs.append('nat', Chains.OUTPUT, redirectDns ? [m.out('lo'), m.proto('tcp'), m.notDport(53), isNot] : [m.out('lo'), isNot], t.return, others);
    }
    rs.append('nat', Chains.OUTPUT, [is], t.return, because("the proxy's own traffic is never captured", who));
  };
  for (const uid of c.proxyUids) owner('uid', uid);
  for (const gid of c.proxyGids) owner('gid', gid);
}

/** Outbound capture limited by the sending process's group (ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]). */
export function buildOwnerGroups(rs: RuleSet, c: CaptureConfig): void {
  const f = c.ownerGroups;
  if (f.kind === 'exclude') {
    for (const g of f.groups) rs.append('nat', Chains.OUTPUT, [m.gid(g)], t.return, because("an excluded group's outbound traffic is not captured", use('outboundOwnerGroupsExclude', g)));
    return;
  }
  // Only listed groups are captured: a process in none of them returns (one rule, all matches ANDed).
  const listed = use('outboundOwnerGroups', f.groups.join(','));
  rs.append('nat', Chains.OUTPUT, f.groups.map((g) => m.notGid(g)), t.return, because('outbound traffic of a process in none of the captured groups is not captured', listed));
}

/** Localhost is never captured, then excluded CIDRs, then included ports and CIDRs. */
export function buildOutboundDestinations(rs: RuleSet, c: CaptureConfig): void {
  // Envoy-aware apps and container-to-container traffic use localhost explicitly.
  const localhost = 'localhost is never captured';
  rs.each('nat', Chains.OUTPUT, (v) => [m.dst(v.loopback)], t.return, (v) => (v.family === 'ipv4' ? because(localhost, use('ipv4LoopbackCidr', v.loopback)) : because(localhost)));
  excludeCidrs(rs, c.outboundExcludeCidrs);
  for (const port of c.outboundPorts) {
    rs.append('nat', Chains.OUTPUT, [m.proto('tcp'), m.dports(port)], t.jump(Chains.REDIRECT), because('outbound port captured, whatever the destination', use('outboundPorts', port)));
  }
  const inc = c.outboundCidrs;
  const virt = 'traffic from a virtual (VM) interface is captured as outbound';
  if (inc.kind === 'all') {
    const all = use('outboundCidrs', '*');
    rs.append('nat', Chains.OUTPUT, [], t.jump(Chains.REDIRECT), because('outbound traffic to any destination is captured', all));
    // Traffic from virtual interfaces is captured as outbound (inserted above their RETURN).
    for (const name of c.kubeVirtInterfaces) {
      rs.insert('nat', 'PREROUTING', 1, [m.in(name)], t.jump(Chains.REDIRECT), because(virt, use('kubeVirtInterfaces', name), all));
    }
    return;
  }
  const families: Family[] = ['ipv4', 'ipv6'];
  for (const family of families) {
    for (const cidr of inc[family]) {
      const listed = use('outboundCidrs', cidr);
      for (const name of c.kubeVirtInterfaces) {
        rs.insertTo(family, 'nat', 'PREROUTING', 1, [m.in(name), m.dst(cidr)], t.jump(Chains.REDIRECT), because(virt, use('kubeVirtInterfaces', name), listed));
      }
      rs.appendTo(family, 'nat', Chains.OUTPUT, [m.dst(cidr)], t.jump(Chains.REDIRECT), because('outbound destination captured', listed));
    }
  }
}

function excludeCidrs(rs: RuleSet, set: CidrSet): void {
  const add = (family: Family, list: readonly Cidr[]): void => {
    for (const cidr of list) rs.appendTo(family, 'nat', Chains.OUTPUT, [m.dst(cidr)], t.return, because('outbound destination excluded from capture', use('outboundExcludeCidrs', cidr)));
  };
  add('ipv4', set.ipv4);
  add('ipv6', set.ipv6);
}
