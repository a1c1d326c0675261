import type { CaptureConfig } from '../config/config.js';
import { Chains } from '../model/rule.js';
import { because, m, t, use, type RuleSet } from './rules.js';

/** Excluded interfaces: traffic in or out of them skips capture entirely (nat, and mangle under TPROXY). */
export function buildExcludeInterfaces(rs: RuleSet, c: CaptureConfig): void {
  const inFrom = (name: string) => because('traffic in from an excluded interface is never captured', use('excludeInterfaces', name));
  const outTo = (name: string) => because('traffic out to an excluded interface is never captured', use('excludeInterfaces', name));
  for (const name of c.excludeInterfaces) {
    rs.append('nat', 'PREROUTING', [m.in(name)], t.return, inFrom(name));
    rs.append('nat', 'OUTPUT', [m.out(name)], t.return, outTo(name));
  }
  if (c.mode === 'TPROXY') {
    for (const name of c.excludeInterfaces) {
      rs.append('mangle', 'PREROUTING', [m.in(name)], t.return, inFrom(name));
      rs.append('mangle', 'OUTPUT', [m.out(name)], t.return, outTo(name));
    }
  }
}

/**
 * Virtual (VM) interfaces: their inbound traffic is not inbound capture. Inserted at position 1,
 * as Istio does, so each later insert lands above the earlier ones.
 */
export function buildKubeVirtShortCircuit(rs: RuleSet, c: CaptureConfig): void {
  for (const name of c.kubeVirtInterfaces) {
    rs.insert('nat', 'PREROUTING', 1, [m.in(name)], t.return, because('traffic from a virtual (VM) interface is not inbound capture', use('kubeVirtInterfaces', name)));
  }
}

/** --drop-invalid: drop packets conntrack cannot place (out of window) instead of letting the kernel reset. */
export function buildDropInvalid(rs: RuleSet, c: CaptureConfig): void {
  if (!c.dropInvalid) return;
  const why = because('packets conntrack cannot place (INVALID) are dropped', use('dropInvalid', true));
  rs.append('mangle', 'PREROUTING', [m.ctstate('INVALID')], t.jump(Chains.DROP), why);
  rs.append('mangle', Chains.DROP, [], t.drop, why);
}
