import { BUILTIN_CHAINS, type FamilyRules, type Plan, type RouteStep, type Rule, type Table } from '../model/rule.js';
import { buildPlan, buildRoutes } from './plan.js';

/**
 * What a run with a plan's settings owns in a namespace, whichever mode it ran in: beside our own
 * chains (every ISTIO_* chain, and every jump to one), the rules either mode writes in built-in
 * chains (TPROXY's marks in mangle, excluded interfaces, ...), and the routing either mode adds (::6
 * on lo, the fwmark rule and the local route of the mark's table, in both families). Reconcile,
 * cleanup and diff judge a namespace against it, so that what an earlier run of another mode left
 * is found and removed (a TPROXY to REDIRECT switch ends as a fresh REDIRECT run), while foreign
 * rules, routes and addresses stay. Built on first use, once per plan (a fresh apply never needs it).
 */
export interface Owned {
  /** Per family, our rules in built-in chains under either mode, with IPv6 on. */
  readonly builtin: { readonly ipv4: FamilyRules; readonly ipv6: FamilyRules };
  /** The routing steps any run with these settings adds. */
  readonly routes: readonly RouteStep[];
}

/** Every table a plan of ours writes rules in (filter never: Istio's rules are all in these). */
export const TABLES_WE_WRITE: readonly Table[] = ['mangle', 'nat', 'raw'];

const built = new WeakMap<Plan, Owned>();

export function ownedBy(plan: Plan): Owned {
  let owned = built.get(plan);
  if (owned !== undefined) return owned;
  const rules: Rule[] = [];
  for (const mode of ['REDIRECT', 'TPROXY'] as const) {
    const other = buildPlan({ ...plan.capture, mode, enableIpv6: true, loopbackIpv6: true });
    for (const r of other.rules) if (BUILTIN_CHAINS.has(r.chain)) rules.push(r);
  }
  const family = (f: 'ipv4' | 'ipv6'): FamilyRules => ({ family: f, rules: rules.filter((r) => r.family === f || r.family === 'both'), chains: new Map() });
  owned = {
    builtin: { ipv4: family('ipv4'), ipv6: family('ipv6') },
    // Every routing step a run with these settings can add: TPROXY with inbound capture, IPv6 on.
    routes: buildRoutes({ ...plan.capture, mode: 'TPROXY', inboundPorts: { kind: 'all' }, enableIpv6: true, loopbackIpv6: true }),
  };
  built.set(plan, owned);
  return owned;
}
