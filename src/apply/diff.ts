import type { Family, FamilyRules, Plan, RouteStep } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import { ownedBy } from '../build/owned.js';
import type { Kernel } from '../platform/platform.js';
import { commandError, describeCommandFailure, type Runner } from './commands.js';
import { detectBackend } from './detect.js';
import type { OwnerResolver } from './saveform.js';
import { assess, parseSave, type RuleDifference } from './state.js';
import { changeArgs } from './routes.js';

export type { RuleDifference } from './state.js';

/** How one family's live rules compare with the plan. */
export interface FamilyDiff {
  readonly family: Family;
  /**
   * `exact`: exactly the plan (for a family the plan does not have: nothing of ours); `absent`:
   * nothing of ours (not applied); `drift`: something else of ours; `not compared`: the family
   * could not be read, and the plan does not have it (`note` says why).
   */
  readonly status: 'exact' | 'absent' | 'drift' | 'not compared';
  /** Rule by rule, in the plan's table and chain order; empty when `exact`. */
  readonly rules: readonly RuleDifference[];
  /** Why the family was not compared, or that the plan has no rules for it. */
  readonly note?: string;
}

/** A routing step that differs: `missing`, the plan has it and the namespace does not; `unexpected`, a run of ours adds it, the namespace has it, the plan does not. */
export interface RouteDifference {
  readonly kind: 'missing' | 'unexpected';
  readonly step: RouteStep;
}

/** What `diff` found in a namespace: per family, then the routing. Changes nothing. */
export interface DiffReport {
  /** True when every family compared is `exact` and no routing step differs. */
  readonly inSync: boolean;
  /** The iptables backend read (`default`: plain `iptables`, neither -nft nor -legacy available). */
  readonly backend: IptablesBackend | 'default';
  /** Why that backend: what detection found, or that it was forced. */
  readonly evidence: string;
  /** IPv4, then IPv6. */
  readonly families: readonly FamilyDiff[];
  /** Routing steps missing (in plan order), then those there that the plan does not have. */
  readonly routes: readonly RouteDifference[];
}

const NO_RULES = (family: Family): FamilyRules => ({ family, rules: [], chains: new Map() });

/**
 * Compare the namespace with the plan: one `iptables-save` per family (the IPv4 one also picks the
 * backend), then the routing. What is ours is judged as reconcile judges it (build/owned.ts): our
 * chains, our jumps and marks in built-in chains under either mode, the routing either mode adds.
 * A save that fails is an error (an ApplyError), except for a family the plan does not have,
 * which is then reported as not compared. Reads only.
 */
export async function diffPlan(plan: Plan, runner: Runner, kernel: Kernel, forceIptablesBinary: IptablesBackend | undefined, owners: OwnerResolver): Promise<DiffReport> {
  const detection = await detectBackend(runner, forceIptablesBinary);
  const owned = ownedBy(plan);
  const families: FamilyDiff[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const rules = family === 'ipv4' ? plan.ipv4 : plan.ipv6;
    let state = detection.ipv4State;
    if (family === 'ipv6') {
      const argv = [detection.backend.save.ipv6];
      const r = await runner.run(argv);
      if (r.exitCode !== 0 && rules !== null) throw commandError(`${argv[0]} failed`, argv, r);
      if (r.exitCode !== 0) {
        families.push({ family, status: 'not compared', rules: [], note: `${argv[0]} ${describeCommandFailure(argv, r)}` });
        continue;
      }
      state = parseSave(r.stdout);
    }
    const a = assess(state, rules ?? NO_RULES(family), owners, owned.builtin[family]);
    if (rules === null) {
      const note = 'the plan has no rules for this family';
      families.push(a.footprint.size === 0 ? { family, status: 'exact', rules: [], note } : { family, status: 'drift', rules: a.ruleDiff, note });
    } else families.push({ family, status: a.status, rules: a.status === 'exact' ? [] : a.ruleDiff });
  }
  const live = await kernel.routes.read([...plan.routes, ...owned.routes]);
  const planned = new Set(plan.routes.map((s) => changeArgs(s, 'add').join(' ')));
  const seen = new Set<string>();
  const routes: RouteDifference[] = plan.routes.filter((step) => !live.has(step)).map((step) => ({ kind: 'missing', step }));
  for (const step of owned.routes) {
    const key = changeArgs(step, 'add').join(' ');
    if (planned.has(key) || seen.has(key) || !live.has(step)) continue;
    seen.add(key);
    routes.push({ kind: 'unexpected', step });
  }
  return {
    inSync: families.every((f) => f.status === 'exact' || f.status === 'not compared') && routes.length === 0,
    backend: detection.backend.name,
    evidence: detection.evidence,
    families,
    routes,
  };
}
