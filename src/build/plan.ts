import type { CaptureConfig } from '../config/config.js';
import { BUILTIN_CHAINS, type Family, type FamilyRules, type OwnChain, type Plan, type RouteStep, type Rule, type Table } from '../model/rule.js';
import { buildDns } from './dns.js';
import { buildCommonChains, buildInbound, buildTproxyMarks, PASSTHROUGH } from './inbound.js';
import { buildDropInvalid, buildExcludeInterfaces, buildKubeVirtShortCircuit } from './interfaces.js';
import { buildOutboundDestinations, buildOutboundEntry, buildOwnerGroups, buildProxyOwnerRules } from './outbound.js';
import { because, RuleSet, use } from './rules.js';

const IPV6_LOOPBACK = { family: 'ipv6', address: '::1', prefixLength: 128 } as const;

/**
 * Build the plan: every rule istio-iptables would program, per family, in Istio's order, plus the
 * routing steps. Pure: the same configuration always gives the same plan.
 */
export function buildPlan(c: CaptureConfig): Plan {
  const notes: string[] = [];
  const rs = new RuleSet(c.enableIpv6, {
    ipv4: { family: 'ipv4', loopback: c.ipv4LoopbackCidr, passthroughSource: PASSTHROUGH.ipv4 },
    ipv6: { family: 'ipv6', loopback: IPV6_LOOPBACK, passthroughSource: PASSTHROUGH.ipv6 },
  });

  let redirectDns = c.redirectDns;
  if (redirectDns && !c.captureAllDns && c.dnsServers.ipv4.length === 0 && c.dnsServers.ipv6.length === 0) {
    notes.push('DNS capture disabled: --redirect-dns is set, but --capture-all-dns is not and there are no DNS servers');
    redirectDns = false;
  }
  const loopbackIncluded = c.outboundCidrs.kind === 'list' && c.outboundCidrs.hasLoopback;

  buildExcludeInterfaces(rs, c);
  buildKubeVirtShortCircuit(rs, c);
  buildDropInvalid(rs, c);
  buildCommonChains(rs, c);
  buildInbound(rs, c);
  buildOutboundEntry(rs, c);
  buildProxyOwnerRules(rs, c, redirectDns, loopbackIncluded);
  buildOwnerGroups(rs, c);
  if (redirectDns) buildDns(rs, c);
  buildOutboundDestinations(rs, c);
  buildTproxyMarks(rs, c);

  const rules = rs.rules;
  return {
    rules,
    ipv4: familyRules(rules, 'ipv4'),
    ipv6: c.enableIpv6 ? familyRules(rules, 'ipv6') : null,
    routes: buildRoutes(c, notes),
    notes,
    capture: c,
  };
}

/** One family's view of the plan's rules: those of the family and the shared ones, in issue order. */
export function familyRules(rules: readonly Rule[], family: Family): FamilyRules {
  const own: Rule[] = [];
  for (const r of rules) if (r.family === family || r.family === 'both') own.push(r);
  return { family, rules: own, chains: chainsOf(own) };
}

/**
 * Our chains per table, in creation order: first every chain that holds a rule, in order of first
 * use, then chains that are only jumped to.
 */
export function chainsOf(rules: readonly Rule[]): ReadonlyMap<Table, readonly OwnChain[]> {
  const out = new Map<Table, OwnChain[]>();
  const add = (table: Table, chain: string): void => {
    if (BUILTIN_CHAINS.has(chain)) return;
    const list = out.get(table) ?? [];
    if (!list.includes(chain as OwnChain)) list.push(chain as OwnChain);
    out.set(table, list);
  };
  for (const r of rules) add(r.table, r.chain);
  for (const r of rules) if (r.target.kind === 'jump') add(r.table, r.target.chain);
  return out;
}

/**
 * Routing. With IPv6, the passthrough source ::6/128 goes on lo (IPv4's 127.0.0.6 is already
 * covered by 127.0.0.0/8 there). Under TPROXY with inbound capture, marked packets look up a
 * table whose only route delivers everything locally. Where lo has IPv6 disabled (the target's
 * disable_ipv6), nothing IPv6 goes on lo, as Istio's CNI plugin does: no ::6, no IPv6 local route.
 */
export function buildRoutes(c: CaptureConfig, notes: string[] = []): RouteStep[] {
  const steps: RouteStep[] = [];
  const families: Family[] = c.enableIpv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  const loIpv6 = c.enableIpv6 && c.loopbackIpv6 !== false;
  if (c.enableIpv6 && !loIpv6) notes.push('IPv6 is disabled on lo (its disable_ipv6 is 1): no ::6 address and no IPv6 local route on lo');
  if (loIpv6) {
    const why = because("the source address of the proxy's IPv6 passthrough connections (::6) is on lo", use('enableIpv6', true));
    steps.push({ kind: 'loopbackAddress', family: 'ipv6', cidr: PASSTHROUGH.ipv6, why });
  }
  if (c.mode === 'TPROXY' && c.inboundPorts.kind !== 'none') {
    const mode = use('mode', c.mode);
    const table = use('tproxyRouteTable', c.tproxyRouteTable);
    const marked = because('packets with the TPROXY mark look up the TPROXY routing table', mode, use('tproxyMark', c.tproxyMark), table);
    const local = because("the TPROXY routing table delivers everything locally, to the proxy's transparent listener", mode, table);
    for (const family of families) steps.push({ kind: 'fwmarkRule', family, mark: c.tproxyMark, table: c.tproxyRouteTable, why: marked });
    for (const family of families) if (family === 'ipv4' || loIpv6) steps.push({ kind: 'localRoute', family, table: c.tproxyRouteTable, why: local });
  }
  return steps;
}
