import type { Family, Plan, RouteStep } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import { detectBackend } from './detect.js';
import type { Runner } from './runner.js';
import type { OwnerResolver } from './saveform.js';
import { assess, parseSave, type RuleDifference } from './state.js';
import { readRouteState } from './routes.js';

export type { RuleDifference } from './state.js';

/** How one family's live rules compare with the plan. */
export interface FamilyDiff {
  readonly family: Family;
  /** `exact`: exactly the plan; `absent`: nothing of ours (not applied); `drift`: something else of ours. */
  readonly status: 'exact' | 'absent' | 'drift';
  /** Rule by rule, in the plan's table and chain order; empty when `exact`. */
  readonly rules: readonly RuleDifference[];
}

/** What `diff` found in a namespace: per family, then the routing steps that are missing. Changes nothing. */
export interface DiffReport {
  /** True when every family is `exact` and no routing step is missing. */
  readonly inSync: boolean;
  /** The iptables backend read (`default`: plain `iptables`, neither -nft nor -legacy available). */
  readonly backend: IptablesBackend | 'default';
  /** Why that backend: what detection found, or that it was forced. */
  readonly evidence: string;
  /** IPv4 first, then IPv6 when the plan has it. */
  readonly families: readonly FamilyDiff[];
  /** The plan's routing steps the namespace lacks, in plan order. */
  readonly missingRoutes: readonly RouteStep[];
}

/**
 * Compare the namespace the runner targets with the plan: one `iptables-save` per family (the
 * IPv4 one also picks the backend), then `ip -j` for the routing steps. Reads only.
 */
export async function diffPlan(plan: Plan, runner: Runner, forced: IptablesBackend | undefined, owners: OwnerResolver): Promise<DiffReport> {
  const detection = await detectBackend(runner, forced);
  const families: FamilyDiff[] = [];
  for (const family of plan.ipv6 === null ? [plan.ipv4] : [plan.ipv4, plan.ipv6]) {
    const state = family.family === 'ipv4' ? detection.ipv4State : parseSave((await runner.run([detection.backend.save.ipv6])).stdout);
    const a = assess(state, family, owners);
    families.push({ family: family.family, status: a.status, rules: a.status === 'exact' ? [] : a.ruleDiff });
  }
  const routes = await readRouteState(runner, plan.routes);
  const missingRoutes = plan.routes.filter((step) => !routes.has(step));
  return {
    inSync: families.every((f) => f.status === 'exact') && missingRoutes.length === 0,
    backend: detection.backend.name,
    evidence: detection.evidence,
    families,
    missingRoutes,
  };
}
