import type { OptionKey } from '../config/options.js';
import type { Family, Plan, Provenance } from '../model/rule.js';
import { describeProvenance } from '../render/explain.js';
import type { Flow, TraceReason, TraceStep, Verdict } from './types.js';

/**
 * What decided a traced flow's verdict, in the plan's own words: the provenance of the rules that
 * decided, or, when no rule did, which options would capture such a flow and what they hold (a
 * flag that captures nothing says so). Pure.
 */
export function traceReason(plan: Plan, flow: Flow, family: Family, verdict: Verdict, path: readonly TraceStep[], parents: readonly number[], decider: number): TraceReason {
  const deciding: number[] = [];
  if (verdict === 'pass') {
    // The last RETURN met decided that nothing captures the packet.
    let at = path.length - 1;
    while (at >= 0 && path[at]?.action !== 'return') at--;
    if (at >= 0) deciding.push(at);
  } else if (decider >= 0) {
    // The jump into the deciding chain (it says which traffic is captured or dropped), then the rule.
    const parent = parents[decider] ?? -1;
    if (parent >= 0) deciding.push(parent);
    deciding.push(decider);
  }
  const steps = deciding.flatMap((i) => (path[i] === undefined ? [] : [path[i]]));
  const because = steps.length > 0 ? steps.map((s) => s.why) : [uncaptured(plan, flow, family)];
  return { rules: steps.map((s) => s.rule), because, text: describeAll(because) };
}

/** Provenances in words, each option value said once (the first time it comes up). */
function describeAll(list: readonly Provenance[]): string {
  const said = new Set<string>();
  return list
    .map((why) => {
      const fresh = why.options.filter((u) => !said.has(`${u.key}=${u.value}`));
      for (const u of fresh) said.add(`${u.key}=${u.value}`);
      return fresh.length === 0 && why.options.length > 0 ? why.purpose : describeProvenance({ purpose: why.purpose, options: fresh });
    })
    .join('; ');
}

/** The values the plan's rules of a family were made from, per option, in order of first use. */
function optionValues(plan: Plan, family: Family): Map<OptionKey, string[]> {
  const out = new Map<OptionKey, string[]>();
  const rules = family === 'ipv4' ? plan.ipv4.rules : (plan.ipv6?.rules ?? []);
  for (const rule of rules) {
    for (const u of rule.why.options) {
      const list = out.get(u.key) ?? [];
      // A rule made by a whole list (the jump into ISTIO_INBOUND) holds it joined: each value once.
      for (const v of u.value.split(',')) if (!list.includes(v)) list.push(v);
      out.set(u.key, list);
    }
  }
  return out;
}

/** Why no rule captured a flow: the options that capture such flows, and what they hold. */
function uncaptured(plan: Plan, flow: Flow, family: Family): Provenance {
  if (family === 'ipv6' && plan.ipv6 === null) return { purpose: 'IPv6 is not enabled in this plan: no rule applies', options: [{ key: 'enableIpv6', value: 'false' }] };
  const values = optionValues(plan, family);
  const held = (key: OptionKey): string => (values.get(key) ?? []).join(',');
  if (flow.direction === 'inbound') {
    if (flow.protocol === 'udp') return { purpose: 'inbound UDP is never captured', options: [] };
    const ports = held('inboundPorts');
    if (ports === '') return { purpose: 'inbound capture is off', options: [{ key: 'inboundPorts', value: '' }] };
    return { purpose: `inbound port ${flow.dport} is not among the captured ports`, options: [{ key: 'inboundPorts', value: ports }] };
  }
  if (flow.protocol === 'udp') {
    if (flow.dport !== 53) return { purpose: 'outbound UDP is captured only for DNS (port 53)', options: [] };
    if (!values.has('redirectDns')) return { purpose: 'DNS is not captured', options: [{ key: 'redirectDns', value: 'false' }] };
    return { purpose: `DNS to ${flow.dst} is not captured: not a configured nameserver`, options: [{ key: 'dnsServers', value: held('dnsServers') }, { key: 'captureAllDns', value: 'false' }] };
  }
  const cidrs = held('outboundCidrs');
  const ports = held('outboundPorts');
  if (cidrs === '' && ports === '') return { purpose: 'outbound capture is off', options: [{ key: 'outboundCidrs', value: '' }, { key: 'outboundPorts', value: '' }] };
  return {
    purpose: `${flow.dst}:${flow.dport} is in none of the captured destinations or ports`,
    options: [{ key: 'outboundCidrs', value: cidrs }, ...(ports === '' ? [] : [{ key: 'outboundPorts' as const, value: ports }])],
  };
}
